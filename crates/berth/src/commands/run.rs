//! `run` and `create`: the container config from docker's flags, and run's
//! create → attach → wait → start flow with stdin, TTY and resize handling.

use super::{write_err, write_out};
use crate::cli::RunArgs;
use crate::client::{empty, next_chunk, Client, ClientError, Upgraded};
use crate::opts;
use crate::term;
use crate::{CliError, CmdResult};
use berth_api::stream::{FrameDecoder, StdStream};
use hyper::Method;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// docker's error for run/create: prefixed, with a usage hint, status 125 (126/127 for exec errors).
fn run_error(cmd: &str, msg: &str) -> CliError {
    let trimmed = msg
        .strip_prefix("Error response from daemon: ")
        .unwrap_or(msg);
    let code = exit_code_for(trimmed);
    CliError::Status(
        code,
        format!("berth: {msg}\n\nRun 'berth {cmd} --help' for more information"),
    )
}

/// docker's mapping of a start/create error text to an exit status.
pub fn exit_code_for(msg: &str) -> i32 {
    if msg.contains("executable file not found")
        || msg.contains("no such file or directory")
        || msg.contains("system cannot find the file specified")
    {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        125
    }
}

fn flag_error(cmd: &str, flag: &str, value: &str, err: &str) -> CliError {
    CliError::Status(
        125,
        format!("invalid argument \"{value}\" for \"{flag}\" flag: {err}\n\nRun 'berth {cmd} --help' for more information"),
    )
}

