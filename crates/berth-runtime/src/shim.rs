//! The per-container shim: a single-threaded process (berthd re-executed as `berthd shim`) that
//! is the parent of one container. It mounts the container's rootfs, creates the container with
//! libcontainer, holds its stdio or PTY, writes its json-file log, reaps it and records its exit,
//! so the multi-threaded daemon never forks a container and can restart while it runs.
//!
//! Files in the shim directory (`<exec-root>/shims/<id>/`):
//! ```text
//! shim.json     ShimConfig, written by the daemon before it starts the shim
//! shim.sock     the control socket (protocol in `proto`)
//! console.sock  receives the PTY master from the container's init (TTY containers only)
//! shim.log      the shim's own diagnostics
//! exit.json     ExitInfo, written atomically when the container has exited and been cleaned up
//! ```

use crate::jsonlog::{now_rfc3339, LogWriter};
use crate::proto::{self, cmd, evt, ExitInfo, ShimState};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The overlay filesystem a container runs on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootfsMount {
    /// Image layers, top first.
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub target: PathBuf,
}

/// Everything the shim needs, written by the daemon to `shim.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    pub bundle: PathBuf,
    /// libcontainer's state root.
    pub state_root: PathBuf,
    pub log_path: PathBuf,
    pub log_max_size: u64,
    pub log_max_files: u32,
    pub tty: bool,
    pub open_stdin: bool,
    pub rootfs: RootfsMount,
}

/// Errors that stop a shim from creating its container.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Create(String),
}

/// Mounts the overlay rootfs unless it is mounted already.
pub fn mount_rootfs(m: &RootfsMount) -> Result<(), ShimError> {
    if is_mountpoint(&m.target) {
        return Ok(());
    }
    std::fs::create_dir_all(&m.target)?;
    std::fs::create_dir_all(&m.upper)?;
    std::fs::create_dir_all(&m.work)?;
    let lower: Vec<String> = m.lower.iter().map(|p| p.display().to_string()).collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        m.upper.display(),
        m.work.display()
    );
    tracing::debug!(target = %m.target.display(), %opts, "mount overlay");
    nix::mount::mount(
        Some("overlay"),
        &m.target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|e| ShimError::Create(format!("mount rootfs overlay: {e}")))
}

/// Unmounts the rootfs (lazily, so a stray open file never leaves it behind).
pub fn unmount_rootfs(target: &Path) {
    if is_mountpoint(target) {
        if let Err(e) = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
            tracing::error!(target = %target.display(), error = %e, "unmount rootfs");
        }
    }
}

/// Whether `path` is a mount point, from /proc/self/mountinfo.
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Resolves `path` inside `root` as the container would see it: symlinks (absolute ones
/// relative to `root`) are followed without ever leaving `root`.
fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    parts.reverse();
    let mut cur = PathBuf::new();
    let mut hops = 0;
    while let Some(p) = parts.pop() {
        match p.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let next = cur.join(&p);
        let meta = std::fs::symlink_metadata(root.join(&next)).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = std::fs::read_link(root.join(&next)).ok()?;
            let t = target.to_string_lossy().to_string();
            if t.starts_with('/') {
                cur = PathBuf::new();
            }
            for q in t.split('/').filter(|s| !s.is_empty()).rev() {
                parts.push(q.to_string());
            }
        } else {
            cur = next;
        }
    }
    Some(root.join(cur))
}

/// Checks, as Docker reports it, that the container's command can be executed.
pub fn check_executable(rootfs: &Path, arg0: &str, env: &[String]) -> Result<(), String> {
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let is_exec = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if arg0.contains('/') {
        let p = if arg0.starts_with('/') {
            arg0.to_string()
        } else {
            format!("/{arg0}")
        };
        match resolve_in_root(rootfs, &p) {
            Some(r) if r.exists() => {
                if is_exec(&r) {
                    Ok(())
                } else {
                    Err(format!("exec: \"{arg0}\": permission denied"))
                }
            }
            _ => Err(format!(
                "exec: \"{arg0}\": stat {arg0}: no such file or directory"
            )),
        }
    } else {
        for dir in path_var.split(':').filter(|d| !d.is_empty()) {
            if let Some(r) = resolve_in_root(rootfs, &format!("{dir}/{arg0}")) {
                if is_exec(&r) {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "exec: \"{arg0}\": executable file not found in $PATH"
        ))
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ShimError> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?)
}

fn pidfd_open(pid: i32) -> Result<OwnedFd, ShimError> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn recv_fd(stream: &UnixStream) -> Result<OwnedFd, ShimError> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .map_err(std::io::Error::from)?;
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: SCM_RIGHTS delivered a fresh fd that this process now owns.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(ShimError::Create(
        "no pty master received on console socket".into(),
    ))
}

