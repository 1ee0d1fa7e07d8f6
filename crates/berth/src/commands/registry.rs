//! `pull`, `push`, `login`, `logout` (credentials in the docker CLI's config.json, so both
//! CLIs share them) and `registry serve|gc` (berth's own registry, from `berth-registry`).

use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs, RegistryGcArgs, RegistryServeArgs};
use crate::client::{empty, Client};
use crate::credentials::{self, Auth};
use crate::reference::Reference;
use crate::{CliError, CmdResult};
use hyper::Method;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The reference to pull or push: `-a` wants a bare name; otherwise a missing tag is `latest`
/// (the bool says the default was applied, which docker announces).
pub fn resolve(image: &str, all_tags: bool) -> Result<(Reference, bool), CliError> {
    let mut r = Reference::parse(image)?;
    if all_tags {
        if !r.is_name_only() {
            return Err(CliError::Msg("tag can't be used with --all-tags/-a".into()));
        }
        return Ok((r, false));
    }
    if r.is_name_only() {
        r.tag = Some("latest".into());
        return Ok((r, true));
    }
    Ok((r, false))
}

/// `POST /images/create` for a pull: the normalised name and the tag or digest, like docker.
pub fn pull_path(r: &Reference, platform: Option<&str>) -> String {
    let mut path = format!(
        "/images/create?fromImage={}&tag={}",
        enc(&r.name()),
        enc(&r.api_tag())
    );
    if let Some(p) = platform.filter(|p| !p.is_empty()) {
        path.push_str(&format!("&platform={}", enc(p)));
    }
    path
}

/// `POST /images/{name}/push`.
pub fn push_path(r: &Reference) -> String {
    format!(
        "/images/{}/push?tag={}",
        super::seg(&r.name()),
        enc(r.tag.as_deref().unwrap_or(""))
    )
}

/// `berth pull`.
pub async fn pull(c: &Client, a: PullArgs) -> CmdResult {
    let (r, defaulted) = resolve(&a.image, a.all_tags)?;
    if defaulted && !a.quiet {
        println!("Using default tag: latest");
    }
    let auth = credentials::header_for(&r.domain)?;
    let resp = c
        .request_with(
            Method::POST,
            &pull_path(&r, a.platform.as_deref()),
            empty(),
            None,
            &[("X-Registry-Auth", auth)],
        )
        .await?;
    crate::progress::display(resp.into_body(), a.quiet).await?;
    println!("{r}");
    Ok(0)
}

/// `berth push`.
pub async fn push(c: &Client, a: PushArgs) -> CmdResult {
    let (r, defaulted) = resolve(&a.image, a.all_tags)?;
    if r.digest.is_some() {
        return Err(CliError::Msg(format!(
            "cannot push a digest reference: {}",
            a.image
        )));
    }
    if defaulted && !a.quiet {
        println!("Using default tag: latest");
    }
    let auth = credentials::header_for(&r.domain)?;
    let resp = c
        .request_with(
            Method::POST,
            &push_path(&r),
            empty(),
            None,
            &[("X-Registry-Auth", auth)],
        )
        .await?;
    crate::progress::display(resp.into_body(), a.quiet).await?;
    if a.quiet {
        println!("{r}");
    }
    Ok(0)
}

/// Asks on the terminal; the answer is not echoed when `echo` is false.
fn prompt(label: &str, echo: bool) -> Result<String, CliError> {
    crate::commands::write_out(label.as_bytes());
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

/// `--password-stdin`: all of stdin less one trailing newline (docker's rule).
fn password_from(mut input: impl Read) -> Result<String, CliError> {
    let mut s = String::new();
    input
        .read_to_string(&mut s)
        .map_err(|e| CliError::Msg(format!("read password from stdin: {e}")))?;
    let s = s.strip_suffix('\n').unwrap_or(&s);
    let s = s.strip_suffix('\r').unwrap_or(s);
    Ok(s.to_string())
}

/// Sends an AuthConfig to `/auth`; returns the identity token the daemon may hand back.
async fn authenticate(c: &Client, auth: &Auth) -> Result<Option<String>, CliError> {
    let resp = c.post_json("/auth", Some(&auth.to_json())).await?;
    Ok(resp
        .get("IdentityToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string))
}

/// `berth login`.
pub async fn login(c: &Client, a: LoginArgs) -> CmdResult {
    if a.password.is_some() && a.password_stdin {
        return Err(CliError::Msg(
            "--password and --password-stdin are mutually exclusive".into(),
        ));
    }
    if a.password_stdin && a.username.is_none() {
        return Err(CliError::Msg(
            "Must provide --username with --password-stdin".into(),
        ));
    }
    let key = credentials::login_key(a.server.as_deref());
    let path = credentials::config_path();
    let mut cfg = credentials::load(&path)?;
    let tty = crate::term::is_tty(libc::STDIN_FILENO);

    // Like docker: with no flags, try what is stored before asking.
    if a.username.is_none() && a.password.is_none() && !a.password_stdin {
        if let Some(stored) = credentials::lookup(&cfg, credentials::hostname(&key)) {
            println!(
                "Authenticating with existing credentials... [Username: {}]",
                stored.username()
            );
            match authenticate(c, &stored).await {
                Ok(_) => {
                    println!("Login Succeeded");
                    return Ok(0);
                }
                Err(e) if tty => eprintln!("Login did not succeed, error: {e}"),
                Err(e) => return Err(e),
            }
        }
    }

    let username = match a.username.clone() {
        Some(u) => u,
        None if tty => prompt("Username: ", true)?,
        None => {
            return Err(CliError::Msg(
                "Error: Cannot perform an interactive login from a non TTY device".into(),
            ))
        }
    };
    let username = username.trim().to_string();
    if username.is_empty() {
        return Err(CliError::Msg("Error: Non-null Username Required".into()));
    }
    let password = if a.password_stdin {
        password_from(std::io::stdin())?
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
                    "Error: Cannot perform an interactive login from a non TTY device".into(),
                ))
            }
        }
    };
    if password.is_empty() {
        return Err(CliError::Msg("Error: Password Required".into()));
    }
    let auth = Auth::Password {
        username: username.clone(),
        password: password.clone(),
        server: key.clone(),
    };
    let token = authenticate(c, &auth).await?;
    credentials::store(&mut cfg, &key, &username, &password, token.as_deref());
    credentials::save(&path, &cfg)?;
    println!("Login Succeeded");
    Ok(0)
}

