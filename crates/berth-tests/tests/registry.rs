//! The registry round trip: images loaded into berthd pushed to `berth registry serve`,
//! removed and pulled back, then run — with the docker CLI, the berth CLI and skopeo; auth with
//! htpasswd and tokens; failures that must be quick and clear.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// `docker push` then `docker pull` through berthd, and the pulled image runs.
#[test]
fn docker_cli_push_pull_run() {
    let reg = Registry::start(&[]);
    let d = Daemon::start();
    d.load_busybox();
    let name = format!("{}/{}/busybox:v1", reg.addr, unique("rt"));
    ok(&d.docker(&["tag", "busybox", &name]));
    let out = ok(&d.docker(&["push", &name]));
    assert!(out.contains("Pushed"), "{out}");
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    // The second push finds every layer there.
    let again = ok(&d.docker(&["push", &name]));
    assert!(again.contains("Layer already exists"), "{again}");
    // Plain `docker inspect` of a name with slashes tries containers, networks, … first.
    let inspect = ok(&d.docker(&["inspect", "-f", "{{json .RepoDigests}}", &name]));
    assert!(
        inspect.contains("@sha256:"),
        "push records a repo digest: {inspect}"
    );

    let id = d.image_id(&name);
    ok(&d.docker(&["rmi", "-f", &id]));
    assert_eq!(ok(&d.docker(&["images", "-q"])), "");
    let out = ok(&d.docker(&["pull", &name]));
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    assert_eq!(
        ok(&d.docker(&["run", "--rm", &name, "echo", "pulled and ran"])),
        "pulled and ran\n"
    );
    // Pulling again changes nothing.
    let out = ok(&d.docker(&["pull", &name]));
    assert!(out.contains("Image is up to date"), "{out}");

    // By digest.
    let digests = ok(&d.docker(&["image", "inspect", "-f", "{{index .RepoDigests 0}}", &name]));
    let by_digest = digests.trim();
    ok(&d.docker(&["rmi", "-f", &id]));
    let out = ok(&d.docker(&["pull", by_digest]));
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(
        ok(&d.docker(&["run", "--rm", by_digest, "echo", "by digest"])),
        "by digest\n"
    );
}

/// The berth CLI pulls and pushes too, and a second daemon pulls what the first pushed.
#[test]
fn berth_cli_push_pull_between_daemons() {
    let reg = Registry::start(&[]);
    let a = Daemon::start();
    let b = Daemon::start();
    a.load_busybox();
    let name = format!("{}/{}:latest", reg.addr, unique("two"));
    ok(&a.berth(&["tag", "busybox", &name]));
    let out = ok(&a.berth(&["push", &name]));
    assert!(out.contains("latest: digest: sha256:"), "{out}");
    // Another repository on the same registry gets the layer by a cross-repository mount.
    let second = format!("{}/{}:latest", reg.addr, unique("mnt"));
    ok(&a.berth(&["tag", &name, &second]));
    let out = ok(&a.berth(&["push", &second]));
    assert!(out.contains("Mounted from"), "{out}");
    let out = ok(&b.berth(&["pull", &name]));
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(
        ok(&b.berth(&["run", "--rm", &name, "cat", "/etc/hostname"]))
            .trim()
            .len(),
        12
    );
    // Both daemons agree on the image ID.
    let id_a = a.image_id(&name);
    let id_b = b.image_id(&name);
    assert_eq!(id_a, id_b);
}