/// The container's stdio as the shim holds it.
enum Stdio {
    Pipes {
        stdin: Option<File>,
        stdout: File,
        stderr: File,
    },
    Tty {
        master: File,
    },
}

/// A created container: what [`create`] hands to the event loop.
pub struct Created {
    container: Container,
    pid: i32,
    stdio: Stdio,
    listener: UnixListener,
}

/// Mounts the rootfs and creates the container (its init waits for `start`), and binds the
/// control socket. On error everything done so far is undone.
pub fn create(cfg: &ShimConfig, dir: &Path) -> Result<Created, ShimError> {
    mount_rootfs(&cfg.rootfs)?;
    match create_mounted(cfg, dir) {
        Ok(c) => Ok(c),
        Err(e) => {
            let _ = std::fs::remove_dir_all(cfg.state_root.join(&cfg.id));
            unmount_rootfs(&cfg.rootfs.target);
            Err(e)
        }
    }
}

fn create_mounted(cfg: &ShimConfig, dir: &Path) -> Result<Created, ShimError> {
    let spec_bytes = std::fs::read(cfg.bundle.join("config.json"))?;
    let spec: oci_spec::runtime::Spec = serde_json::from_slice(&spec_bytes)
        .map_err(|e| ShimError::Create(format!("bad config.json: {e}")))?;
    if let Some(p) = spec.process() {
        let args = p.args().clone().unwrap_or_default();
        let env = p.env().clone().unwrap_or_default();
        let arg0 = args
            .first()
            .ok_or_else(|| ShimError::Create("no command specified".into()))?;
        check_executable(&cfg.rootfs.target, arg0, &env).map_err(ShimError::Create)?;
    }
    // Sockets are bound by relative name (the shim runs in its directory): an absolute path
    // under a long exec root would not fit in sun_path's 108 bytes.
    std::env::set_current_dir(dir)?;
    let _ = std::fs::remove_file("shim.sock");
    let listener = UnixListener::bind("shim.sock")?;

    std::fs::create_dir_all(&cfg.state_root)?;
    let mut builder = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_executor(DefaultExecutor {})
        .with_root_path(&cfg.state_root)
        .map_err(|e| ShimError::Create(e.to_string()))?;
    let (stdio, console) = if cfg.tty {
        let console_path = dir.join("console.sock");
        let _ = std::fs::remove_file("console.sock");
        let console = UnixListener::bind("console.sock")?;
        builder = builder.with_console_socket(Some(&console_path));
        (None, Some(console))
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let stdin = if cfg.open_stdin {
            let (in_r, in_w) = pipe()?;
            builder = builder.with_stdin(in_r);
            Some(File::from(in_w))
        } else {
            builder = builder.with_stdin(File::open("/dev/null")?);
            None
        };
        builder = builder.with_stdout(out_w).with_stderr(err_w);
        (
            Some(Stdio::Pipes {
                stdin,
                stdout: File::from(out_r),
                stderr: File::from(err_r),
            }),
            None,
        )
    };
    let container = builder
        .as_init(&cfg.bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| ShimError::Create(format!("failed to create task for container: {e}")))?;
    let pid = container.pid().map(|p| p.as_raw()).unwrap_or(0);
    let stdio = match (stdio, console) {
        (Some(s), _) => s,
        (None, Some(console)) => {
            let (conn, _) = console.accept()?;
            let master = recv_fd(&conn)?;
            let _ = std::fs::remove_file(dir.join("console.sock"));
            Stdio::Tty {
                master: File::from(master),
            }
        }
        (None, None) => unreachable!("stdio is set up for both modes"),
    };
    Ok(Created {
        container,
        pid,
        stdio,
        listener,
    })
}

