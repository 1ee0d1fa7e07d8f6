//! `POST /containers/{id}/start`: writes the OCI bundle, spawns the container's shim (the daemon
//! is never the container's parent), connects to it and starts the process; then a monitor task
//! follows the container's output and exit.

use super::model::ContainerRecord;
use super::shim_conn::{Event, ShimConn, ShimReader};
use super::{blocking, Container, Daemon, Lifecycle, Output};
use crate::error::{image_err, internal, ApiError, ErrorKind, Result};
use berth_runtime::proto::{cmd, ExitInfo};
use berth_runtime::shim::{RootfsMount, ShimConfig};
use berth_runtime::spec::{BindMount, HostFacts, NetNs, SpecInput, Ulimit};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncBufReadExt;

/// Default `PATH` when the image sets none (Docker's `DefaultPathEnv`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// json-file rotation defaults: berth rotates by default so a chatty container cannot fill the disk.
const LOG_MAX_SIZE: u64 = 20 * 1024 * 1024;
const LOG_MAX_FILES: u32 = 5;

/// Reads `exit.json` left by a shim.
pub fn read_exit(shim_dir: &Path) -> Option<ExitInfo> {
    serde_json::from_slice(&std::fs::read(shim_dir.join("exit.json")).ok()?).ok()
}

/// Finds a file of the container's filesystem by looking through the writable layer and then
/// the image layers, top first (the view overlayfs would give).
pub(crate) fn layered_file(layers: &[PathBuf], rel: &str) -> Option<String> {
    for l in layers {
        let p = l.join(rel);
        if let Ok(meta) = std::fs::symlink_metadata(&p) {
            if meta.file_type().is_file() {
                return std::fs::read_to_string(p).ok();
            }
            return None;
        }
    }
    None
}

