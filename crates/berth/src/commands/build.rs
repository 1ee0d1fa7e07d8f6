//! `berth build` and `berth builder prune`: the context streamed to the daemon as a tar (minus
//! what .dockerignore excludes), the legacy builder's JSON stream shown with each step's time.

use crate::cli::{BuildArgs, BuilderPruneArgs};
use crate::client::{stream_reader, Body, Client};
use crate::progress::{error_of, Renderer};
use crate::{CliError, CmdResult};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `--build-arg` values: `K=V`, or `K` alone taken from the environment (`null` when unset,
/// so the Dockerfile's default applies), as docker sends them.
fn build_args_json(items: &[String], env: impl Fn(&str) -> Option<String>) -> String {
    let m: serde_json::Map<String, Value> = items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.to_string(), json!(v)),
            None => (i.clone(), env(i).map(Value::String).unwrap_or(Value::Null)),
        })
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    Value::Object(m).to_string()
}

/// `--label` values: `K=V`, `K` alone an empty label.
fn labels_json(items: &[String]) -> String {
    let m: BTreeMap<String, Value> = items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.to_string(), json!(v)),
            None => (i.clone(), json!("")),
        })
        .collect();
    json!(m).to_string()
}

/// The query string of `POST /build` (without the `?`); `dockerfile` is the name inside the
/// context tar, when there is one to name.
pub fn build_query(
    a: &BuildArgs,
    dockerfile: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> String {
    let mut q: Vec<String> = Vec::new();
    for t in &a.tags {
        q.push(format!("t={}", enc(t)));
    }
    if let Some(d) = dockerfile {
        q.push(format!("dockerfile={}", enc(d)));
    }
    if !a.build_args.is_empty() {
        q.push(format!(
            "buildargs={}",
            enc(&build_args_json(&a.build_args, env))
        ));
    }
    if let Some(t) = a.target.as_deref().filter(|t| !t.is_empty()) {
        q.push(format!("target={}", enc(t)));
    }
    if a.no_cache {
        q.push("nocache=1".into());
    }
    if a.quiet {
        q.push("q=1".into());
    }
    if a.pull {
        q.push("pull=1".into());
    }
    if !a.labels.is_empty() {
        q.push(format!("labels={}", enc(&labels_json(&a.labels))));
    }
    if let Some(n) = a.network.as_deref().filter(|n| !n.is_empty()) {
        q.push(format!("networkmode={}", enc(n)));
    }
    if let Some(p) = a.platform.as_deref().filter(|p| !p.is_empty()) {
        q.push(format!("platform={}", enc(p)));
    }
    q.push("rm=1".into());
    q.join("&")
}

/// `--secret id=ID,src=PATH` (or `env=VAR`) → (id, contents). Without a source the id names
/// the file, like buildx.
fn read_secret(spec: &str) -> Result<(String, Vec<u8>), CliError> {
    let bad = |why: &str| CliError::Msg(format!("invalid secret {spec:?}: {why}"));
    let (mut id, mut src, mut env) = (None, None, None);
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(v.to_string()),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", "file" | "env")) => {}
            _ => return Err(bad("want id=ID,src=PATH")),
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| bad("id is required"))?;
    if let Some(var) = env {
        let v = std::env::var(&var).map_err(|_| {
            CliError::Msg(format!(
                "secret {id}: environment variable {var} is not set"
            ))
        })?;
        return Ok((id, v.into_bytes()));
    }
    let src = src.unwrap_or_else(|| id.clone());
    let data =
        std::fs::read(&src).map_err(|e| CliError::Msg(format!("secret {id}: {src}: {e}")))?;
    Ok((id, data))
}

/// The `X-Berth-Build-Secrets` header: base64 JSON `{"<id>": "<base64 contents>"}`.
fn secrets_header(secrets: &[(String, Vec<u8>)]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let m: BTreeMap<&str, String> = secrets
        .iter()
        .map(|(id, data)| (id.as_str(), b64.encode(data)))
        .collect();
    b64.encode(json!(m).to_string())
}