/// One of the container's output streams as the shim reads it.
struct OutputPipe {
    /// The event type its data is sent as.
    kind: u8,
    /// 0 stdout, 1 stderr, for the log.
    stream_no: usize,
    /// `None` once it reached EOF.
    file: Option<File>,
}

struct Client {
    stream: UnixStream,
    dec: proto::Decoder,
    subscribed: bool,
}

impl Client {
    fn send(&mut self, kind: u8, payload: &[u8]) -> bool {
        self.stream.write_all(&proto::encode(kind, payload)).is_ok()
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd we own, with flags read from it.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// Runs the container until it exits, serving the control socket; returns how it ended.
/// The caller has already told the daemon the container is created.
pub fn serve(cfg: &ShimConfig, dir: &Path, created: Created) -> ExitInfo {
    let Created {
        mut container,
        pid,
        stdio,
        listener,
    } = created;
    let mut log = match LogWriter::open(&cfg.log_path, cfg.log_max_size, cfg.log_max_files) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::error!(error = %e, "open container log");
            None
        }
    };
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::error!(error = %e, pid, "pidfd_open");
            None
        }
    };
    let out = |kind, stream_no, file| OutputPipe {
        kind,
        stream_no,
        file: Some(file),
    };
    let (mut stdin, mut outputs) = match stdio {
        Stdio::Pipes {
            stdin,
            stdout,
            stderr,
        } => (
            stdin,
            vec![out(evt::STDOUT, 0, stdout), out(evt::STDERR, 1, stderr)],
        ),
        Stdio::Tty { master } => {
            let input = master.try_clone().ok();
            (
                if cfg.open_stdin { input } else { None },
                vec![out(evt::STDOUT, 0, master)],
            )
        }
    };
    let tty_fd = if cfg.tty {
        outputs[0].file.as_ref().map(|f| f.as_raw_fd())
    } else {
        None
    };
    for f in outputs.iter().filter_map(|o| o.file.as_ref()) {
        set_nonblocking(f.as_raw_fd());
    }
    let mut clients: Vec<Client> = Vec::new();
    let mut started_at = String::new();
    let mut exit_code: Option<i32> = None;
    let mut exit_deadline: Option<std::time::Instant> = None;
    let mut paused = false;
    let mut buf = vec![0u8; 64 * 1024];

    loop {
        // Once the init has exited, wait for the output pipes to reach EOF (every process in the
        // pid namespace is killed with it), but never forever.
        let outputs_open = outputs.iter().any(|o| o.file.is_some());
        if exit_code.is_some()
            && (!outputs_open || exit_deadline.is_some_and(|d| std::time::Instant::now() > d))
        {
            break;
        }
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        let ev = libc::POLLIN;
        pfds.push(libc::pollfd {
            fd: listener.as_raw_fd(),
            events: ev,
            revents: 0,
        });
        pfds.push(libc::pollfd {
            fd: if exit_code.is_none() {
                pidfd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1)
            } else {
                -1
            },
            events: ev,
            revents: 0,
        });
        for o in &outputs {
            pfds.push(libc::pollfd {
                fd: o.file.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1),
                events: ev,
                revents: 0,
            });
        }
        let client_base = pfds.len();
        for c in &clients {
            pfds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: ev,
                revents: 0,
            });
        }
        let timeout = if exit_code.is_some() { 100 } else { 1000 };
        // SAFETY: pfds is a valid array of pollfd for its length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(error = %err, "poll");
            break;
        }
        if pidfd.is_none() && exit_code.is_none() {
            // Without a pidfd, fall back to polling the child.
            if let Some(code) = try_reap(pid) {
                exit_code = Some(code);
                exit_deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(2));
            }
        }
        if pfds[1].revents != 0 {
            if let Some(code) = try_reap(pid) {
                exit_code = Some(code);
                exit_deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(2));
            }
        }
        for (i, out) in outputs.iter_mut().enumerate() {
            if pfds[2 + i].revents == 0 {
                continue;
            }
            let Some(f) = out.file.as_mut() else { continue };
            match f.read(&mut buf) {
                Ok(0) => out.file = None,
                Ok(k) => {
                    let data = &buf[..k];
                    if let Some(l) = log.as_mut() {
                        if let Err(e) = l.write(out.stream_no, data) {
                            tracing::error!(error = %e, "write container log");
                        }
                    }
                    clients.retain_mut(|c| !c.subscribed || c.send(out.kind, data));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // EIO on a PTY master means the slave side is gone.
                Err(_) => out.file = None,
            }
        }
        if pfds[0].revents != 0 {
            if let Ok((s, _)) = listener.accept() {
                let _ = s.set_write_timeout(Some(std::time::Duration::from_secs(10)));
                clients.push(Client {
                    stream: s,
                    dec: proto::Decoder::default(),
                    subscribed: false,
                });
            }
        }
        let mut drop_clients = Vec::new();
        for (i, c) in clients.iter_mut().enumerate() {
            if pfds.get(client_base + i).map(|p| p.revents).unwrap_or(0) == 0 {
                continue;
            }
            match c.stream.read(&mut buf) {
                Ok(0) | Err(_) => {
                    drop_clients.push(i);
                    continue;
                }
                Ok(k) => c.dec.push(&buf[..k]),
            }
            loop {
                let frame = match c.dec.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(_) => {
                        drop_clients.push(i);
                        break;
                    }
                };
                let (kind, payload) = frame;
                let reply: Option<Result<(), String>> = match kind {
                    cmd::SUBSCRIBE => {
                        c.subscribed = true;
                        Some(Ok(()))
                    }
                    cmd::START => {
                        let r = container.start().map_err(|e| e.to_string());
                        if r.is_ok() {
                            started_at = now_rfc3339();
                        }
                        Some(r)
                    }
                    cmd::STDIN => {
                        if let Some(s) = stdin.as_mut() {
                            if s.write_all(&payload).is_err() {
                                stdin = None;
                            }
                        }
                        None
                    }
                    cmd::CLOSE_STDIN => {
                        if !cfg.tty {
                            stdin = None;
                        } else if let Some(s) = stdin.as_mut() {
                            // A TTY has no half-close: send EOF (^D) as a terminal would.
                            let _ = s.write_all(&[4]);
                        }
                        None
                    }
                    cmd::KILL => {
                        let sig = payload
                            .get(..4)
                            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(15);
                        Some(send_signal(pid, sig as i32, exit_code.is_some()))
                    }
                    cmd::RESIZE => {
                        if let (Some(fd), Some(b)) = (tty_fd, payload.get(..4)) {
                            let ws = libc::winsize {
                                ws_row: u16::from_be_bytes([b[0], b[1]]),
                                ws_col: u16::from_be_bytes([b[2], b[3]]),
                                ws_xpixel: 0,
                                ws_ypixel: 0,
                            };
                            // SAFETY: TIOCSWINSZ on the PTY master with a valid winsize.
                            unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
                        }
                        Some(Ok(()))
                    }
                    cmd::PAUSE => {
                        let r = if payload.first() == Some(&1) {
                            container.pause()
                        } else {
                            container.resume()
                        };
                        if r.is_ok() {
                            paused = payload.first() == Some(&1);
                        }
                        Some(r.map_err(|e| e.to_string()))
                    }
                    cmd::STATE => {
                        let st = ShimState {
                            pid,
                            started_at: started_at.clone(),
                            running: exit_code.is_none(),
                            paused,
                        };
                        let body = serde_json::to_vec(&st).unwrap_or_default();
                        if !c.send(evt::STATE, &body) {
                            drop_clients.push(i);
                        }
                        None
                    }
                    _ => Some(Err(format!("unknown shim command {kind}"))),
                };
                if let Some(r) = reply {
                    let msg = r.err().unwrap_or_default();
                    if !c.send(evt::REPLY, msg.as_bytes()) {
                        drop_clients.push(i);
                        break;
                    }
                }
            }
        }
        drop_clients.sort_unstable();
        drop_clients.dedup();
        for i in drop_clients.into_iter().rev() {
            clients.remove(i);
        }
    }

    if let Some(l) = log.as_mut() {
        let _ = l.flush_partial();
    }
    if let Err(e) = container.delete(true) {
        tracing::error!(error = %e, "delete container state");
    }
    unmount_rootfs(&cfg.rootfs.target);
    let info = ExitInfo {
        exit_code: exit_code.unwrap_or(-1),
        finished_at: now_rfc3339(),
        oom_killed: false,
        error: String::new(),
    };
    write_exit(dir, &info);
    let body = serde_json::to_vec(&info).unwrap_or_default();
    for c in clients.iter_mut().filter(|c| c.subscribed) {
        c.send(evt::EXIT, &body);
    }
    info
}