/// Resolves `user` (`name`, `uid`, `uid:gid`, `name:group`) against the container's passwd and
/// group files, as Docker does at start.
pub fn resolve_user(
    user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<(u32, u32, Vec<u32>)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd_entries: Vec<Vec<&str>> = passwd
        .unwrap_or("")
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    let group_entries: Vec<Vec<&str>> = group
        .unwrap_or("")
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 3)
        .collect();
    let (uid, mut gid, uname) = if u.is_empty() {
        (0, 0, Some("root".to_string()))
    } else if let Ok(n) = u.parse::<u32>() {
        match passwd_entries.iter().find(|f| f[2] == u) {
            Some(f) => (n, f[3].parse().unwrap_or(0), Some(f[0].to_string())),
            None => (n, 0, None),
        }
    } else {
        match passwd_entries.iter().find(|f| f[0] == u) {
            Some(f) => (
                f[2].parse().unwrap_or(0),
                f[3].parse().unwrap_or(0),
                Some(u.to_string()),
            ),
            None => {
                return Err(ApiError::invalid(format!(
                    "unable to find user {u}: no matching entries in passwd file"
                )))
            }
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => match group_entries.iter().find(|f| f[0] == g) {
                Some(f) => f[2].parse().unwrap_or(0),
                None => {
                    return Err(ApiError::invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    )))
                }
            },
        };
    }
    let mut extra = Vec::new();
    if let Some(name) = uname {
        for f in &group_entries {
            let members = f.get(3).copied().unwrap_or("");
            if members.split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse::<u32>() {
                    if n != gid && !extra.contains(&n) {
                        extra.push(n);
                    }
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

/// The process environment: PATH and HOSTNAME first, TERM with a TTY, then the container's.
fn process_env(rec: &ContainerRecord) -> Vec<String> {
    let mut base = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={}", rec.config.hostname),
    ];
    if rec.config.tty {
        base.push("TERM=xterm".into());
    }
    super::create::merge_env(&base, rec.config.env.as_deref().unwrap_or(&[]))
}

/// Builds the runtime spec input from the container record.
fn spec_input(d: &Daemon, rec: &ContainerRecord, layers: &[PathBuf]) -> Result<SpecInput> {
    let dir = d.paths.container_dir(&rec.id);
    let h = &rec.host_config;
    let mut search = vec![dir.join("rw/upper")];
    search.extend(layers.iter().cloned());
    let (uid, gid, additional_gids) = resolve_user(
        &rec.config.user,
        layered_file(&search, "etc/passwd").as_deref(),
        layered_file(&search, "etc/group").as_deref(),
    )?;
    let mut args = vec![rec.path.clone()];
    args.extend(rec.args.iter().cloned());
    let cwd = if rec.config.working_dir.is_empty() {
        "/".to_string()
    } else {
        rec.config.working_dir.clone()
    };
    let netns = match h.network_mode.as_str() {
        "host" => NetNs::Host,
        _ => NetNs::New,
    };
    let mut mounts: Vec<BindMount> = ["hostname", "hosts", "resolv.conf"]
        .iter()
        .map(|f| BindMount {
            source: dir.join(f),
            destination: format!("/etc/{f}"),
            readonly: h.readonly_rootfs,
        })
        .collect();
    for b in &h.binds {
        let b = super::create::parse_bind(b)?;
        // Docker creates a missing bind source as a directory.
        if !Path::new(&b.source).exists() {
            std::fs::create_dir_all(&b.source)
                .map_err(|e| internal(&format!("create bind source {}", b.source), e))?;
        }
        mounts.push(BindMount {
            source: b.source.into(),
            destination: b.destination,
            readonly: b.readonly,
        });
    }
    Ok(SpecInput {
        args,
        env: process_env(rec),
        cwd,
        uid,
        gid,
        additional_gids,
        hostname: rec.config.hostname.clone(),
        tty: rec.config.tty,
        rootfs: dir.join("rootfs"),
        readonly_rootfs: h.readonly_rootfs,
        cap_add: h.cap_add.clone(),
        cap_drop: h.cap_drop.clone(),
        privileged: h.privileged,
        memory: h.memory,
        memory_swap: h.memory_swap,
        memory_reservation: h.memory_reservation,
        nano_cpus: h.nano_cpus,
        cpu_shares: h.cpu_shares,
        cpu_quota: h.cpu_quota,
        cpu_period: h.cpu_period,
        cpuset_cpus: h.cpuset_cpus.clone(),
        pids_limit: h.pids_limit,
        ulimits: h
            .ulimits
            .iter()
            .map(|u| Ulimit {
                name: u.name.clone(),
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        shm_size: h.shm_size,
        netns,
        mounts,
        cgroups_path: format!("/berth/{}", rec.id),
        oom_score_adj: if h.oom_score_adj != 0 {
            Some(h.oom_score_adj as i32)
        } else {
            None
        },
        seccomp_unconfined: h
            .security_opt
            .iter()
            .any(|o| o == "seccomp=unconfined" || o == "seccomp:unconfined"),
        no_new_privileges: h.security_opt.iter().any(|o| {
            o == "no-new-privileges"
                || o == "no-new-privileges:true"
                || o == "no-new-privileges=true"
        }),
        sysctls: h.sysctls.clone().into_iter().collect(),
    })
}

/// Writes the bundle and the shim's config; returns the shim directory.
fn prepare(d: &Daemon, rec: &ContainerRecord) -> Result<PathBuf> {
    let image = d.images.resolve(&rec.image_id).map_err(image_err)?;
    let layers = d.images.lower_dirs(&image).map_err(image_err)?;
    let input = spec_input(d, rec, &layers)?;
    let spec = berth_runtime::spec::build_spec(&input, &HostFacts::detect())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let dir = d.paths.container_dir(&rec.id);
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).map_err(|e| internal("create bundle", e))?;
    let json = serde_json::to_vec_pretty(&spec).map_err(|e| internal("encode spec", e))?;
    write_atomic(&bundle.join("config.json"), &json).map_err(|e| internal("write spec", e))?;

    let mut lower = layers;
    if lower.is_empty() {
        // overlayfs needs one lower dir even for an image without layers.
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).map_err(|e| internal("create empty layer", e))?;
        lower.push(empty);
    }
    let shim_dir = d.paths.shim_dir(&rec.id);
    let _ = std::fs::remove_dir_all(&shim_dir);
    std::fs::create_dir_all(&shim_dir).map_err(|e| internal("create shim dir", e))?;
    // libcontainer refuses to create a container whose state dir exists: clear a stale one.
    let _ = std::fs::remove_dir_all(d.paths.runtime_root().join(&rec.id));
    let cfg = ShimConfig {
        id: rec.id.clone(),
        bundle,
        state_root: d.paths.runtime_root(),
        log_path: d.paths.log_path(&rec.id),
        log_max_size: LOG_MAX_SIZE,
        log_max_files: LOG_MAX_FILES,
        tty: rec.config.tty,
        open_stdin: rec.config.open_stdin,
        rootfs: RootfsMount {
            lower,
            upper: dir.join("rw/upper"),
            work: dir.join("rw/work"),
            target: dir.join("rootfs"),
        },
    };
    let json = serde_json::to_vec_pretty(&cfg).map_err(|e| internal("encode shim config", e))?;
    write_atomic(&shim_dir.join("shim.json"), &json)
        .map_err(|e| internal("write shim config", e))?;
    Ok(shim_dir)
}

/// Writes a file by temp + rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(tmp, path)
}

/// Spawns `berthd shim` for the container and waits for it to report the container created.
async fn spawn_shim(shim_dir: &Path) -> Result<i32> {
    let log = std::fs::File::create(shim_dir.join("shim.log"))
        .map_err(|e| internal("create shim log", e))?;
    // /proc/self/exe is the running daemon's own image even if its file was replaced since.
    let mut cmd = tokio::process::Command::new("/proc/self/exe");
    cmd.arg("shim")
        .arg("--dir")
        .arg(shim_dir)
        .current_dir(shim_dir);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log);
    cmd.env_remove("BERTH_LOG");
    // SAFETY: setsid is async-signal-safe; it detaches the shim from the daemon's session so
    // the daemon's signals and exit do not reach it.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| internal("spawn shim", e))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ApiError::internal("shim has no ready pipe"))?;
    // The shim lives on after the daemon: reap it in the background while we are here.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let mut line = String::new();
    let mut r = tokio::io::BufReader::new(stdout);
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(60), r.read_line(&mut line)).await;
    match read {
        Err(_) => Err(ApiError::internal(
            "timed out waiting for the container's shim",
        )),
        Ok(Err(e)) => Err(internal("read from shim", e)),
        Ok(Ok(_)) => {
            let line = line.trim_end();
            if let Some(pid) = line.strip_prefix("ok ") {
                Ok(pid.parse().unwrap_or(0))
            } else if let Some(msg) = line.strip_prefix("error ") {
                Err(ApiError::invalid(msg.to_string()))
            } else {
                let log = std::fs::read_to_string(shim_dir.join("shim.log")).unwrap_or_default();
                Err(ApiError::internal(format!(
                    "shim failed: {line} {}",
                    log.trim()
                )))
            }
        }
    }
}