/// The create body (Config with HostConfig and NetworkingConfig) and the image.
pub fn build_config(a: &RunArgs, cmd: &str) -> Result<Value, CliError> {
    let image = a.image_and_cmd.first().cloned().unwrap_or_default();
    let command: Vec<String> = a.image_and_cmd.iter().skip(1).cloned().collect();

    let mut env = Vec::new();
    for f in &a.env_file {
        let content = std::fs::read_to_string(f)
            .map_err(|e| flag_error(cmd, "--env-file", f, &format!("open {f}: {}", io_msg(&e))))?;
        env.extend(
            opts::parse_env_file(&content, |k| std::env::var(k).ok())
                .map_err(|e| flag_error(cmd, "--env-file", f, &e))?,
        );
    }
    env.extend(a.env.iter().map(|e| opts::expand_env(e)));

    let mut host = Map::new();
    if let Some(m) = &a.memory {
        host.insert(
            "Memory".into(),
            json!(opts::parse_ram(m).map_err(|e| flag_error(cmd, "-m, --memory", m, &e))?),
        );
    }
    if let Some(m) = &a.memory_swap {
        host.insert(
            "MemorySwap".into(),
            json!(opts::parse_swap(m).map_err(|e| flag_error(cmd, "--memory-swap", m, &e))?),
        );
    }
    if let Some(c) = &a.cpus {
        host.insert(
            "NanoCpus".into(),
            json!(opts::parse_cpus(c).map_err(|e| flag_error(cmd, "--cpus", c, &e))?),
        );
    }
    if let Some(s) = a.cpu_shares {
        host.insert("CpuShares".into(), json!(s));
    }
    if let Some(p) = a.pids_limit {
        host.insert("PidsLimit".into(), json!(p));
    }
    if let Some(s) = &a.shm_size {
        host.insert(
            "ShmSize".into(),
            json!(opts::parse_ram(s).map_err(|e| flag_error(cmd, "--shm-size", s, &e))?),
        );
    }
    let mut ulimits = Vec::new();
    for u in &a.ulimit {
        ulimits.push(opts::parse_ulimit(u).map_err(|e| flag_error(cmd, "--ulimit", u, &e))?);
    }
    if !ulimits.is_empty() {
        host.insert("Ulimits".into(), Value::Array(ulimits));
    }
    let restart = match &a.restart {
        Some(r) => opts::parse_restart(r).map_err(|e| flag_error(cmd, "--restart", r, &e))?,
        None => json!({"Name": "no", "MaximumRetryCount": 0}),
    };
    if a.rm
        && restart["Name"]
            .as_str()
            .is_some_and(|n| n != "no" && !n.is_empty())
    {
        return Err(CliError::Status(
            125,
            "berth: conflicting options: cannot specify both --restart and --rm".into(),
        ));
    }
    host.insert("RestartPolicy".into(), restart);
    host.insert("AutoRemove".into(), json!(a.rm));
    host.insert(
        "NetworkMode".into(),
        json!(a.network.clone().unwrap_or_else(|| "default".into())),
    );
    host.insert("ReadonlyRootfs".into(), json!(a.read_only));
    host.insert("Privileged".into(), json!(a.privileged));
    if !a.cap_add.is_empty() {
        host.insert("CapAdd".into(), json!(a.cap_add));
    }
    if !a.cap_drop.is_empty() {
        host.insert("CapDrop".into(), json!(a.cap_drop));
    }
    if !a.volume.is_empty() {
        host.insert("Binds".into(), json!(a.volume));
    }
    if a.init {
        host.insert("Init".into(), json!(true));
    }
    if !a.add_host.is_empty() {
        host.insert("ExtraHosts".into(), json!(a.add_host));
    }
    if !a.dns.is_empty() {
        host.insert("Dns".into(), json!(a.dns));
    }
    if !a.security_opt.is_empty() {
        host.insert("SecurityOpt".into(), json!(a.security_opt));
    }
    if let Some(r) = &a.runtime {
        host.insert("Runtime".into(), json!(r));
    }
    if !a.tmpfs.is_empty() {
        let mut m = Map::new();
        for t in &a.tmpfs {
            let (p, o) = t.split_once(':').unwrap_or((t.as_str(), ""));
            m.insert(p.into(), json!(o));
        }
        host.insert("Tmpfs".into(), Value::Object(m));
    }
    if !a.device.is_empty() {
        let devs: Vec<Value> = a
            .device
            .iter()
            .map(|d| {
                let parts: Vec<&str> = d.split(':').collect();
                let on_host = parts[0];
                let in_ctr = parts.get(1).copied().unwrap_or(on_host);
                let perms = parts.get(2).copied().unwrap_or("rwm");
                json!({"PathOnHost": on_host, "PathInContainer": in_ctr, "CgroupPermissions": perms})
            })
            .collect();
        host.insert("Devices".into(), Value::Array(devs));
    }
    let (exposed, bindings) = parse_publish(&a.publish)
        .map_err(|e| flag_error(cmd, "-p, --publish", &a.publish.join(","), &e))?;
    if !bindings.is_empty() {
        host.insert("PortBindings".into(), Value::Object(bindings));
    }

    let attach_all = !a.detach && a.attach.is_empty();
    let att = |s: &str| {
        !a.detach
            && (attach_all && s != "stdin" || a.attach.iter().any(|x| x.eq_ignore_ascii_case(s)))
    };
    let attach_stdin = (a.interactive && !a.detach) || att("stdin");
    let mut cfg = Map::new();
    if let Some(h) = &a.hostname {
        cfg.insert("Hostname".into(), json!(h));
    }
    cfg.insert("User".into(), json!(a.user.clone().unwrap_or_default()));
    cfg.insert("AttachStdin".into(), json!(attach_stdin));
    cfg.insert("AttachStdout".into(), json!(att("stdout")));
    cfg.insert("AttachStderr".into(), json!(att("stderr")));
    if !exposed.is_empty() {
        cfg.insert("ExposedPorts".into(), Value::Object(exposed));
    }
    cfg.insert("Tty".into(), json!(a.tty));
    cfg.insert("OpenStdin".into(), json!(a.interactive));
    cfg.insert("StdinOnce".into(), json!(a.interactive && attach_stdin));
    cfg.insert("Env".into(), json!(env));
    cfg.insert(
        "Cmd".into(),
        if command.is_empty() {
            Value::Null
        } else {
            json!(command)
        },
    );
    cfg.insert("Image".into(), json!(image));
    cfg.insert("Volumes".into(), Value::Null);
    cfg.insert(
        "WorkingDir".into(),
        json!(a.workdir.clone().unwrap_or_default()),
    );
    cfg.insert(
        "Entrypoint".into(),
        match &a.entrypoint {
            None => Value::Null,
            Some(e) => json!([e]),
        },
    );
    cfg.insert("Labels".into(), Value::Object(opts::parse_labels(&a.label)));
    if let Some(s) = &a.stop_signal {
        cfg.insert("StopSignal".into(), json!(s));
    }
    if let Some(t) = a.stop_timeout {
        cfg.insert("StopTimeout".into(), json!(t));
    }
    cfg.insert("HostConfig".into(), Value::Object(host));
    cfg.insert("NetworkingConfig".into(), json!({"EndpointsConfig": {}}));
    Ok(Value::Object(cfg))
}