/// A name for a Dockerfile added to the context (`.dockerfile.<20 hex>`, like docker).
fn random_dockerfile_name() -> String {
    let mut b = [0u8; 10];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ (u128::from(std::process::id()) << 64);
        b.copy_from_slice(&t.to_le_bytes()[..10]);
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(".dockerfile.{hex}")
}

/// A directory context ready to be sent.
#[derive(Debug)]
pub struct DirContext {
    pub dir: PathBuf,
    /// The Dockerfile's name inside the tar.
    pub dockerfile: String,
    /// A Dockerfile from outside the context (or stdin), added to the tar under `dockerfile`.
    pub extra: Option<Vec<u8>>,
}

fn ctx_err(msg: String) -> CliError {
    CliError::Msg(format!("unable to prepare context: {msg}"))
}

/// Resolves the context directory and the Dockerfile like docker: `-f` is relative to the
/// current directory, `-f -` reads it from `stdin`, and one outside the context is carried in
/// the tar under a generated name.
pub fn prepare_dir(
    context: &str,
    file: Option<&str>,
    cwd: &Path,
    stdin: &mut dyn Read,
) -> Result<DirContext, CliError> {
    let dir = cwd.join(context);
    let dir = dir
        .canonicalize()
        .map_err(|_| ctx_err(format!("path {context:?} not found")))?;
    if !dir.is_dir() {
        return Err(ctx_err(format!("context must be a directory: {context}")));
    }
    if file == Some("-") {
        let mut data = Vec::new();
        stdin
            .read_to_end(&mut data)
            .map_err(|e| ctx_err(format!("reading the Dockerfile from stdin: {e}")))?;
        return Ok(DirContext {
            dir,
            dockerfile: random_dockerfile_name(),
            extra: Some(data),
        });
    }
    let df = match file {
        Some(f) => cwd.join(f),
        None => {
            let upper = dir.join("Dockerfile");
            let lower = dir.join("dockerfile");
            if upper.symlink_metadata().is_err() && lower.symlink_metadata().is_ok() {
                lower
            } else {
                upper
            }
        }
    };
    let df = df.canonicalize().map_err(|_| {
        ctx_err(format!(
            "unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
            df.display()
        ))
    })?;
    let md = std::fs::metadata(&df).map_err(|e| ctx_err(format!("{}: {e}", df.display())))?;
    if md.len() == 0 {
        return Err(CliError::Msg(format!(
            "the Dockerfile ({}) cannot be empty",
            df.display()
        )));
    }
    match df.strip_prefix(&dir) {
        Ok(rel) if !rel.as_os_str().is_empty() => Ok(DirContext {
            dockerfile: rel.to_string_lossy().into_owned(),
            dir,
            extra: None,
        }),
        _ => {
            let data = std::fs::read(&df).map_err(|e| ctx_err(format!("{}: {e}", df.display())))?;
            Ok(DirContext {
                dir,
                dockerfile: random_dockerfile_name(),
                extra: Some(data),
            })
        }
    }
}

