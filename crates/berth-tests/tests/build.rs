//! Dockerfile builds through `DOCKER_BUILDKIT=0 docker build` and `berth build`: multi-stage,
//! the cache (same image ID on rebuild, only changed COPY steps rerun), .dockerignore, cache
//! mounts, secrets, and clear failures.

mod common;
use common::*;

fn write(dir: &TempDir, rel: &str, data: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

#[test]
fn multi_stage_build_with_docker_cli_and_cache() {
    let d = Daemon::start();
    d.load_busybox();
    let ctx = TempDir::new("ctx");
    write(
        &ctx,
        "Dockerfile",
        "# a two-stage build\n\
         ARG GREETING=hello\n\
         FROM busybox AS builder\n\
         ARG GREETING\n\
         WORKDIR /src\n\
         COPY app.txt .\n\
         RUN echo \"$GREETING from $(cat app.txt)\" > /out.txt\n\
         \n\
         FROM busybox\n\
         ENV WHO=world \\\n    MORE=yes\n\
         COPY --from=builder /out.txt /out.txt\n\
         COPY data/ /data/\n\
         LABEL org.test=1\n\
         CMD [\"cat\", \"/out.txt\"]\n",
    );
    write(&ctx, "app.txt", "app");
    write(&ctx, "data/a", "A");
    write(&ctx, "data/secret.key", "nope");
    write(&ctx, ".dockerignore", "data/*.key\n");
    let tag = format!("{}:1", unique("ms"));
    let out = d.docker_build(&[
        "-t",
        &tag,
        "--build-arg",
        "GREETING=hi",
        ctx.path().to_str().unwrap(),
    ]);
    let text = ok(&out);
    assert!(text.contains("Step 1/"), "{text}");
    assert!(text.contains("Successfully built"), "{text}");
    assert!(
        text.contains(&format!("Successfully tagged {tag}")),
        "{text}"
    );
    assert_eq!(ok(&d.docker(&["run", "--rm", &tag])), "hi from app\n");
    assert_eq!(
        ok(&d.docker(&["run", "--rm", &tag, "ls", "/data"])),
        "a\n",
        ".dockerignore keeps secret.key out"
    );
    let labels = ok(&d.docker(&["image", "inspect", "-f", "{{json .Config.Labels}}", &tag]));
    assert!(labels.contains("org.test"), "{labels}");
    let first = d.image_id(&tag);

    // Rebuild: every step cached, same image.
    let out = ok(&d.docker_build(&[
        "-t",
        &tag,
        "--build-arg",
        "GREETING=hi",
        ctx.path().to_str().unwrap(),
    ]));
    assert!(out.contains("Using cache"), "{out}");
    assert!(!out.contains("Running in"), "nothing reruns: {out}");
    assert_eq!(d.image_id(&tag), first);

    // Changing one source reruns from its COPY on; the other stage's RUN stays cached.
    write(&ctx, "data/a", "B");
    let out = ok(&d.docker_build(&[
        "-t",
        &tag,
        "--build-arg",
        "GREETING=hi",
        ctx.path().to_str().unwrap(),
    ]));
    assert!(!out.contains("Running in"), "builder stage cached: {out}");
    assert_ne!(d.image_id(&tag), first);
    assert_eq!(ok(&d.docker(&["run", "--rm", &tag, "cat", "/data/a"])), "B");

    // --target builds only the first stage.
    let t2 = format!("{}:b", unique("target"));
    ok(&d.docker_build(&[
        "-t",
        &t2,
        "--target",
        "builder",
        "--build-arg",
        "GREETING=hi",
        ctx.path().to_str().unwrap(),
    ]));
    assert_eq!(
        ok(&d.docker(&["run", "--rm", &t2, "cat", "/out.txt"])),
        "hi from app\n"
    );
}

#[test]
fn berth_build_secrets_cache_mounts_and_no_cache() {
    let d = Daemon::start();
    d.load_busybox();
    let ctx = TempDir::new("ctx2");
    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=secret,id=tok cat /run/secrets/tok > /seen-len && wc -c < /run/secrets/tok > /seen-len\n\
         RUN --mount=type=cache,target=/cache sh -c 'echo x >> /cache/runs; wc -l < /cache/runs > /runs'\n\
         CMD [\"cat\", \"/runs\"]\n",
    );
    let secret = ctx.join("tok.txt");
    std::fs::write(&secret, "s3cr3t-value").unwrap();
    let tag = format!("{}:1", unique("sec"));
    let sarg = format!("id=tok,src={}", secret.display());
    let out = ok(&d.berth(&[
        "build",
        "-t",
        &tag,
        "--secret",
        &sarg,
        ctx.path().to_str().unwrap(),
    ]));
    assert!(out.contains("Successfully tagged"), "{out}");
    assert_eq!(
        ok(&d.docker(&["run", "--rm", &tag, "cat", "/seen-len"])).trim(),
        "12"
    );
    // The secret is in no layer.
    let save = d.docker(&["save", &tag]);
    assert!(save.status.success());
    assert!(
        !save.stdout.windows(12).any(|w| w == b"s3cr3t-value"),
        "the secret must not be stored in any layer"
    );
    assert_eq!(ok(&d.docker(&["run", "--rm", &tag])).trim(), "1");
    // --no-cache reruns everything; the cache mount kept its file.
    ok(&d.berth(&[
        "build",
        "--no-cache",
        "-t",
        &tag,
        "--secret",
        &sarg,
        ctx.path().to_str().unwrap(),
    ]));
    assert_eq!(ok(&d.docker(&["run", "--rm", &tag])).trim(), "2");
    // builder prune empties the cache.
    let out = ok(&d.berth(&["builder", "prune", "-f"]));
    assert!(out.contains("Total reclaimed space"), "{out}");
}

#[test]
fn build_errors_are_clear_and_tag_nothing() {
    let d = Daemon::start();
    d.load_busybox();
    let ctx = TempDir::new("bad");
    write(&ctx, "Dockerfile", "FROM busybox\nRUN echo ok\nFROB x\n");
    let tag = format!("{}:1", unique("bad"));
    let out = d.docker_build(&["-t", &tag, ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("line 3") && err.to_lowercase().contains("unknown instruction"),
        "{err}"
    );

    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\nRUN echo before; exit 3\n",
    );
    let out = d.docker_build(&["-t", &tag, ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains("returned a non-zero code: 3"), "{all}");
    assert!(all.contains("before"), "the step's output is shown: {all}");

    write(&ctx, "Dockerfile", "FROM busybox\nCOPY missing.txt /x\n");
    let out = d.docker_build(&["-t", &tag, ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(format!("{}{}", stdout(&out), stderr(&out)).contains("missing.txt"));

    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\nARG X\nRUN echo ${X:?is required}\n",
    );
    let out = d.docker_build(&["-t", &tag, ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());

    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\nCOPY --from=nostage /a /b\n",
    );
    let out = d.docker_build(&["-t", &tag, ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());

    // None of the failed builds left the tag behind.
    assert!(!d.docker(&["image", "inspect", &tag]).status.success());
    // Nor a build container.
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
}

/// ADD of a URL and of a local tar, RUN --mount=type=bind from another stage, ONBUILD,
/// and the metadata instructions, through the berth CLI with the context on stdin and a
/// Dockerfile from outside the context.
#[test]
fn add_url_tar_bind_from_onbuild_and_metadata() {
    let reg = Registry::start(&[]);
    let d = Daemon::start();
    d.load_busybox();
    // Something to download: a blob served by the registry.
    let blob = b"downloaded by ADD\n";
    let digest = {
        let out = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        out.stdin.as_ref().unwrap().write_all(blob).unwrap();
        let o = out.wait_with_output().unwrap();
        format!(
            "sha256:{}",
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .unwrap()
        )
    };
    let up = d.request("GET", "/_ping", None).unwrap();
    assert_eq!(up.status, 200);
    let put = std::process::Command::new("curl")
        .args([
            "-fsS",
            "-X",
            "POST",
            "--data-binary",
            "@-",
            "-H",
            "Content-Type: application/octet-stream",
        ])
        .arg(format!(
            "{}/v2/files/blobs/uploads/?digest={digest}",
            reg.url
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        put.stdin.as_ref().unwrap().write_all(blob).unwrap();
    }
    assert!(
        put.wait_with_output().unwrap().status.success(),
        "curl upload"
    );
    let url = format!("{}/v2/files/blobs/{digest}", reg.url);

    let ctx = TempDir::new("ctx3");
    // A tar ADD unpacks.
    let mut tb = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    tb.append_data(&mut h, "inner/x.txt", &b"tar"[..]).unwrap();
    std::fs::write(ctx.join("files.tar"), tb.into_inner().unwrap()).unwrap();
    let base = format!("{}:base", unique("onb"));
    write(
        &ctx,
        "base.Dockerfile",
        "FROM busybox\nONBUILD RUN echo triggered > /onbuild.txt\n",
    );
    ok(&d.berth(&[
        "build",
        "-q",
        "-t",
        &base,
        "-f",
        ctx.join("base.Dockerfile").to_str().unwrap(),
        ctx.path().to_str().unwrap(),
    ]));
    let outside = TempDir::new("df");
    write(
        &outside,
        "Dockerfile",
        &format!(
            "FROM busybox AS tools\nRUN echo from-tools > /tool.txt\n\
             FROM {base}\n\
             ADD --chmod=644 {url} /dl/\n\
             ADD --chmod=644 --checksum={digest} {url} /dl/again\n\
             ADD files.tar /unpacked/\n\
             RUN --mount=type=bind,from=tools,source=/tool.txt,target=/mnt/tool.txt cp /mnt/tool.txt /copied.txt\n\
             WORKDIR /made/by/workdir\n\
             USER 1000:1000\n\
             EXPOSE 8080\n\
             VOLUME /data\n\
             STOPSIGNAL SIGINT\n\
             HEALTHCHECK --interval=5s --retries=2 CMD true\n\
             ENTRYPOINT [\"sh\", \"-c\"]\n\
             CMD [\"id -u; pwd; cat /onbuild.txt /unpacked/inner/x.txt; echo; cat /dl/sha256:* /dl/again /copied.txt\"]\n"
        ),
    );
    // The context goes as a tar on stdin, the Dockerfile named by -f inside it.
    let mut tb = tar::Builder::new(Vec::new());
    tb.append_dir_all(".", ctx.path()).unwrap();
    let mut h = tar::Header::new_gnu();
    let df = std::fs::read(outside.join("Dockerfile")).unwrap();
    h.set_size(df.len() as u64);
    h.set_mode(0o644);
    tb.append_data(&mut h, "custom.Dockerfile", df.as_slice())
        .unwrap();
    let tarball = tb.into_inner().unwrap();
    let tag = format!("{}:1", unique("misc"));
    let out = d.berth_stdin(
        &["build", "-t", &tag, "-f", "custom.Dockerfile", "-"],
        Some(&tarball),
    );
    let text = ok(&out);
    assert!(text.contains("Executing 1 build trigger"), "{text}");
    let run = ok(&d.docker(&["run", "--rm", &tag]));
    assert_eq!(
        run,
        "1000\n/made/by/workdir\ntriggered\ntar\ndownloaded by ADD\ndownloaded by ADD\nfrom-tools\n"
    );
    let cfg = ok(&d.docker(&["image", "inspect", "-f", "{{json .Config}}", &tag]));
    let v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(v["User"], "1000:1000");
    assert_eq!(v["StopSignal"], "SIGINT");
    assert!(v["ExposedPorts"]["8080/tcp"].is_object(), "{v}");
    assert!(v["Volumes"]["/data"].is_object(), "{v}");
    assert_eq!(v["Healthcheck"]["Retries"], 2);
    assert_eq!(v["Healthcheck"]["Interval"], 5_000_000_000u64);
    // A wrong checksum fails the build.
    write(
        &ctx,
        "Dockerfile",
        &format!(
            "FROM busybox\nADD --checksum=sha256:{} {url} /x\n",
            "0".repeat(64)
        ),
    );
    let out = d.berth(&["build", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
}