impl Daemon {
    /// Starts a created or stopped container.
    pub async fn start(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        let r = {
            let _op = c.op.lock().await;
            self.start_locked(c).await
        };
        // As dockerd does, an AutoRemove container that cannot start is removed, which is also
        // what a client waiting for `removed` needs to return.
        if let Err(e) = &r {
            if e.kind != ErrorKind::NotModified && c.snapshot().host_config.auto_remove {
                if let Err(re) = self.remove(c, true).await {
                    tracing::error!(error = %re.message, "remove container after failed start");
                }
            }
        }
        r
    }

    /// Starts the container; the caller holds its `op` lock.
    pub(super) async fn start_locked(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        let rec = c.snapshot();
        if rec.state.running {
            return Err(ApiError::new(
                ErrorKind::NotModified,
                "container already started",
            ));
        }
        if rec.state.status == "removing" || rec.state.dead {
            return Err(ApiError::conflict(format!(
                "container {} is marked for removal and cannot be started",
                rec.id
            )));
        }
        let d = self.clone();
        let rec2 = rec.clone();
        let shim_dir = blocking(move || prepare(&d, &rec2)).await?;
        let pid = match spawn_shim(&shim_dir).await {
            Ok(pid) => pid,
            Err(e) => {
                let log = std::fs::read_to_string(shim_dir.join("shim.log")).unwrap_or_default();
                tracing::warn!(id = %rec.short_id(), error = %e.message, shim_log = %log.trim(), "container failed to start");
                self.record_start_failure(c, &e.message);
                let _ = std::fs::remove_dir_all(&shim_dir);
                return Err(e);
            }
        };
        // If the shim cannot be reached, its created container would wait for `start` forever:
        // kill the container's init, and the shim reaps it, cleans up and exits by itself.
        let abandon = |what: &str, e: String| {
            tracing::error!(id = %rec.short_id(), error = %e, "{what}; abandoning the container");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            self.record_start_failure(c, &e);
            internal(what, e)
        };
        let (conn, reader) = ShimConn::connect(&shim_dir)
            .await
            .map_err(|e| abandon("connect to shim", e.to_string()))?;
        // The monitor reads the replies, so it runs before the first request.
        *c.shim.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        tokio::spawn(monitor(self.clone(), c.clone(), conn.clone(), reader));
        conn.request(cmd::SUBSCRIBE, &[])
            .await
            .map_err(|e| abandon("subscribe to shim", e))?;
        if let Err(e) = conn.request(cmd::START, &[]).await {
            let _ = conn.request(cmd::KILL, &9u32.to_be_bytes()).await;
            self.record_start_failure(c, &e);
            return Err(ApiError::internal(format!("start container: {e}")));
        }
        {
            let mut r = c.rec.lock().unwrap_or_else(|e| e.into_inner());
            r.state.status = "running".into();
            r.state.running = true;
            r.state.paused = false;
            r.state.restarting = false;
            r.state.pid = pid as i64;
            r.state.exit_code = 0;
            r.state.error.clear();
            r.state.started_at = berth_runtime::jsonlog::now_rfc3339();
            r.manually_stopped = false;
        }
        self.persist(c)?;
        c.life.send_modify(|l| l.running = true);
        tracing::info!(id = %&rec.id[..12], pid, "container started");
        Ok(())
    }