/// Writes the context directory as a tar: .dockerignore'd paths left out (but never the
/// Dockerfile or .dockerignore), modes and times kept, symlinks as links, owners zeroed. An
/// outside Dockerfile is appended as `extra`. Returns the tar's size.
pub fn context_tar(
    dir: &Path,
    dockerfile_rel: &str,
    extra: Option<(&str, &[u8])>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let ignore = std::fs::read_to_string(dir.join(".dockerignore")).unwrap_or_default();
    let m = berth_build::dockerignore::Matcher::from_file(&ignore)
        .map_err(|e| CliError::Msg(format!("error reading .dockerignore: {e}")))?;
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let err = |e: std::io::Error| CliError::Msg(format!("error creating the build context: {e}"));
    fn header(md: &std::fs::Metadata) -> tar::Header {
        use std::os::unix::fs::MetadataExt;
        let mut h = tar::Header::new_gnu();
        h.set_metadata(md);
        // Permission bits only, as docker writes them (not the file-type bits of st_mode).
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(0);
        h.set_gid(0);
        h
    }
    fn walk(
        b: &mut tar::Builder<&mut dyn Write>,
        root: &Path,
        rel: &str,
        m: &berth_build::dockerignore::Matcher,
        keep: &[&str],
    ) -> std::io::Result<()> {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let mut names: Vec<String> = std::fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?;
        names.sort();
        for n in names {
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            let p = root.join(&r);
            let md = std::fs::symlink_metadata(&p)?;
            let excluded = m.is_excluded(&r) && !keep.contains(&r.as_str());
            if md.is_dir() {
                if excluded && m.can_skip_dir(&r) {
                    continue;
                }
                if !excluded {
                    b.append_data(&mut header(&md), format!("{r}/"), std::io::empty())?;
                }
                walk(b, root, &r, m, keep)?;
            } else if !excluded {
                let mut h = header(&md);
                if md.file_type().is_symlink() {
                    b.append_link(&mut h, &r, std::fs::read_link(&p)?)?;
                } else if md.is_file() {
                    // Never more than the header says, even if the file grows meanwhile.
                    let f = std::fs::File::open(&p)?.take(md.len());
                    b.append_data(&mut h, &r, f)?;
                }
                // Sockets, fifos and devices cannot be part of an image context.
            }
        }
        Ok(())
    }
    walk(&mut b, dir, "", &m, &[dockerfile_rel, ".dockerignore"]).map_err(err)?;
    if let Some((name, data)) = extra {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        b.append_data(&mut h, name, data).map_err(err)?;
    }
    b.into_inner().map_err(err)?.flush().map_err(err)?;
    Ok(())
}

/// Bytes written to a channel in 64 KiB chunks, so the tar is streamed as it is made.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
    total: u64,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.total += chunk.len() as u64;
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "daemon went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// How sending the context ended: its size, or why it stopped.
enum Sent {
    Done(u64),
    /// The request ended first (the daemon answered or dropped the connection).
    Abandoned,
    Failed(CliError),
}

/// Starts writing the context tar on a blocking thread; returns the request body and the task.
fn stream_context(ctx: DirContext) -> (Body, tokio::task::JoinHandle<Sent>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let task = tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
            total: 0,
        };
        let extra = ctx.extra.as_deref().map(|d| (ctx.dockerfile.as_str(), d));
        match context_tar(&ctx.dir, &ctx.dockerfile, extra, &mut w) {
            Ok(()) => Sent::Done(w.total),
            Err(_) if tx.is_closed() => Sent::Abandoned,
            Err(e) => {
                // Abort the request rather than send a truncated tar.
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                Sent::Failed(e)
            }
        }
    });
    let s = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    });
    (BodyExt::boxed(StreamBody::new(s)), task)
}

/// Shows the legacy builder's stream: `stream` text as it comes, a ` ---> done in 0.4s` line
/// closing each step, status messages (pulls in `FROM`) like pull does; with `-q`, nothing
/// until the end.
pub struct BuildDisplay {
    r: Renderer,
    quiet: bool,
    step_started: Option<Instant>,
    /// The image ID from `aux`.
    pub id: String,
    /// With `-q`: the stream text, shown only if the build fails.
    pub held: String,
}

impl BuildDisplay {
    pub fn new(r: Renderer, quiet: bool) -> BuildDisplay {
        BuildDisplay {
            r,
            quiet,
            step_started: None,
            id: String::new(),
            held: String::new(),
        }
    }

    fn end_step(&mut self, now: Instant, verb: &str) {
        if let Some(t) = self.step_started.take() {
            if !self.quiet {
                let secs = now.saturating_duration_since(t).as_secs_f64();
                self.r.write_line(&format!(" ---> {verb} {secs:.1}s"));
            }
        }
    }

