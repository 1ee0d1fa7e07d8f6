//! Test peers: a real `docker-registry` (distribution 2.8) on a free port, killed on drop, and
//! a tiny fake registry that serves fixed (wrong) bytes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running registry; the process is killed and its storage removed when dropped (also
/// when the test panics).
pub struct Registry {
    child: Child,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port(ip: &str) -> u16 {
    let l = TcpListener::bind((ip, 0)).expect("bind");
    l.local_addr().expect("addr").port()
}

/// A non-loopback IPv4 address of this machine (the source address of a route out; no packet
/// is sent), if it has one.
pub fn local_ip() -> Option<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then(|| ip.to_string())
}

/// Whether the registry binary is installed; tests skip (with a note) when not.
pub fn have_registry() -> bool {
    if Path::new(REGISTRY_BIN).exists() {
        return true;
    }
    eprintln!("skipping: {REGISTRY_BIN} not installed (apt-get install docker-registry)");
    false
}

impl Registry {
    /// Starts a registry on 127.0.0.1; `users` are (user, password) pairs for htpasswd auth,
    /// none = open.
    pub fn start(users: &[(&str, &str)]) -> Registry {
        Registry::start_on("127.0.0.1", users)
    }

    /// Starts a registry listening on `ip`.
    pub fn start_on(ip: &str, users: &[(&str, &str)]) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("mkdir");
        let mut auth = String::new();
        if !users.is_empty() {
            let htpasswd = dir.path().join("htpasswd");
            let mut lines = String::new();
            for (u, p) in users {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", u, p])
                    .output()
                    .expect("htpasswd (apache2-utils)");
                assert!(out.status.success(), "htpasswd failed");
                lines.push_str(String::from_utf8_lossy(&out.stdout).trim());
                lines.push('\n');
            }
            std::fs::write(&htpasswd, lines).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                htpasswd.display()
            );
        }
        // A port picked by the kernel may be taken again before the registry binds it: retry.
        for _ in 0..5 {
            let port = free_port(ip);
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {ip}:{port}\n{auth}",
                    storage.display()
                ),
            )
            .expect("write config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let mut child = child;
            let host = format!("{ip}:{port}");
            if wait_ready(&mut child, &host) {
                return Registry {
                    child,
                    host,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }
}

/// Polls `/v2/` until it answers (any status), the process exits, or 10 s pass.
fn wait_ready(child: &mut Child, host: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect(host) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let req = format!("GET /v2/ HTTP/1.0\r\nHost: {host}\r\n\r\n");
            if s.write_all(req.as_bytes()).is_ok() {
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.max(1);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A request as the fake server saw it: method, path with query, lower-cased headers.
pub struct FakeRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl FakeRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake server answers: status line, headers, body.
pub type FakeResponse = (String, Vec<(String, String)>, Vec<u8>);

type Handler = std::sync::Arc<dyn Fn(&FakeRequest) -> FakeResponse + Send + Sync>;

/// A fake registry answering requests (without bodies) with a handler; one request per
/// connection; stops when dropped.
pub struct FakeServer {
    pub host: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    /// Answers every request with `status`, `headers` and `body`.
    pub fn start(status: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> FakeServer {
        let status = status.to_string();
        FakeServer::with(move |_| (status.clone(), headers.clone(), body.clone()))
    }

    pub fn with(
        handler: impl Fn(&FakeRequest) -> FakeResponse + Send + Sync + 'static,
    ) -> FakeServer {
        let handler: Handler = std::sync::Arc::new(handler);
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let host = format!("127.0.0.1:{}", l.local_addr().expect("addr").port());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut raw = Vec::new();
                let mut b = [0u8; 1024];
                while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => raw.extend_from_slice(&b[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&raw).to_string();
                let mut lines = text.split("\r\n");
                let mut first = lines.next().unwrap_or("").split(' ');
                let req = FakeRequest {
                    method: first.next().unwrap_or("").to_string(),
                    path: first.next().unwrap_or("").to_string(),
                    headers: lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect(),
                };
                let (status, headers, body) = handler(&req);
                let mut resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in &headers {
                    resp.push_str(&format!("{k}: {v}\r\n"));
                }
                resp.push_str("\r\n");
                let _ = s.write_all(resp.as_bytes());
                if req.method != "HEAD" {
                    let _ = s.write_all(&body);
                }
            }
        });
        FakeServer {
            host,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).expect("write");
    p
}
