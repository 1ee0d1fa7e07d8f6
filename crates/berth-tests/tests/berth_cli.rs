//! The berth CLI against a real berthd: Docker's grammar, output and exit codes.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn berth_run_ps_logs_inspect_stop_rm() {
    let d = Daemon::start();
    let out = ok(&d.berth(&["load", "-i", busybox_tar().to_str().unwrap()]));
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "busybox", "echo", "hello"])),
        "hello\n"
    );
    let out = d.berth(&["run", "--rm", "busybox", "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    let name = unique("svc");
    let id = ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "-e",
        "X=1",
        "busybox",
        "sh",
        "-c",
        "echo x=$X; exec sleep 300",
    ]));
    assert_eq!(id.trim().len(), 64);
    eventually("logs", Duration::from_secs(10), || {
        stdout(&d.berth(&["logs", &name])) == "x=1\n"
    });
    let ps = ok(&d.berth(&["ps"]));
    let header = ps.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "ps header: {header}");
    }
    assert!(ps.contains(&name) && ps.contains(&id[..12]), "{ps}");
    assert_eq!(ok(&d.berth(&["ps", "-q"])).trim(), &id[..12]);
    let st = ok(&d.berth(&["inspect", "--format", "{{.State.Status}}", &name]));
    assert_eq!(st.trim(), "running");
    let v: serde_json::Value = serde_json::from_str(&ok(&d.berth(&["inspect", &name]))).unwrap();
    assert_eq!(v[0]["Id"], id.trim());
    ok(&d.berth(&["stop", "-t", "1", &name]));
    assert_eq!(
        ok(&d.berth(&["wait", &name])).trim(),
        "137",
        "sleep as PID 1 ignores TERM"
    );
    let ps = ok(&d.berth(&["ps", "-a", "--format", "{{.Names}}\t{{.Status}}"]));
    assert!(ps.contains(&format!("{name}\tExited (137)")), "{ps}");
    ok(&d.berth(&["rm", &name]));
    assert_eq!(ok(&d.berth(&["ps", "-aq"])), "");
}

#[test]
fn berth_errors_and_exit_codes() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.berth(&["inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("No such"), "{}", stderr(&out));
    let out = d.berth(&["rm", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("No such container: nosuch"),
        "{}",
        stderr(&out)
    );
    let out = d.berth(&["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    let out = d.berth(&["run", "--rm", "nosuchimage"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let out = run_berth_at("unix:///nonexistent/berth.sock", &["ps"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Cannot connect"), "{}", stderr(&out));
}

#[test]
fn berth_images_tag_save_rmi_import() {
    let d = Daemon::start();
    d.load_busybox();
    ok(&d.berth(&["tag", "busybox", "mine:v2"]));
    let images = ok(&d.berth(&["images"]));
    assert!(images.starts_with("REPOSITORY"), "{images}");
    assert!(images.contains("mine") && images.contains("v2"), "{images}");
    let dir = TempDir::new("berth-save");
    let tar = dir.join("x.tar");
    ok(&d.berth(&["save", "-o", tar.to_str().unwrap(), "mine:v2"]));
    let out = ok(&d.berth(&["rmi", "mine:v2"]));
    assert!(out.contains("Untagged: mine:v2"), "{out}");
    ok(&d.berth(&["load", "-i", tar.to_str().unwrap()]));
    // Like docker, `images -q` prints the ID once per tag: one image behind both rows.
    let ids = ok(&d.berth(&["images", "-q"]));
    let unique: std::collections::BTreeSet<&str> = ids.lines().collect();
    assert_eq!(unique.len(), 1, "one image, two tags: {ids}");
    let out = ok(&d.berth(&["image", "prune", "-f"]));
    assert!(out.contains("Total reclaimed space"), "{out}");
}

#[test]
fn berth_stdin_and_create_start() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.berth_stdin(
        &["run", "--rm", "-i", "busybox", "wc", "-l"],
        Some(b"a\nb\nc\n"),
    );
    assert_eq!(ok(&out).trim(), "3");
    let name = unique("c");
    ok(&d.berth(&["create", "--name", &name, "busybox", "echo", "created"]));
    ok(&d.berth(&["start", &name]));
    ok(&d.berth(&["wait", &name]));
    assert_eq!(ok(&d.berth(&["logs", &name])), "created\n");
    ok(&d.berth(&["rm", &name]));
}

fn run_berth_at(host: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin_dir().join("berth"))
        .arg("-H")
        .arg(host)
        .args(args)
        .output()
        .unwrap()
}