    /// Handles one message received at `now`.
    pub fn handle(&mut self, v: &Value, now: Instant) -> Result<(), CliError> {
        if let Some(e) = error_of(v) {
            self.end_step(now, "failed after");
            return Err(CliError::Msg(e));
        }
        if let Some(id) = v["aux"]["ID"].as_str() {
            self.id = id.to_string();
        }
        if let Some(s) = v["stream"].as_str() {
            if self.quiet {
                self.held.push_str(s);
                return Ok(());
            }
            if s.starts_with("Step ") || s.starts_with("Successfully built") {
                self.end_step(now, "done in");
            }
            if s.starts_with("Step ") {
                self.step_started = Some(now);
            }
        }
        if self.quiet {
            return Ok(());
        }
        self.r.handle(v)
    }

    /// The stream ended: close the last step.
    pub fn finish(&mut self, now: Instant) {
        self.end_step(now, "done in");
    }

    /// Output so far.
    pub fn take(&mut self) -> Vec<u8> {
        self.r.take()
    }

    /// What `-q` prints: the image ID, else what the daemon streamed (its quiet output).
    pub fn quiet_result(&self) -> String {
        if self.id.is_empty() {
            self.held.trim().to_string()
        } else {
            self.id.clone()
        }
    }
}

/// `berth build`.
pub async fn build(c: &Client, a: BuildArgs) -> CmdResult {
    let env = |k: &str| std::env::var(k).ok();
    let mut headers = Vec::new();
    if !a.secrets.is_empty() {
        let secrets = a
            .secrets
            .iter()
            .map(|s| read_secret(s))
            .collect::<Result<Vec<_>, _>>()?;
        headers.push(("X-Berth-Build-Secrets", secrets_header(&secrets)));
    }
    // Every stored login, so the daemon can pull base images from private registries.
    if let Some(h) = crate::credentials::registry_config_header()? {
        headers.push(("X-Registry-Config", h));
    }
    let (query, body, task) = if a.context == "-" {
        if a.file.as_deref() == Some("-") {
            return Err(CliError::Msg(
                "invalid argument: can't use stdin for both build context and dockerfile".into(),
            ));
        }
        // Inside a tar from stdin the Dockerfile is named by -f as given.
        let q = build_query(&a, a.file.as_deref(), env);
        (q, stream_reader(tokio::io::stdin()), None)
    } else {
        let cwd = std::env::current_dir().map_err(|e| CliError::Msg(e.to_string()))?;
        let ctx = prepare_dir(&a.context, a.file.as_deref(), &cwd, &mut std::io::stdin())?;
        let q = build_query(&a, Some(&ctx.dockerfile), env);
        let (body, task) = stream_context(ctx);
        (q, body, Some(task))
    };
    let sent = async {
        match task {
            Some(t) => t.await.unwrap_or(Sent::Abandoned),
            None => Sent::Done(0),
        }
    };
    let path = format!("/build?{query}");
    let request = c.request_with(
        Method::POST,
        &path,
        body,
        Some("application/x-tar"),
        &headers,
    );
    let resp = match request.await {
        Ok(r) => r,
        Err(e) => {
            // A context that could not be read explains the failure better than the request.
            if let Sent::Failed(ce) = sent.await {
                return Err(ce);
            }
            return Err(e.into());
        }
    };
    let sent = sent.await;
    if let Sent::Failed(e) = sent {
        return Err(e);
    }
    if let (Sent::Done(n), false, true) = (&sent, a.quiet, a.context != "-") {
        println!(
            "Sending build context to berth daemon  {}",
            crate::format::human_size_prec(*n as f64, 4)
        );
    }
    let mut d = BuildDisplay::new(Renderer::for_stdout(), a.quiet);
    let result = crate::progress::each_message(resp.into_body(), |v| {
        let r = d.handle(&v, Instant::now());
        super::write_out(&d.take());
        r
    })
    .await;
    if let Err(e) = result {
        if a.quiet && !d.held.is_empty() {
            super::write_err(d.held.as_bytes());
        }
        return Err(e);
    }
    d.finish(Instant::now());
    super::write_out(&d.take());
    if a.quiet {
        println!("{}", d.quiet_result());
    }
    Ok(0)
}

