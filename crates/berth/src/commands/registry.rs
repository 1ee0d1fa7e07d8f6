//! `pull`, `push`, `login`, `logout` (credentials in the docker CLI's config.json, so both
//! CLIs share them), `registry serve|gc`, and the progress display of JSON message streams.

use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs, RegistryGcArgs, RegistryServeArgs};
use crate::client::{empty, next_chunk, Client, JsonLines};
use crate::{CliError, CmdResult};
use base64::Engine;
use hyper::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

/// The key docker uses for Docker Hub credentials.
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

/// `$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`.
pub fn config_path() -> PathBuf {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"))
                .join(".docker")
        });
    dir.join("config.json")
}

fn read_config(path: &std::path::Path) -> Value {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

fn write_config(path: &std::path::Path, v: &Value) -> Result<(), CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::Msg(format!("create {}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| CliError::Msg(format!("write {}: {e}", tmp.display())))?;
    f.write_all(
        serde_json::to_string_pretty(v)
            .unwrap_or_default()
            .as_bytes(),
    )
    .map_err(|e| CliError::Msg(format!("write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| CliError::Msg(format!("write {}: {e}", path.display())))
}

/// The registry host of an image name: the first component when it looks like a host.
pub fn registry_of(image: &str) -> String {
    let first = image.split('/').next().unwrap_or("");
    if image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost") {
        first.to_string()
    } else {
        "docker.io".to_string()
    }
}

/// The config.json key for a registry host.
pub fn server_key(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => INDEX_SERVER.into(),
        h => h.to_string(),
    }
}

/// Stored credentials for a registry host: (username, password) or an identity token.
pub fn stored_auth(cfg: &Value, host: &str) -> Option<Value> {
    let key = server_key(host);
    let auths = cfg.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(k, v)| {
        let bare = k
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        (k == &key || bare == host || (key == INDEX_SERVER && bare.starts_with("index.docker.io")))
            .then_some(v)
    })?;
    if let Some(t) = entry.get("identitytoken").and_then(Value::as_str) {
        return Some(json!({"identitytoken": t, "serveraddress": key}));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some(json!({"username": u, "password": p, "serveraddress": key}))
}

/// The `X-Registry-Auth` header value for an image (`e30=`, i.e. `{}`, when anonymous).
pub fn registry_auth_header(image: &str) -> String {
    let cfg = read_config(&config_path());
    let auth = stored_auth(&cfg, &registry_of(image)).unwrap_or_else(|| json!({}));
    base64::engine::general_purpose::URL_SAFE.encode(auth.to_string())
}

/// Renders a JSON message stream like docker: on a terminal, lines keyed by `id` update in
/// place with progress bars; otherwise one line per status change.
pub struct Progress {
    tty: bool,
    ids: Vec<String>,
    out: Vec<u8>,
}

impl Progress {
    pub fn new(tty: bool) -> Progress {
        Progress {
            tty,
            ids: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Handles one message; an error message becomes the command's error.
    pub fn handle(&mut self, v: &Value) -> Result<(), CliError> {
        if let Some(e) = v["errorDetail"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
        {
            return Err(CliError::Msg(e.to_string()));
        }
        if let Some(s) = v["stream"].as_str() {
            self.out.extend_from_slice(s.as_bytes());
            return Ok(());
        }
        let Some(status) = v["status"].as_str() else {
            return Ok(());
        };
        let id = v["id"].as_str().unwrap_or("");
        let bar = v["progress"].as_str().unwrap_or("");
        if id.is_empty() {
            self.out.extend_from_slice(format!("{status}\n").as_bytes());
            return Ok(());
        }
        let line = if self.tty && !bar.is_empty() {
            format!("{id}: {status} {bar}")
        } else {
            format!("{id}: {status}")
        };
        if !self.tty {
            if bar.is_empty() {
                self.out.extend_from_slice(format!("{line}\n").as_bytes());
            }
            return Ok(());
        }
        match self.ids.iter().position(|x| x == id) {
            Some(i) => {
                let up = self.ids.len() - i;
                self.out
                    .extend_from_slice(format!("\x1b[{up}A\r\x1b[2K{line}\r\x1b[{up}B").as_bytes());
            }
            None => {
                self.ids.push(id.to_string());
                self.out.extend_from_slice(format!("{line}\n").as_bytes());
            }
        }
        Ok(())
    }

    /// What to print so far (and clears it).
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// Reads a message stream from the daemon and displays it; returns the `aux` values.
pub async fn display(mut body: hyper::body::Incoming, quiet: bool) -> Result<Vec<Value>, CliError> {
    let tty = crate::term::is_tty(libc::STDOUT_FILENO);
    let mut p = Progress::new(tty);
    let mut lines = JsonLines::default();
    let mut aux = Vec::new();
    let mut stdout = std::io::stdout();
    let mut feed = |vs: Vec<Value>, p: &mut Progress| -> Result<(), CliError> {
        for v in vs {
            if let Some(a) = v.get("aux") {
                aux.push(a.clone());
            }
            p.handle(&v)?;
        }
        Ok(())
    };
    while let Some(chunk) = next_chunk(&mut body).await {
        feed(lines.push(&chunk?), &mut p)?;
        let out = p.take();
        if !quiet {
            let _ = stdout.write_all(&out);
            let _ = stdout.flush();
        }
    }
    feed(lines.finish(), &mut p)?;
    if !quiet {
        let _ = stdout.write_all(&p.take());
    }
    Ok(aux)
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Splits `name[:tag|@digest]` into (name, tag or digest).
pub fn split_ref(image: &str) -> (String, String) {
    if let Some((n, d)) = image.split_once('@') {
        return (n.to_string(), d.to_string());
    }
    match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n.to_string(), t.to_string()),
        _ => (image.to_string(), String::new()),
    }
}

/// The canonical reference docker prints after a pull.
pub fn canonical(image: &str) -> String {
    let (name, tag) = split_ref(image);
    let host = registry_of(&name);
    let full = if host == "docker.io" && !name.starts_with("docker.io/") {
        if name.contains('/') {
            format!("docker.io/{name}")
        } else {
            format!("docker.io/library/{name}")
        }
    } else {
        name
    };
    let sep = if tag.contains(':') { "@" } else { ":" };
    let tag = if tag.is_empty() {
        "latest".to_string()
    } else {
        tag
    };
    format!("{full}{sep}{tag}")
}

/// `berth pull`.
pub async fn pull(c: &Client, a: PullArgs) -> CmdResult {
    let (name, mut tag) = split_ref(&a.image);
    if tag.is_empty() && !a.all_tags {
        tag = "latest".into();
    }
    let mut path = format!("/images/create?fromImage={}&tag={}", enc(&name), enc(&tag));
    if let Some(p) = &a.platform {
        path.push_str(&format!("&platform={}", enc(p)));
    }
    let resp = c
        .request_with(
            Method::POST,
            &path,
            empty(),
            None,
            &[("X-Registry-Auth", registry_auth_header(&name))],
        )
        .await?;
    display(resp.into_body(), a.quiet).await?;
    println!(
        "{}",
        canonical(&format!(
            "{name}{}{tag}",
            if tag.contains(':') { "@" } else { ":" }
        ))
    );
    Ok(0)
}

/// `berth push`.
pub async fn push(c: &Client, a: PushArgs) -> CmdResult {
    let (name, tag) = split_ref(&a.image);
    let tag = if tag.is_empty() && !a.all_tags {
        "latest".to_string()
    } else {
        tag
    };
    let path = format!("/images/{name}/push?tag={}", enc(&tag));
    let resp = c
        .request_with(
            Method::POST,
            &path,
            empty(),
            None,
            &[("X-Registry-Auth", registry_auth_header(&name))],
        )
        .await?;
    let aux = display(resp.into_body(), a.quiet).await?;
    if a.quiet {
        println!("{}", a.image);
    }
    let _ = aux;
    Ok(0)
}

fn prompt(label: &str, echo: bool) -> Result<String, CliError> {
    print!("{label}");
    let _ = std::io::stdout().flush();
    let fd = libc::STDIN_FILENO;
    let saved = if echo {
        None
    } else {
        crate::term::echo_off(fd)
    };
    let mut s = String::new();
    let r = std::io::stdin().read_line(&mut s);
    if let Some(t) = saved {
        crate::term::restore(fd, &t);
        println!();
    }
    r.map_err(|e| CliError::Msg(format!("read from stdin: {e}")))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// `berth login`.
pub async fn login(c: &Client, a: LoginArgs) -> CmdResult {
    let server = a.server.clone().unwrap_or_else(|| INDEX_SERVER.to_string());
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let key = if host == "index.docker.io" || a.server.is_none() {
        INDEX_SERVER.to_string()
    } else {
        host.clone()
    };
    let tty = crate::term::is_tty(libc::STDIN_FILENO);
    let username = match a.username.clone() {
        Some(u) => u,
        None if tty => prompt("Username: ", true)?,
        None => {
            return Err(CliError::Msg(
                "Must provide --username with --password-stdin".into(),
            ))
        }
    };
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_line(&mut s)
            .map_err(|e| CliError::Msg(format!("read password: {e}")))?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match a.password.clone() {
            Some(p) => {
                eprintln!(
                    "WARNING! Using --password via the CLI is insecure. Use --password-stdin."
                );
                p
            }
            None if tty => prompt("Password: ", false)?,
            None => {
                return Err(CliError::Msg(
                    "Cannot perform an interactive login from a non TTY device".into(),
                ))
            }
        }
    };
    let body = json!({"username": username, "password": password, "serveraddress": key});
    let resp = c.post_json("/auth", Some(&body)).await?;
    let path = config_path();
    let mut cfg = read_config(&path);
    let entry = match resp
        .get("IdentityToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        Some(t) => {
            json!({"auth": base64::engine::general_purpose::STANDARD.encode(format!("{username}:")), "identitytoken": t})
        }
        None => {
            json!({"auth": base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))})
        }
    };
    if !cfg.get("auths").map(Value::is_object).unwrap_or(false) {
        cfg["auths"] = json!({});
    }
    cfg["auths"][&key] = entry;
    write_config(&path, &cfg)?;
    println!("Login Succeeded");
    Ok(0)
}

/// `berth logout`.
pub async fn logout(a: LogoutArgs) -> CmdResult {
    let server = a.server.unwrap_or_else(|| INDEX_SERVER.to_string());
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let path = config_path();
    let mut cfg = read_config(&path);
    let keys: Vec<String> = cfg
        .get("auths")
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter(|k| {
                    *k == &server
                        || k.trim_start_matches("https://")
                            .trim_start_matches("http://")
                            .trim_end_matches('/')
                            == host
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if keys.is_empty() {
        println!("Not logged in to {server}");
        return Ok(0);
    }
    println!("Removing login credentials for {server}");
    if let Some(m) = cfg.get_mut("auths").and_then(Value::as_object_mut) {
        for k in keys {
            m.remove(&k);
        }
    }
    write_config(&path, &cfg)?;
    Ok(0)
}

/// `berth registry serve`.
pub async fn serve(a: RegistryServeArgs) -> CmdResult {
    let mut cfg = match &a.config {
        Some(p) => berth_registry::Config::from_file(std::path::Path::new(p))
            .map_err(|e| CliError::Msg(e.to_string()))?,
        None => berth_registry::Config::default(),
    };
    if let Some(addr) = &a.addr {
        cfg.addr = addr
            .parse()
            .map_err(|e| CliError::Msg(format!("invalid --addr {addr}: {e}")))?;
    }
    if let Some(r) = &a.root {
        cfg.root = r.into();
    }
    if a.read_only {
        cfg.read_only = true;
    }
    match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => {
            cfg.tls = Some(berth_registry::TlsConfig {
                cert: c.into(),
                key: k.into(),
            })
        }
        (None, None) => {}
        _ => return Err(CliError::Msg("--tls-cert and --tls-key go together".into())),
    }
    if let Some(mode) = &a.auth {
        let need = || {
            a.htpasswd
                .clone()
                .map(PathBuf::from)
                .ok_or_else(|| CliError::Msg(format!("--auth {mode} needs --htpasswd FILE")))
        };
        cfg.auth = match mode.as_str() {
            "none" => berth_registry::AuthConfig::None,
            "htpasswd" => berth_registry::AuthConfig::Htpasswd {
                path: need()?,
                realm: "berth-registry".into(),
            },
            "token" => berth_registry::AuthConfig::Token {
                htpasswd: need()?,
                realm: None,
                service: "berth-registry".into(),
                allow_anonymous_pull: a.anonymous_pull,
            },
            other => {
                return Err(CliError::Msg(format!(
                    "unknown --auth {other}: none, htpasswd or token"
                )))
            }
        };
    }
    let server = berth_registry::bind(cfg)
        .await
        .map_err(|e| CliError::Msg(e.to_string()))?;
    println!("berth registry listening on {}", server.url());
    let _ = std::io::stdout().flush();
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
    };
    server
        .run_until(stop)
        .await
        .map_err(|e| CliError::Msg(e.to_string()))?;
    Ok(0)
}

/// `berth registry gc`.
pub async fn gc(a: RegistryGcArgs) -> CmdResult {
    let root = a
        .root
        .unwrap_or_else(|| berth_registry::Config::default().root.display().to_string());
    let opts = berth_registry::GcOptions {
        dry_run: a.dry_run,
        delete_untagged: a.delete_untagged,
        grace: std::time::Duration::from_secs(a.grace_secs),
    };
    let r =
        tokio::task::spawn_blocking(move || berth_registry::gc(std::path::Path::new(&root), opts))
            .await
            .map_err(|e| CliError::Msg(e.to_string()))?
            .map_err(|e| CliError::Msg(e.to_string()))?;
    let verb = if a.dry_run { "would delete" } else { "deleted" };
    println!(
        "{verb} {} blobs ({} bytes) and {} manifests",
        r.blobs_deleted, r.bytes_freed, r.manifests_deleted
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_and_hosts() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox"), "docker.io");
        assert_eq!(registry_of("localhost:5000/a"), "localhost:5000");
        assert_eq!(registry_of("quay.io/x/y"), "quay.io");
        assert_eq!(split_ref("a/b:1"), ("a/b".into(), "1".into()));
        assert_eq!(
            split_ref("localhost:5000/a"),
            ("localhost:5000/a".into(), "".into())
        );
        assert_eq!(canonical("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(canonical("localhost:5000/a:v1"), "localhost:5000/a:v1");
    }

    #[test]
    fn credentials_round_trip() {
        let cfg = json!({"auths": {
            "https://index.docker.io/v1/": {"auth": "dTpw"},
            "localhost:5000": {"auth": base64::engine::general_purpose::STANDARD.encode("al:pw")},
            "https://other:1": {"identitytoken": "tok"},
        }, "credsStore": "x"});
        assert_eq!(stored_auth(&cfg, "docker.io").unwrap()["username"], "u");
        assert_eq!(
            stored_auth(&cfg, "localhost:5000").unwrap()["password"],
            "pw"
        );
        assert_eq!(
            stored_auth(&cfg, "other:1").unwrap()["identitytoken"],
            "tok"
        );
        assert!(stored_auth(&cfg, "nowhere").is_none());
    }

    #[test]
    fn progress_rendering() {
        let mut p = Progress::new(false);
        p.handle(&json!({"status": "Pulling from library/busybox", "id": "latest"}))
            .unwrap();
        p.handle(&json!({"status": "Downloading", "id": "abc", "progress": "[=>  ]"}))
            .unwrap();
        p.handle(&json!({"status": "Pull complete", "id": "abc"}))
            .unwrap();
        p.handle(&json!({"stream": "Step 1/2 : FROM x\n"})).unwrap();
        assert_eq!(
            String::from_utf8(p.take()).unwrap(),
            "latest: Pulling from library/busybox\nabc: Pull complete\nStep 1/2 : FROM x\n"
        );
        let mut t = Progress::new(true);
        t.handle(&json!({"status": "Downloading", "id": "a", "progress": "[=> ]"}))
            .unwrap();
        t.handle(&json!({"status": "Downloading", "id": "b"}))
            .unwrap();
        t.handle(&json!({"status": "Done", "id": "a"})).unwrap();
        let out = String::from_utf8(t.take()).unwrap();
        assert!(
            out.starts_with("a: Downloading [=> ]\nb: Downloading\n\x1b[2A\r\x1b[2Ka: Done"),
            "{out:?}"
        );
        assert!(p
            .handle(&json!({"error": "boom", "errorDetail": {"message": "boom"}}))
            .is_err());
    }
}