fn io_msg(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `-p [ip:][hostPort:]containerPort[/proto]` → ExposedPorts and PortBindings.
/// ExposedPorts and PortBindings.
type Ports = (Map<String, Value>, Map<String, Value>);

fn parse_publish(list: &[String]) -> Result<Ports, String> {
    let mut exposed = Map::new();
    let mut bindings = Map::new();
    for p in list {
        let (spec, proto) = p.rsplit_once('/').unwrap_or((p.as_str(), "tcp"));
        let parts: Vec<&str> = if spec.starts_with('[') {
            // [v6]:host:ctr
            let end = spec
                .find(']')
                .ok_or_else(|| format!("invalid port format: {p}"))?;
            let mut v = vec![&spec[1..end]];
            v.extend(spec[end + 1..].trim_start_matches(':').split(':'));
            v
        } else {
            spec.split(':').collect()
        };
        let (ip, hp, cp) = match parts.as_slice() {
            [c] => ("", "", *c),
            [h, c] => ("", *h, *c),
            [i, h, c] => (*i, *h, *c),
            _ => return Err(format!("invalid port format: {p}")),
        };
        if cp.is_empty() || cp.parse::<u16>().is_err() && !cp.contains('-') {
            return Err(format!("invalid containerPort: {cp}"));
        }
        let key = format!("{cp}/{proto}");
        exposed.insert(key.clone(), json!({}));
        let e = bindings.entry(key).or_insert_with(|| json!([]));
        if let Value::Array(arr) = e {
            arr.push(json!({"HostIp": ip, "HostPort": hp}));
        }
    }
    Ok((exposed, bindings))
}

/// POST /containers/create; returns the ID. Prints warnings to stderr.
async fn create_container(c: &Client, a: &RunArgs, cmd: &str) -> Result<String, CliError> {
    let body = build_config(a, cmd)?;
    let image = a.image_and_cmd.first().cloned().unwrap_or_default();
    let mut q = Vec::new();
    if let Some(n) = &a.name {
        q.push(("name", n.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    let path = format!("/containers/create{}", opts::query(&q));
    match c.post_json(&path, Some(&body)).await {
        Ok(v) => {
            if let Some(ws) = v.get("Warnings").and_then(Value::as_array) {
                for w in ws.iter().filter_map(Value::as_str) {
                    eprintln!("WARNING: {w}");
                }
            }
            Ok(v.get("Id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string())
        }
        Err(e) if e.is_not_found() && is_image_missing(&e.message()) => {
            write_err(
                format!(
                    "Unable to find image '{}' locally\n",
                    opts::with_latest(&image)
                )
                .as_bytes(),
            );
            Err(run_error(cmd, &e.to_string()))
        }
        Err(e @ ClientError::Connect(_)) => Err(CliError::Status(
            125,
            format!("berth: {e}\n\nRun 'berth {cmd} --help' for more information"),
        )),
        Err(e) => Err(run_error(cmd, &e.to_string())),
    }
}

fn is_image_missing(msg: &str) -> bool {
    let m = msg.to_lowercase();
    m.contains("no such image")
        || m.contains("image") && m.contains("not found")
        || m.contains("pull access denied")
}

/// `berth create`.
pub async fn create(c: &Client, a: RunArgs) -> CmdResult {
    let id = create_container(c, &a, "create").await?;
    println!("{id}");
    Ok(0)
}

/// `berth run`.
pub async fn run(c: &Client, a: RunArgs) -> CmdResult {
    if a.tty && a.interactive && !a.detach && !term::is_tty(libc::STDIN_FILENO) {
        return Err(CliError::Status(1, "the input device is not a TTY".into()));
    }
    let id = create_container(c, &a, "run").await?;
    if a.detach {
        if let Err(e) = c.post(&format!("/containers/{id}/start"), None).await {
            return Err(run_error("run", &e.to_string()));
        }
        println!("{id}");
        return Ok(0);
    }
    let attach_all = a.attach.is_empty();
    let want =
        |s: &str| attach_all && s != "stdin" || a.attach.iter().any(|x| x.eq_ignore_ascii_case(s));
    let stdin = a.interactive || want("stdin");
    let mut q = vec![("stream", "1".to_string())];
    if stdin {
        q.push(("stdin", "1".into()));
    }
    if want("stdout") {
        q.push(("stdout", "1".into()));
    }
    if want("stderr") {
        q.push(("stderr", "1".into()));
    }
    let conn = c
        .hijack(&format!("/containers/{id}/attach{}", opts::query(&q)))
        .await
        .map_err(|e| run_error("run", &e.to_string()))?;

    let cond = if a.rm { "removed" } else { "next-exit" };
    let waiter = start_wait(c, &id, cond)
        .await
        .map_err(|e| run_error("run", &e.to_string()))?;

    if let Err(e) = c.post(&format!("/containers/{id}/start"), None).await {
        return Err(run_error("run", &e.to_string()));
    }
    let raw = if a.tty && stdin {
        term::RawGuard::enable()
    } else {
        None
    };
    if a.tty && term::is_tty(libc::STDOUT_FILENO) {
        spawn_resize(c.clone(), id.clone(), false);
    }
    stream_attached(conn, a.tty, stdin).await;
    let status = waiter.await.unwrap_or(Ok(125));
    drop(raw);
    status
}

/// Reads the wait body and returns the exit status (125 when the daemon reports an error).
/// Sends `wait?condition=` before the container starts (the daemon answers with headers at
/// once) and reads the exit code in the background.
pub async fn start_wait(
    c: &Client,
    id: &str,
    cond: &str,
) -> Result<tokio::task::JoinHandle<CmdResult>, ClientError> {
    let resp = c
        .request(
            Method::POST,
            &format!("/containers/{id}/wait?condition={cond}"),
            empty(),
            None,
        )
        .await?;
    Ok(tokio::spawn(
        async move { read_wait(resp.into_body()).await },
    ))
}

pub async fn read_wait(mut body: hyper::body::Incoming) -> CmdResult {
    let mut buf = Vec::new();
    while let Some(chunk) = next_chunk(&mut body).await {
        match chunk {
            Ok(b) => buf.extend_from_slice(&b),
            Err(e) => {
                return Err(CliError::Status(
                    125,
                    format!("Error waiting for container: {e}"),
                ))
            }
        }
    }
    let v: Value = serde_json::from_slice(&buf)
        .map_err(|e| CliError::Status(125, format!("Error waiting for container: {e}")))?;
    if let Some(m) = v
        .get("Error")
        .and_then(|e| e.get("Message"))
        .and_then(Value::as_str)
    {
        if !m.is_empty() {
            return Err(CliError::Status(
                125,
                format!("Error waiting for container: {m}"),
            ));
        }
    }
    Ok(v.get("StatusCode").and_then(Value::as_i64).unwrap_or(0) as i32)
}

/// Sends the terminal size now and on every SIGWINCH.
pub fn spawn_resize(c: Client, id: String, exec: bool) {
    tokio::spawn(async move {
        let kind = if exec { "exec" } else { "containers" };
        let send = |c: Client, id: String| async move {
            if let Some((h, w)) = term::size() {
                let _ = c
                    .post(&format!("/{kind}/{id}/resize?h={h}&w={w}"), None)
                    .await;
            }
        };
        send(c.clone(), id.clone()).await;
        let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while sig.recv().await.is_some() {
            send(c.clone(), id.clone()).await;
        }
    });
}

/// Pumps a hijacked connection: output to stdout/stderr (raw with a TTY, demultiplexed
/// without), stdin to the container when asked (half-closing on EOF). Returns at output EOF.
pub async fn stream_attached(conn: Upgraded, tty: bool, stdin: bool) {
    let (mut rd, mut wr) = tokio::io::split(conn);
    if stdin {
        tokio::spawn(async move {
            let mut input = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match input.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if wr.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        let _ = wr.flush().await;
                    }
                }
            }
            let _ = wr.shutdown().await;
        });
    } else {
        drop(wr);
    }
    let mut buf = vec![0u8; 32 * 1024];
    let mut dec = FrameDecoder::new();
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if tty {
            write_out(&buf[..n]);
        } else if demux_push(&mut dec, &buf[..n]).is_err() {
            break;
        }
    }
}

/// Feeds bytes to the decoder and writes out every complete frame.
pub fn demux_push(
    dec: &mut FrameDecoder,
    data: &[u8],
) -> Result<(), berth_api::stream::FrameError> {
    dec.push(data);
    while let Some((s, payload)) = dec.next_frame()? {
        match s {
            StdStream::Stdout | StdStream::Stdin => write_out(&payload),
            StdStream::Stderr | StdStream::System => write_err(&payload),
        }
    }
    Ok(())
}

/// Decodes a whole multiplexed stream into (stdout, stderr); used by tests.
#[cfg(test)]
pub fn demux_all(chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let mut dec = FrameDecoder::new();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for c in chunks {
        dec.push(c);
        while let Some((s, p)) = dec.next_frame().unwrap() {
            if s == StdStream::Stderr {
                err.extend(p);
            } else {
                out.extend(p);
            }
        }
    }
    (out, err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Cmd};
    use berth_api::stream::encode_frame;
    use clap::Parser;

    fn run_args(args: &[&str]) -> RunArgs {
        let mut v = vec!["berth", "run"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().cmd {
            Some(Cmd::Run(r)) => r,
            _ => panic!(),
        }
    }

    #[test]
    fn config_from_flags() {
        let a = run_args(&[
            "--rm",
            "-i",
            "-t",
            "-e",
            "A=1",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "-m",
            "512m",
            "--memory-swap",
            "-1",
            "--cpus",
            "1.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "100",
            "--network",
            "none",
            "--read-only",
            "-h",
            "box",
            "-l",
            "k=v",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "ALL",
            "--ulimit",
            "nofile=10:20",
            "--shm-size",
            "64m",
            "--stop-signal",
            "SIGINT",
            "--entrypoint",
            "",
            "-p",
            "8080:80",
            "alpine",
            "sh",
            "-c",
            "echo hi",
        ]);
        let v = build_config(&a, "run").unwrap();
        assert_eq!(v["Image"], "alpine");
        assert_eq!(v["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(v["Entrypoint"], json!([""]));
        assert_eq!(v["Env"], json!(["A=1"]));
        assert_eq!(v["Tty"], true);
        assert_eq!(v["OpenStdin"], true);
        assert_eq!(v["AttachStdin"], true);
        assert_eq!(v["StdinOnce"], true);
        assert_eq!(v["Hostname"], "box");
        assert_eq!(v["User"], "1000:1000");
        assert_eq!(v["WorkingDir"], "/tmp");
        assert_eq!(v["Labels"], json!({"k": "v"}));
        assert_eq!(v["StopSignal"], "SIGINT");
        assert_eq!(v["ExposedPorts"], json!({"80/tcp": {}}));
        let h = &v["HostConfig"];
        assert_eq!(h["Memory"], 512 << 20);
        assert_eq!(h["MemorySwap"], -1);
        assert_eq!(h["NanoCpus"], 1_500_000_000i64);
        assert_eq!(h["CpuShares"], 512);
        assert_eq!(h["PidsLimit"], 100);
        assert_eq!(h["NetworkMode"], "none");
        assert_eq!(h["ReadonlyRootfs"], true);
        assert_eq!(h["AutoRemove"], true);
        assert_eq!(h["CapAdd"], json!(["NET_ADMIN"]));
        assert_eq!(h["CapDrop"], json!(["ALL"]));
        assert_eq!(
            h["Ulimits"],
            json!([{"Name": "nofile", "Soft": 10, "Hard": 20}])
        );
        assert_eq!(h["ShmSize"], 64 << 20);
        assert_eq!(
            h["PortBindings"],
            json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
        );
    }

    #[test]
    fn detached_defaults() {
        let v = build_config(&run_args(&["-d", "busybox"]), "run").unwrap();
        assert_eq!(v["Cmd"], Value::Null);
        assert_eq!(v["Entrypoint"], Value::Null);
        assert_eq!(v["AttachStdout"], false);
        assert_eq!(v["AttachStdin"], false);
        assert_eq!(v["HostConfig"]["NetworkMode"], "default");
        assert_eq!(
            v["HostConfig"]["RestartPolicy"],
            json!({"Name": "no", "MaximumRetryCount": 0})
        );
        let v = build_config(&run_args(&["busybox"]), "run").unwrap();
        assert_eq!(v["AttachStdout"], true);
        assert_eq!(v["AttachStderr"], true);
        assert_eq!(v["AttachStdin"], false);
    }

    #[test]
    fn bad_flags_exit_125() {
        let e = build_config(&run_args(&["-m", "12x", "busybox"]), "run").unwrap_err();
        assert!(
            matches!(e, CliError::Status(125, ref m) if m.starts_with("invalid argument \"12x\" for \"-m, --memory\" flag: invalid suffix: 'x'"))
        );
        assert!(build_config(
            &run_args(&["--rm", "--restart", "always", "busybox"]),
            "run"
        )
        .is_err());
    }

    #[test]
    fn exit_codes_for_exec_errors() {
        assert_eq!(
            exit_code_for(
                "failed to create task: exec: \"nope\": executable file not found in $PATH"
            ),
            127
        );
        assert_eq!(exit_code_for("exec /x: no such file or directory"), 127);
        assert_eq!(exit_code_for("exec /etc: permission denied"), 126);
        assert_eq!(exit_code_for("No such image: x:latest"), 125);
    }

    #[test]
    fn demux_split_at_every_byte() {
        let mut wire = Vec::new();
        encode_frame(StdStream::Stdout, b"hello\n", &mut wire);
        encode_frame(StdStream::Stderr, b"oops\n", &mut wire);
        encode_frame(StdStream::Stdout, b"", &mut wire);
        encode_frame(StdStream::Stdout, b"bye", &mut wire);
        for split in 0..=wire.len() {
            let (out, err) = demux_all(&[&wire[..split], &wire[split..]]);
            assert_eq!(out, b"hello\nbye", "split {split}");
            assert_eq!(err, b"oops\n", "split {split}");
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(demux_all(&bytes).0, b"hello\nbye");
    }
}
