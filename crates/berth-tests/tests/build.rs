//! Dockerfile builds through `DOCKER_BUILDKIT=0 docker build` and `berth build`: multi-stage,
//! the cache (same image ID on rebuild, only changed COPY steps rerun), .dockerignore, cache
//! mounts, secrets, and clear failures.

mod common;
use common::*;
use std::process::Output;

fn write(dir: &TempDir, rel: &str, data: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn docker_build(d: &Daemon, args: &[&str]) -> Output {
    run_with(
        std::process::Command::new("docker")
            .env("DOCKER_HOST", d.host())
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CONFIG", d.root_path().join("docker-config"))
            .arg("build")
            .args(args),
        None,
    )
}

fn image_id(d: &Daemon, name: &str) -> String {
    ok(&d.docker(&["image", "inspect", "-f", "{{.Id}}", name]))
        .trim()
        .to_string()
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
    let out = docker_build(
        &d,
        &[
            "-t",
            &tag,
            "--build-arg",
            "GREETING=hi",
            ctx.path().to_str().unwrap(),
        ],
    );
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
    let first = image_id(&d, &tag);

    // Rebuild: every step cached, same image.
    let out = ok(&docker_build(
        &d,
        &[
            "-t",
            &tag,
            "--build-arg",
            "GREETING=hi",
            ctx.path().to_str().unwrap(),
        ],
    ));
    assert!(out.contains("Using cache"), "{out}");
    assert!(!out.contains("Running in"), "nothing reruns: {out}");
    assert_eq!(image_id(&d, &tag), first);

    // Changing one source reruns from its COPY on; the other stage's RUN stays cached.
    write(&ctx, "data/a", "B");
    let out = ok(&docker_build(
        &d,
        &[
            "-t",
            &tag,
            "--build-arg",
            "GREETING=hi",
            ctx.path().to_str().unwrap(),
        ],
    ));
    assert!(!out.contains("Running in"), "builder stage cached: {out}");
    assert_ne!(image_id(&d, &tag), first);
    assert_eq!(ok(&d.docker(&["run", "--rm", &tag, "cat", "/data/a"])), "B");

    // --target builds only the first stage.
    let t2 = format!("{}:b", unique("target"));
    ok(&docker_build(
        &d,
        &[
            "-t",
            &t2,
            "--target",
            "builder",
            "--build-arg",
            "GREETING=hi",
            ctx.path().to_str().unwrap(),
        ],
    ));
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
    let out = docker_build(&d, &["-t", &tag, ctx.path().to_str().unwrap()]);
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
    let out = docker_build(&d, &["-t", &tag, ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains("returned a non-zero code: 3"), "{all}");
    assert!(all.contains("before"), "the step's output is shown: {all}");

    write(&ctx, "Dockerfile", "FROM busybox\nCOPY missing.txt /x\n");
    let out = docker_build(&d, &["-t", &tag, ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(format!("{}{}", stdout(&out), stderr(&out)).contains("missing.txt"));

    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\nARG X\nRUN echo ${X:?is required}\n",
    );
    let out = docker_build(&d, &["-t", &tag, ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());

    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\nCOPY --from=nostage /a /b\n",
    );
    let out = docker_build(&d, &["-t", &tag, ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());

    // None of the failed builds left the tag behind.
    assert!(!d.docker(&["image", "inspect", &tag]).status.success());
    // Nor a build container.
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
}
