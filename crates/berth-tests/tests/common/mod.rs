//! Test harness: a real berthd on a temporary socket and data root, driven by the real docker
//! CLI, the berth CLI and raw HTTP. Everything a test makes is removed by Drop guards, also
//! when the test fails: containers, shims, mounts, cgroups, files.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The workspace's target directory (where berthd and berth are built).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    // target/debug/deps/<test> → target/debug
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// A unique name for this test run.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Builds the busybox docker-archive once per test process, into cargo's target tmp dir (not
/// /tmp, so nothing is left behind). The archive is deterministic, so it is written under a
/// private name and renamed into place: concurrent test processes never see a partial file.
pub fn busybox_tar() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let out = dir.join("busybox.tar");
        let tmp = dir.join(format!("busybox.tar.{}", std::process::id()));
        let st = Command::new("bash")
            .arg(repo_root().join("scripts/mkbusybox.sh"))
            .arg(&tmp)
            .stdout(Stdio::null())
            .status()
            .expect("run mkbusybox.sh");
        assert!(
            st.success(),
            "mkbusybox.sh failed (is busybox-static installed?)"
        );
        std::fs::rename(&tmp, &out).expect("move busybox.tar into place");
        out
    })
    .clone()
}

/// A temporary directory, removed on drop: also when the test fails.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running berthd with its own roots; stopped and cleaned up on drop.
pub struct Daemon {
    pub root: PathBuf,
    pub sock: PathBuf,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_named("bt")
    }

    /// A daemon whose roots live under a directory named from `prefix` (tests of long paths).
    pub fn start_named(prefix: &str) -> Daemon {
        let root = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&root).expect("test root");
        let mut d = Daemon {
            sock: root.join("berth.sock"),
            data_root: root.join("data"),
            exec_root: root.join("run"),
            root,
            child: None,
        };
        d.spawn();
        d
    }

    /// Starts (or restarts) the daemon process on this daemon's roots.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("berthd.log"))
            .expect("daemon log");
        let child = Command::new(bin_dir().join("berthd"))
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--log-level")
            .arg("debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn berthd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.request("GET", "/_ping", None) {
                if r.status == 200 {
                    return;
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("berthd exited at start ({st}): {}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "berthd did not answer /_ping: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the daemon process with SIGTERM (containers keep running under their shims).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix_kill(c.id() as i32, 15);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("berthd.log")).unwrap_or_default()
    }

    pub fn root_path(&self) -> &Path {
        &self.root
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// Runs the real docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_stdin(args, None)
    }

    pub fn docker_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run_with(self.docker_cmd().args(args), stdin)
    }

    /// `docker build` with the legacy builder (`DOCKER_BUILDKIT=0`), as berthd serves it.
    pub fn docker_build(&self, args: &[&str]) -> Output {
        run_with(
            self.docker_cmd()
                .env("DOCKER_BUILDKIT", "0")
                .arg("build")
                .args(args),
            None,
        )
    }

    /// The docker CLI pointed at this daemon, with its own config dir.
    fn docker_cmd(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.root.join("docker-config"));
        c
    }

    /// An image's ID, by name.
    pub fn image_id(&self, name: &str) -> String {
        ok(&self.docker(&["image", "inspect", "-f", "{{.Id}}", name]))
            .trim()
            .to_string()
    }

    /// Runs the berth CLI against this daemon.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.berth_stdin(args, None)
    }

    pub fn berth_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run_with(
            Command::new(bin_dir().join("berth"))
                .env("BERTH_HOST", self.host())
                .env("DOCKER_CONFIG", self.root.join("docker-config"))
                .args(args),
            stdin,
        )
    }

    /// Loads the busybox test image through the API.
    pub fn load_busybox(&self) {
        let out = self.docker(&["load", "-i", busybox_tar().to_str().expect("utf-8 path")]);
        assert!(
            out.status.success(),
            "docker load: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A raw HTTP/1.1 request over the socket (for checking status codes and bodies exactly).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> std::io::Result<HttpResponse> {
        let mut s = UnixStream::connect(&self.sock)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n");
        if let Some((ct, b)) = body {
            req.push_str(&format!(
                "Content-Type: {ct}\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        if let Some((_, b)) = body {
            s.write_all(b)?;
        }
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        HttpResponse::parse(&raw)
    }

    /// IDs of all containers this daemon knows.
    pub fn container_ids(&self) -> Vec<String> {
        let Ok(r) = self.request("GET", "/containers/json?all=1", None) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["Id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // 1. Remove containers through the daemon, the way a user would.
        let ids = if self.child.is_some() {
            self.container_ids()
        } else {
            Vec::new()
        };
        for id in &ids {
            let _ = self.request("DELETE", &format!("/containers/{id}?force=1"), None);
        }
        self.stop();
        // 2. Whatever is left: processes in our containers' cgroups, shims, mounts.
        let mut ids = ids;
        if let Ok(rd) = std::fs::read_dir(self.data_root.join("containers")) {
            ids.extend(
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
        for id in &ids {
            kill_cgroup(id);
        }
        kill_matching(&self.root.display().to_string());
        unmount_under(&self.root);
        for id in &ids {
            remove_cgroup(id);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn nix_kill(pid: i32, sig: i32) -> std::io::Result<()> {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()?;
    if st.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("kill failed"))
    }
}

fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let p = e.path().join("berth").join(id);
            if p.exists() {
                out.push(p);
            }
        }
    }
    let p = PathBuf::from("/sys/fs/cgroup/berth").join(id);
    if p.exists() {
        out.push(p);
    }
    out
}

fn kill_cgroup(id: &str) {
    for dir in cgroup_dirs(id) {
        let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
        let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
        for f in ["cgroup.procs", "tasks"] {
            if let Ok(s) = std::fs::read_to_string(dir.join(f)) {
                for pid in s.lines() {
                    let _ = nix_kill(pid.trim().parse().unwrap_or(0), 9);
                }
            }
        }
    }
}

fn remove_cgroup(id: &str) {
    for dir in cgroup_dirs(id) {
        for _ in 0..50 {
            if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Kills processes whose command line mentions `needle` (shims run with their dir in argv).
fn kill_matching(needle: &str) {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                let _ = nix_kill(pid, 9);
            }
        }
    }
}

/// Unmounts everything mounted below `root`, deepest first.
fn unmount_under(root: &Path) {
    let prefix = root.display().to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(&p).status();
    }
}

pub fn run_with(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn client");
    if let Some(data) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    // A hung client must fail the test, not the whole CI run.
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = nix_kill(pid, 9);
        }
    });
    let out = child.wait_with_output().expect("wait client");
    let _ = tx.send(());
    let _ = watchdog.join();
    out
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn parse(raw: &[u8]) -> std::io::Result<HttpResponse> {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no header end"))?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("bad status line"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    pub fn header(&self, k: &str) -> Option<&str> {
        let k = k.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(a, _)| *a == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        let start = i + 2;
        if b.len() < start + n {
            out.extend_from_slice(&b[start..]);
            break;
        }
        out.extend_from_slice(&b[start..start + n]);
        b = &b[(start + n + 2).min(b.len())..];
    }
    out
}

/// Stdout as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, showing both streams otherwise.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Polls `f` until it returns true or the deadline passes.
#[track_caller]
pub fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// Whether the host runs cgroup v2 only.
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A `berth registry serve` process on a free loopback port with its own root; killed and its
/// root removed on drop.
pub struct Registry {
    child: Child,
    pub root: TempDir,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub url: String,
}

impl Registry {
    pub fn start(extra: &[&str]) -> Registry {
        let root = TempDir::new("reg");
        Self::start_in(root, extra)
    }

    pub fn start_in(root: TempDir, extra: &[&str]) -> Registry {
        use std::io::BufRead;
        let mut child = Command::new(bin_dir().join("berth"))
            .args(["registry", "serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(root.join("data"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn berth registry serve");
        let stdout = child.stdout.take().expect("registry stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut reg = Registry {
            child,
            root,
            addr: String::new(),
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reg.url.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("berth registry serve did not print its address");
            if let Some(url) = line.split("listening on ").nth(1) {
                reg.url = url.trim().to_string();
                reg.addr = reg
                    .url
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_string();
            }
        }
        reg
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