/// The query of `POST /build/prune`.
fn prune_query(a: &BuilderPruneArgs) -> Result<String, CliError> {
    let mut q: Vec<(&str, String)> = Vec::new();
    if a.all {
        q.push(("all", "1".into()));
    }
    if let Some(f) = crate::opts::encode_filters(&a.filter).map_err(CliError::Msg)? {
        q.push(("filters", f));
    }
    Ok(crate::opts::query(&q))
}

/// `berth builder prune`.
pub async fn prune(c: &Client, a: BuilderPruneArgs) -> CmdResult {
    let warning = if a.all {
        "WARNING! This will remove all build cache."
    } else {
        "WARNING! This will remove all dangling build cache."
    };
    if !a.force && !super::container::confirm(warning) {
        return Ok(0);
    }
    let v = c
        .post_json(&format!("/build/prune{}", prune_query(&a)?), None)
        .await?;
    print!("{}", prune_report(&v));
    Ok(0)
}

/// Docker's prune report: the deleted cache records, then the reclaimed space.
fn prune_report(v: &Value) -> String {
    let deleted: Vec<&str> = v["CachesDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let n = v["SpaceReclaimed"].as_u64().unwrap_or(0);
    crate::format::prune_report("Deleted build cache objects", &deleted, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, u32, u64, String, Vec<u8>)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().unwrap() & 0o7777,
                    h.uid().unwrap() + h.gid().unwrap(),
                    link,
                    data,
                )
            })
            .collect()
    }

    #[test]
    fn context_tars_respect_dockerignore() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("src/skip")).unwrap();
        std::fs::write(r.join("Dockerfile"), "FROM x").unwrap();
        std::fs::write(r.join(".dockerignore"), "*.log\nsrc/skip\nDockerfile\n").unwrap();
        std::fs::write(r.join("a.log"), "x").unwrap();
        std::fs::write(r.join("src/main.rs"), "fn main(){}").unwrap();
        std::fs::write(r.join("src/skip/x"), "x").unwrap();
        std::fs::write(r.join("run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(r.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("main.rs", r.join("src/link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("abs")).unwrap();
        let mut out = Vec::new();
        context_tar(r, "Dockerfile", None, &mut out).unwrap();
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Dockerfile",
                "abs",
                "run.sh",
                "src/",
                "src/link",
                "src/main.rs"
            ]
        );
        let by = |n: &str| got.iter().find(|e| e.0 == n).unwrap().clone();
        // Symlinks stay links, pointing where they pointed, and are not followed.
        assert_eq!(by("abs").1, tar::EntryType::Symlink);
        assert_eq!(by("abs").4, "/etc/passwd");
        assert_eq!(by("src/link").4, "main.rs");
        assert_eq!(by("run.sh").2, 0o755);
        assert_eq!(by("run.sh").5, b"#!/bin/sh");
        assert_eq!(by("src/").1, tar::EntryType::Directory);
        assert!(got.iter().all(|e| e.3 == 0), "owners zeroed");
    }

    #[test]
    fn dockerfile_outside_the_context_is_added() {
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path().join("ctx");
        std::fs::create_dir_all(ctx.join("sub")).unwrap();
        std::fs::write(ctx.join("f"), "data").unwrap();
        std::fs::write(ctx.join("sub/Dockerfile.dev"), "FROM z").unwrap();
        std::fs::write(d.path().join("Outside"), "FROM y").unwrap();
        let mut no_stdin = std::io::empty();

        let c = prepare_dir("ctx", Some("Outside"), d.path(), &mut no_stdin).unwrap();
        assert!(c.dockerfile.starts_with(".dockerfile."), "{}", c.dockerfile);
        assert_eq!(c.dockerfile.len(), ".dockerfile.".len() + 20);
        let mut out = Vec::new();
        let extra = c.extra.as_deref().map(|x| (c.dockerfile.as_str(), x));
        context_tar(&c.dir, &c.dockerfile, extra, &mut out).unwrap();
        let got = entries(&out);
        assert_eq!(got.len(), 4);
        assert_eq!(got[3].0, c.dockerfile);
        assert_eq!(got[3].5, b"FROM y");

        // Inside the context: named by its path there, nothing added.
        let c = prepare_dir(
            "ctx",
            Some("ctx/sub/Dockerfile.dev"),
            d.path(),
            &mut no_stdin,
        )
        .unwrap();
        assert_eq!(c.dockerfile, "sub/Dockerfile.dev");
        assert!(c.extra.is_none());
        // From stdin.
        let c = prepare_dir("ctx", Some("-"), d.path(), &mut &b"FROM s"[..]).unwrap();
        assert_eq!(c.extra.as_deref(), Some(&b"FROM s"[..]));
        // Default name; lower-case fallback.
        assert!(prepare_dir("ctx", None, d.path(), &mut no_stdin)
            .unwrap_err()
            .to_string()
            .contains("unable to evaluate symlinks in Dockerfile path"));
        std::fs::write(ctx.join("dockerfile"), "FROM l").unwrap();
        let c = prepare_dir("ctx", None, d.path(), &mut no_stdin).unwrap();
        assert_eq!(c.dockerfile, "dockerfile");
        assert!(prepare_dir("nope", None, d.path(), &mut no_stdin).is_err());
        std::fs::write(ctx.join("Empty"), "").unwrap();
        assert!(
            prepare_dir("ctx", Some("ctx/Empty"), d.path(), &mut no_stdin)
                .unwrap_err()
                .to_string()
                .contains("cannot be empty")
        );
    }

    #[test]
    fn query_strings() {
        let a = BuildArgs {
            tags: vec!["a:1".into(), "reg:5000/b".into()],
            build_args: vec!["X=1".into(), "FROM_ENV".into(), "UNSET".into()],
            labels: vec!["k=v w".into(), "flag".into()],
            target: Some("stage".into()),
            no_cache: true,
            quiet: true,
            pull: true,
            network: Some("host".into()),
            platform: Some("linux/amd64".into()),
            context: ".".into(),
            ..BuildArgs::default()
        };
        let env = |k: &str| (k == "FROM_ENV").then(|| "e".to_string());
        assert_eq!(
            build_query(&a, Some("sub/Dockerfile"), env),
            [
                "t=a%3A1",
                "t=reg%3A5000%2Fb",
                "dockerfile=sub%2FDockerfile",
                &format!(
                    "buildargs={}",
                    enc(r#"{"FROM_ENV":"e","UNSET":null,"X":"1"}"#)
                ),
                "target=stage",
                "nocache=1",
                "q=1",
                "pull=1",
                &format!("labels={}", enc(r#"{"flag":"","k":"v w"}"#)),
                "networkmode=host",
                "platform=linux%2Famd64",
                "rm=1",
            ]
            .join("&")
        );
        assert_eq!(build_query(&BuildArgs::default(), None, env), "rm=1");
        let p = BuilderPruneArgs {
            all: true,
            force: true,
            filter: vec!["until=24h".into()],
        };
        assert_eq!(
            prune_query(&p).unwrap(),
            format!("?all=1&filters={}", enc(r#"{"until":["24h"]}"#))
        );
    }

    #[test]
    fn secrets_travel_in_a_header() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("tok");
        std::fs::write(&f, "s3cr\0t").unwrap();
        let s = read_secret(&format!("id=t,src={}", f.display())).unwrap();
        assert_eq!(s, ("t".to_string(), b"s3cr\0t".to_vec()));
        assert!(read_secret("src=x").is_err());
        assert!(read_secret("id=a,bogus=1").is_err());
        let b64 = base64::engine::general_purpose::STANDARD;
        let h = secrets_header(&[s, ("n".into(), b"x".to_vec())]);
        let v: Value = serde_json::from_slice(&b64.decode(h).unwrap()).unwrap();
        assert_eq!(v, json!({"t": b64.encode("s3cr\0t"), "n": b64.encode("x")}));
    }

    #[test]
    fn steps_are_timed() {
        let t0 = Instant::now();
        let at = |ms| t0 + std::time::Duration::from_millis(ms);
        let mut d = BuildDisplay::new(Renderer::new(false, 200), false);
        let msgs = [
            (0, json!({"stream": "Step 1/2 : FROM busybox\n"})),
            (10, json!({"stream": " ---> 1a2b3c\n"})),
            (100, json!({"stream": "Step 2/2 : RUN echo hi\n"})),
            (150, json!({"stream": " ---> Running in abc\n"})),
            (200, json!({"stream": "hi"})),
            (550, json!({"stream": " ---> 4d5e6f\n"})),
            (551, json!({"aux": {"ID": "sha256:4d5e6f"}})),
            (600, json!({"stream": "Successfully built 4d5e6f\n"})),
            (601, json!({"stream": "Successfully tagged t:latest\n"})),
        ];
        for (ms, m) in &msgs {
            d.handle(m, at(*ms)).unwrap();
        }
        d.finish(at(700));
        assert_eq!(
            String::from_utf8(d.take()).unwrap(),
            "Step 1/2 : FROM busybox\n ---> 1a2b3c\n ---> done in 0.1s\n\
             Step 2/2 : RUN echo hi\n ---> Running in abc\nhi ---> 4d5e6f\n ---> done in 0.5s\n\
             Successfully built 4d5e6f\nSuccessfully tagged t:latest\n"
        );
        assert_eq!(d.id, "sha256:4d5e6f");

        // A failing step: its time, then the error.
        let mut d = BuildDisplay::new(Renderer::new(false, 200), false);
        d.handle(&json!({"stream": "Step 1/1 : RUN false\n"}), at(0))
            .unwrap();
        d.handle(&json!({"stream": "partial"}), at(1)).unwrap();
        let e = d
            .handle(
                &json!({"errorDetail": {"message": "The command '/bin/sh -c false' returned a non-zero code: 1"}}),
                at(2_000),
            )
            .unwrap_err();
        assert!(e.to_string().contains("non-zero code: 1"));
        assert_eq!(
            String::from_utf8(d.take()).unwrap(),
            "Step 1/1 : RUN false\npartial\n ---> failed after 2.0s\n"
        );

        // Quiet: nothing shown; the ID from aux, else the daemon's text.
        let mut d = BuildDisplay::new(Renderer::new(false, 200), true);
        for (ms, m) in &msgs {
            d.handle(m, at(*ms)).unwrap();
        }
        d.finish(at(700));
        assert!(d.take().is_empty());
        assert_eq!(d.quiet_result(), "sha256:4d5e6f");
        let mut d = BuildDisplay::new(Renderer::new(false, 200), true);
        d.handle(&json!({"stream": "sha256:77\n"}), at(0)).unwrap();
        assert_eq!(d.quiet_result(), "sha256:77");
    }

    #[test]
    fn prune_reports() {
        assert_eq!(
            prune_report(&json!({"CachesDeleted": null, "SpaceReclaimed": 1234567})),
            "Total reclaimed space: 1.235MB\n"
        );
        assert_eq!(
            prune_report(&json!({"CachesDeleted": ["a", "b"], "SpaceReclaimed": 0})),
            "Deleted build cache objects:\na\nb\n\nTotal reclaimed space: 0B\n"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streamed_context_is_the_same_tar() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM x").unwrap();
        // Bigger than one chunk.
        std::fs::write(d.path().join("big"), vec![7u8; 200 * 1024]).unwrap();
        let ctx = prepare_dir(".", None, d.path(), &mut std::io::empty()).unwrap();
        let mut want = Vec::new();
        context_tar(&ctx.dir, &ctx.dockerfile, None, &mut want).unwrap();
        let (body, task) = stream_context(ctx);
        let got = body.collect().await.unwrap().to_bytes();
        assert!(matches!(task.await.unwrap(), Sent::Done(n) if n as usize == want.len()));
        assert_eq!(got.as_ref(), want.as_slice());
    }
}