#[test]
fn pull_errors_are_quick_and_clear() {
    let reg = Registry::start(&[]);
    let d = Daemon::start();
    let missing = format!("{}/{}:nope", reg.addr, unique("missing"));
    let out = d.docker(&["pull", &missing]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let nothing = d.docker(&["inspect", &missing]);
    assert!(
        stderr(&nothing).contains("No such object"),
        "{}",
        stderr(&nothing)
    );
    assert!(
        err.contains("not found") && err.contains("manifest unknown"),
        "{err}"
    );
    // A closed port: refused at once, naming the host.
    let t = Instant::now();
    let out = d.docker(&["pull", "127.0.0.1:9/x:1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("127.0.0.1:9"), "{}", stderr(&out));
    assert!(t.elapsed() < Duration::from_secs(20));
    let out = d.docker(&["push", &format!("{}/absent:1", reg.addr)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("An image does not exist locally with the tag"),
        "{}",
        stderr(&out)
    );
    // Nothing half-pulled is left as an image.
    assert_eq!(ok(&d.docker(&["images", "-q"])), "");
}

/// skopeo, an outside client, copies into and out of the berth registry.
#[test]
fn skopeo_copy_in_and_out() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        panic!("skopeo is needed (scripts/deps.sh installs it)");
    }
    let reg = Registry::start(&[]);
    let tmp = TempDir::new("skopeo");
    let dest = format!("docker://{}/{}:s1", reg.addr, unique("sk"));
    let st = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", busybox_tar().display()))
        .arg(&dest)
        .output()
        .expect("skopeo copy");
    assert!(st.status.success(), "skopeo copy in: {}", stderr(&st));
    let insp = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &dest])
        .output()
        .expect("skopeo inspect");
    assert!(insp.status.success(), "{}", stderr(&insp));
    let v: serde_json::Value = serde_json::from_slice(&insp.stdout).expect("inspect JSON");
    assert_eq!(v["Layers"].as_array().map(|l| l.len()), Some(1), "{v}");
    let out = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", &dest])
        .arg(format!("oci:{}:s1", tmp.join("layout").display()))
        .output()
        .expect("skopeo copy out");
    assert!(out.status.success(), "skopeo copy out: {}", stderr(&out));
    assert!(tmp.join("layout/index.json").is_file());
    // And what skopeo pushed, berthd pulls and runs.
    let d = Daemon::start();
    let name = dest.trim_start_matches("docker://");
    ok(&d.docker(&["pull", name]));
    assert_eq!(ok(&d.docker(&["run", "--rm", name, "echo", "ok"])), "ok\n");
}

fn htpasswd(dir: &TempDir, user: &str, pass: &str) -> std::path::PathBuf {
    let path = dir.join("htpasswd");
    let out = Command::new("htpasswd")
        .args(["-B", "-b", "-c"])
        .arg(&path)
        .args([user, pass])
        .output()
        .expect("htpasswd (apache2-utils)");
    assert!(out.status.success(), "{}", stderr(&out));
    path
}

#[test]
fn htpasswd_login_push_pull() {
    let dir = TempDir::new("auth");
    let pw = htpasswd(&dir, "alice", "s3cret");
    let reg = Registry::start(&["--auth", "htpasswd", "--htpasswd", pw.to_str().unwrap()]);
    let d = Daemon::start();
    d.load_busybox();
    let name = format!("{}/{}:1", reg.addr, unique("priv"));
    ok(&d.docker(&["tag", "busybox", &name]));
    let out = d.docker(&["push", &name]);
    assert!(!out.status.success(), "push without login must fail");
    assert!(
        stderr(&out).contains("unauthorized") || stdout(&out).contains("unauthorized"),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    let out = d.docker_stdin(
        &["login", "-u", "alice", "--password-stdin", &reg.addr],
        Some(b"wrong\n"),
    );
    assert!(!out.status.success(), "wrong password must fail");
    let out = d.docker_stdin(
        &["login", "-u", "alice", "--password-stdin", &reg.addr],
        Some(b"s3cret\n"),
    );
    assert!(stdout(&out).contains("Login Succeeded"), "{}", stderr(&out));
    ok(&d.docker(&["push", &name]));
    ok(&d.docker(&["rmi", &name]));
    ok(&d.docker(&["pull", &name]));
    // A build pulls a private base image with the credentials the CLI sends.
    let id = d.image_id(&name);
    ok(&d.docker(&["rmi", "-f", &id]));
    let ctx = TempDir::new("privctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {name}\nRUN echo built-on-private\n"),
    )
    .unwrap();
    let ctx_path = ctx.path().to_str().unwrap();
    let out = d.docker_build(&["-t", "from-private:1", ctx_path]);
    let text = ok(&out);
    assert!(text.contains("built-on-private"), "{text}");
    // The berth CLI shares the docker CLI's config and can log out.
    let out = ok(&d.berth(&["logout", &reg.addr]));
    assert!(out.contains("Removing login credentials"), "{out}");
    let out = ok(&d.berth(&["login", "-u", "alice", "-p", "s3cret", &reg.addr]));
    assert!(out.contains("Login Succeeded"), "{out}");
    ok(&d.berth(&["pull", &name]));
}