    fn record_start_failure(&self, c: &Container, msg: &str) {
        {
            let mut r = c.rec.lock().unwrap_or_else(|e| e.into_inner());
            r.state.error = msg.to_string();
            r.state.exit_code = if msg.contains("executable file not found")
                || msg.contains("no such file or directory")
            {
                127
            } else if msg.contains("permission denied") {
                126
            } else {
                128
            };
            if r.state.status != "created" {
                r.state.status = "exited".into();
            }
        }
        let _ = self.persist(c);
    }
}

/// Follows a running container through its shim: fans output out to attach clients and handles
/// the exit.
pub async fn monitor(
    d: Arc<Daemon>,
    c: Arc<Container>,
    conn: Arc<ShimConn>,
    mut reader: ShimReader,
) {
    let info = loop {
        match reader.next().await {
            Some(Event::Stdout(b)) => {
                let _ = c.output.send(Output::Stdout(b.into()));
            }
            Some(Event::Stderr(b)) => {
                let _ = c.output.send(Output::Stderr(b.into()));
            }
            Some(Event::Exit(info)) => break Some(info),
            None => break None,
        }
    };
    // Only the connection we were started with may report an exit: a daemon shutdown drops it.
    let current = c.shim();
    if !current.as_ref().is_some_and(|s| Arc::ptr_eq(s, &conn)) {
        return;
    }
    let shim_dir = d.paths.shim_dir(&c.id());
    let info = match info {
        Some(i) => i,
        None => {
            // The shim closed without an exit frame: it may have written exit.json.
            let mut waited = 0;
            loop {
                if let Some(i) = read_exit(&shim_dir) {
                    break i;
                }
                if waited >= 20 {
                    break ExitInfo {
                        exit_code: 255,
                        finished_at: berth_runtime::jsonlog::now_rfc3339(),
                        oom_killed: false,
                        error: "container's shim exited unexpectedly".into(),
                    };
                }
                waited += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    on_exit(d, c, info).await;
}

/// Records an exit, wakes waiters and attach clients, and applies AutoRemove or the restart
/// policy.
pub async fn on_exit(d: Arc<Daemon>, c: Arc<Container>, info: ExitInfo) {
    c.shim.lock().unwrap_or_else(|e| e.into_inner()).take();
    let rec = {
        let mut r = c.rec.lock().unwrap_or_else(|e| e.into_inner());
        r.state.status = "exited".into();
        r.state.running = false;
        r.state.paused = false;
        r.state.restarting = false;
        r.state.pid = 0;
        r.state.exit_code = info.exit_code as i64;
        r.state.oom_killed = info.oom_killed;
        r.state.error = info.error.clone();
        r.state.finished_at = info.finished_at.clone();
        r.clone()
    };
    let _ = d.persist(&c);
    let _ = std::fs::remove_dir_all(d.paths.shim_dir(&rec.id));
    let _ = c.output.send(Output::End);
    c.life.send_modify(|l: &mut Lifecycle| {
        l.exits += 1;
        l.running = false;
    });
    tracing::info!(id = %rec.short_id(), code = info.exit_code, "container exited");
    if rec.host_config.auto_remove {
        if let Err(e) = d.remove(&c, true).await {
            tracing::error!(id = %rec.short_id(), error = %e.message, "auto-remove");
        }
        return;
    }
    let policy = rec.host_config.restart_policy.name.as_str();
    let wanted = !rec.manually_stopped
        && match policy {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                info.exit_code != 0
                    && (rec.host_config.restart_policy.maximum_retry_count == 0
                        || rec.restart_count < rec.host_config.restart_policy.maximum_retry_count)
            }
            _ => false,
        };
    if wanted {
        let delay = 100u64 << rec.restart_count.clamp(0, 10);
        {
            let mut r = c.rec.lock().unwrap_or_else(|e| e.into_inner());
            r.state.status = "restarting".into();
            r.state.restarting = true;
            r.restart_count += 1;
        }
        let _ = d.persist(&c);
        tokio::spawn(restart_after(d, c, delay));
    }
}

/// Restarts the container after `delay` ms unless a stop came first. Boxed as a `Send` future:
/// start → monitor → exit → restart → start is a cycle the compiler cannot size otherwise.
fn restart_after(
    d: Arc<Daemon>,
    c: Arc<Container>,
    delay: u64,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        tokio::time::sleep(std::time::Duration::from_millis(delay.min(60_000))).await;
        let _op = c.op.lock().await;
        let still = {
            let r = c.rec.lock().unwrap_or_else(|e| e.into_inner());
            r.state.restarting && !r.manually_stopped
        };
        if still {
            if let Err(e) = d.start_locked(&c).await {
                tracing::error!(error = %e.message, "restart container");
                let mut r = c.rec.lock().unwrap_or_else(|e| e.into_inner());
                r.state.restarting = false;
                r.state.status = "exited".into();
            }
            let _ = d.persist(&c);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,alice\nstaff:x:50:alice\nalice:x:1000:\n";

    #[test]
    fn users_resolve_like_docker() {
        assert_eq!(
            resolve_user("", Some(PASSWD), Some(GROUP)).unwrap(),
            (0, 0, vec![10])
        );
        assert_eq!(
            resolve_user("alice", Some(PASSWD), Some(GROUP)).unwrap(),
            (1000, 1000, vec![10, 50])
        );
        assert_eq!(
            resolve_user("1000:50", Some(PASSWD), Some(GROUP)).unwrap(),
            (1000, 50, vec![10])
        );
        assert_eq!(resolve_user("4242", None, None).unwrap(), (4242, 0, vec![]));
        assert_eq!(
            resolve_user("nobody:staff", Some(PASSWD), Some(GROUP)).unwrap(),
            (65534, 50, vec![])
        );
        let e = resolve_user("bob", Some(PASSWD), Some(GROUP)).unwrap_err();
        assert_eq!(
            e.message,
            "unable to find user bob: no matching entries in passwd file"
        );
        assert!(resolve_user("alice:nogroup", Some(PASSWD), Some(GROUP)).is_err());
    }
}