/// `berth logout`.
pub async fn logout(a: LogoutArgs) -> CmdResult {
    let server = match a.server.as_deref() {
        None => credentials::INDEX_SERVER.to_string(),
        Some(s) => credentials::login_key(Some(s)),
    };
    let path = credentials::config_path();
    let mut cfg = credentials::load(&path)?;
    if credentials::remove(&mut cfg, &server).is_empty() {
        println!("Not logged in to {server}");
        return Ok(0);
    }
    println!("Removing login credentials for {server}");
    credentials::save(&path, &cfg)?;
    Ok(0)
}

/// `--addr`: `HOST:PORT`, `:PORT` (every interface), or a name that resolves.
fn listen_addr(addr: &str) -> Result<std::net::SocketAddr, CliError> {
    use std::net::ToSocketAddrs;
    let full = match addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => addr.to_string(),
    };
    if let Ok(a) = full.parse() {
        return Ok(a);
    }
    full.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| CliError::Msg(format!("invalid --addr {addr:?}: want HOST:PORT")))
}

/// `berth registry serve`.
pub async fn serve(a: RegistryServeArgs) -> CmdResult {
    let mut cfg = match &a.config {
        Some(p) => berth_registry::Config::from_file(std::path::Path::new(p))
            .map_err(|e| CliError::Msg(e.to_string()))?,
        None => berth_registry::Config::default(),
    };
    if let Some(addr) = &a.addr {
        cfg.addr = listen_addr(addr)?;
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
    // An htpasswd file alone asks for basic authentication.
    let mode = a
        .auth
        .clone()
        .or_else(|| a.htpasswd.as_ref().map(|_| "htpasswd".to_string()));
    if let Some(mode) = &mode {
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
    fn pull_and_push_requests() {
        // Table: image, all tags, request path, default tag announced, printed reference.
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let by_digest = format!("busybox@{d}");
        let cases = [
            (
                "busybox",
                false,
                "/images/create?fromImage=docker.io%2Flibrary%2Fbusybox&tag=latest".to_string(),
                true,
                "docker.io/library/busybox:latest".to_string(),
            ),
            (
                "localhost:5000/a/b:v1",
                false,
                "/images/create?fromImage=localhost%3A5000%2Fa%2Fb&tag=v1".into(),
                false,
                "localhost:5000/a/b:v1".into(),
            ),
            (
                &by_digest,
                false,
                format!(
                    "/images/create?fromImage=docker.io%2Flibrary%2Fbusybox&tag={}",
                    enc(d)
                ),
                false,
                format!("docker.io/library/busybox@{d}"),
            ),
            (
                "user/app",
                true,
                "/images/create?fromImage=docker.io%2Fuser%2Fapp&tag=".into(),
                false,
                "docker.io/user/app".into(),
            ),
        ];
        for (image, all, path, defaulted, printed) in cases {
            let (r, def) = resolve(image, all).unwrap();
            assert_eq!(pull_path(&r, None), path, "{image}");
            assert_eq!(def, defaulted, "{image}");
            assert_eq!(r.to_string(), printed, "{image}");
        }
        let (r, _) = resolve("localhost:5000/a", false).unwrap();
        assert_eq!(
            pull_path(&r, Some("linux/arm64")),
            "/images/create?fromImage=localhost%3A5000%2Fa&tag=latest&platform=linux%2Farm64"
        );
        assert_eq!(push_path(&r), "/images/localhost:5000/a/push?tag=latest");
        let (r, _) = resolve("localhost:5000/a", true).unwrap();
        assert_eq!(push_path(&r), "/images/localhost:5000/a/push?tag=");
        assert!(resolve("a:1", true).is_err());
        assert!(resolve("Bad", false).is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            listen_addr("127.0.0.1:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert_eq!(listen_addr(":5000").unwrap().to_string(), "0.0.0.0:5000");
        assert_eq!(listen_addr("[::1]:5").unwrap().to_string(), "[::1]:5");
        assert!(listen_addr("localhost:7").unwrap().ip().is_loopback());
        assert!(listen_addr("nonsense").is_err());
    }

    #[test]
    fn password_stdin_loses_one_newline() {
        assert_eq!(password_from(&b"pw\n"[..]).unwrap(), "pw");
        assert_eq!(password_from(&b"pw\r\n"[..]).unwrap(), "pw");
        assert_eq!(password_from(&b"p w\n\n"[..]).unwrap(), "p w\n");
        assert_eq!(password_from(&b"pw"[..]).unwrap(), "pw");
    }
}