#[test]
fn token_auth_with_docker_login() {
    let dir = TempDir::new("tok");
    let pw = htpasswd(&dir, "bob", "hunter2");
    let reg = Registry::start(&["--auth", "token", "--htpasswd", pw.to_str().unwrap()]);
    let d = Daemon::start();
    d.load_busybox();
    let name = format!("{}/{}:t", reg.addr, unique("tok"));
    ok(&d.docker(&["tag", "busybox", &name]));
    let out = d.docker_stdin(
        &["login", "-u", "bob", "--password-stdin", &reg.addr],
        Some(b"nope\n"),
    );
    assert!(!out.status.success(), "wrong password must fail");
    let out = d.docker_stdin(
        &["login", "-u", "bob", "--password-stdin", &reg.addr],
        Some(b"hunter2\n"),
    );
    assert!(stdout(&out).contains("Login Succeeded"), "{}", stderr(&out));
    ok(&d.docker(&["push", &name]));
    ok(&d.docker(&["rmi", &name]));
    ok(&d.docker(&["pull", &name]));
    assert_eq!(ok(&d.docker(&["run", "--rm", &name, "echo", "t"])), "t\n");
}

/// The conformance suite against the registry started as a process.
#[test]
fn conformance_against_process() {
    let reg = Registry::start(&[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(berth_registry::conformance::run(&reg.url))
        .unwrap_or_else(|e| panic!("conformance: {e}"));
}

/// An image index: berthd picks this machine's platform, and names the platform it lacks.
#[test]
fn pull_selects_platform_from_an_index() {
    let reg = Registry::start(&[]);
    let d = Daemon::start();
    d.load_busybox();
    let repo = format!("{}/{}", reg.addr, unique("idx"));
    ok(&d.docker(&["tag", "busybox", &format!("{repo}:single")]));
    let out = ok(&d.docker(&["push", &format!("{repo}:single")]));
    let digest = out
        .split("digest: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("digest in push output")
        .to_string();
    let size: usize = out
        .split("size: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("size in push output");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
             "platform": {"os": "linux", "architecture": "riscv64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
             "platform": {"os": "linux", "architecture": go_arch()}},
        ]
    });
    let path = repo.split_once('/').unwrap().1;
    let put = std::process::Command::new("curl")
        .args([
            "-fsS",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.index.v1+json",
            "--data-binary",
        ])
        .arg(index.to_string())
        .arg(format!("{}/v2/{path}/manifests/multi", reg.url))
        .output()
        .expect("curl");
    assert!(put.status.success(), "{}", stderr(&put));
    ok(&d.docker(&["rmi", "-f", "busybox"]));
    let multi = format!("{repo}:multi");
    let out = ok(&d.docker(&[
        "pull",
        "--platform",
        &format!("linux/{}", go_arch()),
        &multi,
    ]));
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert_eq!(
        ok(&d.docker(&["run", "--rm", &multi, "echo", "idx"])),
        "idx\n"
    );
    let out = d.docker(&["pull", "--platform", "linux/s390x", &multi]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("linux/s390x"), "{}", stderr(&out));
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