/// Writes `exit.json` atomically.
pub fn write_exit(dir: &Path, info: &ExitInfo) {
    let tmp = dir.join("exit.json.tmp");
    let ok = std::fs::write(&tmp, serde_json::to_vec(info).unwrap_or_default())
        .and_then(|_| std::fs::rename(&tmp, dir.join("exit.json")));
    if let Err(e) = ok {
        tracing::error!(error = %e, "write exit.json");
    }
}

fn send_signal(pid: i32, sig: i32, exited: bool) -> Result<(), String> {
    if exited {
        return Err("container is not running".into());
    }
    let signal =
        nix::sys::signal::Signal::try_from(sig).map_err(|_| format!("invalid signal: {sig}"))?;
    tracing::debug!(pid, sig, "kill");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).map_err(|e| e.to_string())
}

/// Reaps the init if it has exited: its exit code, 128+signal when killed by a signal.
fn try_reap(pid: i32) -> Option<i32> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
        Ok(_) => None,
        // Not our child any more (already reaped): treat as gone.
        Err(nix::errno::Errno::ECHILD) => Some(255),
        Err(_) => None,
    }
}

/// Entry point of `berthd shim`: reads `shim.json` from `dir`, creates the container, tells the
/// daemon through `ready` (`ok <pid>\n` or `error <message>\n`), then serves until exit.
pub fn main(dir: &Path, mut ready: File) -> i32 {
    let cfg: ShimConfig = match std::fs::read(dir.join("shim.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(ready, "error reading shim.json: {e}");
            return 1;
        }
    };
    let created = match create(&cfg, dir) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(ready, "error {}", e.to_string().replace('\n', " "));
            return 1;
        }
    };
    let _ = writeln!(ready, "ok {}", created.pid);
    drop(ready);
    let info = serve(&cfg, dir, created);
    tracing::debug!(code = info.exit_code, "container exited");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_symlinks_inside_root() {
        let root = std::env::temp_dir().join(format!("berth-resolve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/busybox"), b"x").unwrap();
        std::fs::set_permissions(
            root.join("bin/busybox"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("/bin/busybox", root.join("bin/sh")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/passwd", root.join("bin/evil")).unwrap();
        std::fs::write(root.join("bin/data"), b"x").unwrap();
        assert_eq!(
            resolve_in_root(&root, "/bin/sh"),
            Some(root.join("bin/busybox"))
        );
        // `..` past the root stays at the root, as in the container.
        assert_eq!(resolve_in_root(&root, "/bin/evil"), None);
        let env = vec!["PATH=/usr/bin:/bin".to_string()];
        assert_eq!(check_executable(&root, "sh", &env), Ok(()));
        assert_eq!(check_executable(&root, "/bin/sh", &env), Ok(()));
        assert_eq!(
            check_executable(&root, "nope", &env),
            Err("exec: \"nope\": executable file not found in $PATH".into())
        );
        assert_eq!(
            check_executable(&root, "/nope", &env),
            Err("exec: \"/nope\": stat /nope: no such file or directory".into())
        );
        assert_eq!(
            check_executable(&root, "/bin/data", &env),
            Err("exec: \"/bin/data\": permission denied".into())
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
