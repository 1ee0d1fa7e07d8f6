//! Registry credentials in the docker CLI's own `config.json`, so `berth login` and
//! `docker login` share them, and the `X-Registry-Auth` header built from them.
//!
//! ```text
//! $DOCKER_CONFIG/config.json        (default ~/.docker/config.json, mode 0600)
//! {
//!   "auths": {
//!     "https://index.docker.io/v1/": {"auth": "<base64 user:password>"},
//!     "localhost:5000": {"auth": "<base64 user:>", "identitytoken": "<token>"}
//!   },
//!   ...every other key kept as it was
//! }
//! ```
//!
//! Credential helpers (`credsStore`, `credHelpers`) are not consulted.

use crate::CliError;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The key docker uses for Docker Hub credentials.
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

/// `$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`.
pub fn config_path() -> PathBuf {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"))
                .join(".docker")
        });
    dir.join("config.json")
}

/// Reads the config; a missing or empty file is an empty config, a malformed one an error (so
/// a later write never replaces a file we could not understand).
pub fn load(path: &Path) -> Result<Value, CliError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(json!({})),
        Err(e) => {
            return Err(CliError::Msg(format!(
                "loading config file {}: {e}",
                path.display()
            )))
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(CliError::Msg(format!(
            "loading config file {}: not a JSON object",
            path.display()
        ))),
        Err(e) => Err(CliError::Msg(format!(
            "loading config file {}: {e}",
            path.display()
        ))),
    }
}

/// Writes the config atomically (temporary file, then rename), mode 0600.
pub fn save(path: &Path, v: &Value) -> Result<(), CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    // A symlinked config (dotfiles repositories) is updated where it points.
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |p: &Path, e: std::io::Error| CliError::Msg(format!("write {}: {e}", p.display()));
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let text = serde_json::to_string_pretty(v).map_err(|e| CliError::Msg(e.to_string()))?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, &path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(&path, e));
    }
    Ok(())
}

/// `https://host:port/v2/` → `host:port` (docker's `ConvertToHostname`).
pub fn hostname(server: &str) -> &str {
    let s = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    s.split('/').next().unwrap_or(s)
}

/// The config key `login` stores credentials under for a server given on the command line.
pub fn login_key(server: Option<&str>) -> String {
    match server.map(hostname) {
        None | Some("docker.io" | "index.docker.io" | "registry-1.docker.io") => {
            INDEX_SERVER.to_string()
        }
        Some(h) => h.to_string(),
    }
}

/// The config key for a registry host (`docker.io` → Docker Hub's key).
fn key_for_host(host: &str) -> String {
    login_key(Some(host))
}

/// The keys of `auths` that hold credentials for `host`: the exact key, or any key whose
/// hostname is the host (`https://host/`, `http://host`, `host/v2/`).
fn matching_keys(auths: &Map<String, Value>, host: &str) -> Vec<String> {
    let key = key_for_host(host);
    let bare = hostname(&key).to_string();
    auths
        .keys()
        .filter(|k| **k == key || hostname(k) == bare)
        .cloned()
        .collect()
}

/// A stored login, as the daemon's AuthConfig JSON wants it.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    Password {
        username: String,
        password: String,
        server: String,
    },
    Token {
        username: String,
        token: String,
        server: String,
    },
}

impl Auth {
    /// The AuthConfig JSON (`/auth` body, `X-Registry-Auth` payload).
    pub fn to_json(&self) -> Value {
        match self {
            Auth::Password {
                username,
                password,
                server,
            } => json!({"username": username, "password": password, "serveraddress": server}),
            Auth::Token {
                username,
                token,
                server,
            } => {
                let mut v = json!({"identitytoken": token, "serveraddress": server});
                if !username.is_empty() {
                    v["username"] = json!(username);
                }
                v
            }
        }
    }

    /// The username, for messages.
    pub fn username(&self) -> &str {
        match self {
            Auth::Password { username, .. } | Auth::Token { username, .. } => username,
        }
    }
}

/// The stored login for a registry host (`docker.io`, `localhost:5000`), if any.
pub fn lookup(cfg: &Value, host: &str) -> Option<Auth> {
    let auths = cfg.get("auths")?.as_object()?;
    let key = key_for_host(host);
    // The exact key first, then any spelling of the same host.
    let mut keys = matching_keys(auths, host);
    keys.sort_by_key(|k| *k != key);
    keys.into_iter().find_map(|k| {
        let entry = auths.get(&k)?;
        let (user, pass) = match entry.get("auth").and_then(Value::as_str) {
            Some(a) if !a.is_empty() => {
                let raw = base64::engine::general_purpose::STANDARD.decode(a).ok()?;
                let s = String::from_utf8(raw).ok()?;
                let (u, p) = s.split_once(':')?;
                (u.to_string(), p.to_string())
            }
            _ => (
                entry
                    .get("username")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                entry
                    .get("password")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
        };
        match entry.get("identitytoken").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => Some(Auth::Token {
                username: user,
                token: t.to_string(),
                server: key.clone(),
            }),
            _ if user.is_empty() && pass.is_empty() => None,
            _ => Some(Auth::Password {
                username: user,
                password: pass,
                server: key.clone(),
            }),
        }
    })
}

/// Records a login under `key`, keeping every other key of the config.
pub fn store(cfg: &mut Value, key: &str, username: &str, password: &str, token: Option<&str>) {
    if !cfg.is_object() {
        *cfg = json!({});
    }
    if !cfg.get("auths").is_some_and(Value::is_object) {
        cfg["auths"] = json!({});
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    // With an identity token docker keeps the username but never the password.
    let entry = match token.filter(|t| !t.is_empty()) {
        Some(t) => json!({"auth": b64.encode(format!("{username}:")), "identitytoken": t}),
        None => json!({"auth": b64.encode(format!("{username}:{password}"))}),
    };
    cfg["auths"][key] = entry;
}

/// Forgets the login for `server` (under any spelling of its host); returns the removed keys.
pub fn remove(cfg: &mut Value, server: &str) -> Vec<String> {
    let Some(auths) = cfg.get_mut("auths").and_then(Value::as_object_mut) else {
        return Vec::new();
    };
    let mut keys = matching_keys(auths, hostname(server));
    if auths.contains_key(server) && !keys.iter().any(|k| k == server) {
        keys.push(server.to_string());
    }
    for k in &keys {
        auths.remove(k);
    }
    keys
}

/// `X-Registry-Auth`: URL-safe base64 of the AuthConfig JSON (`{}` when anonymous).
pub fn encode_header(auth: Option<&Auth>) -> String {
    let v = auth.map(Auth::to_json).unwrap_or_else(|| json!({}));
    base64::engine::general_purpose::URL_SAFE.encode(v.to_string())
}

/// The `X-Registry-Auth` value for a registry host, from the user's config.
pub fn header_for(host: &str) -> Result<String, CliError> {
    let cfg = load(&config_path())?;
    Ok(encode_header(lookup(&cfg, host).as_ref()))
}

/// `X-Registry-Config` for builds: base64url JSON of every stored login (server →
/// AuthConfig); `None` when there are none.
pub fn registry_config_header() -> Result<Option<String>, CliError> {
    use base64::Engine;
    let cfg = load(&config_path())?;
    let Some(auths) = cfg.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    let mut out = serde_json::Map::new();
    for key in auths.keys() {
        if let Some(a) = lookup(&cfg, hostname(key)) {
            out.insert(key.clone(), a.to_json());
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        base64::engine::general_purpose::URL_SAFE.encode(Value::Object(out).to_string()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn lookups_by_host() {
        let cfg = json!({"auths": {
            "https://index.docker.io/v1/": {"auth": b64("hub:pw")},
            "localhost:5000": {"auth": b64("al:p:w")},
            "https://other:1/v2/": {"auth": b64("u:"), "identitytoken": "tok"},
            "http://plain.example": {"auth": b64("p:q")},
            "empty:1": {},
        }, "credsStore": "x"});
        // Table: host, expected AuthConfig JSON.
        let cases = [
            (
                "docker.io",
                Some(json!({"username": "hub", "password": "pw", "serveraddress": INDEX_SERVER})),
            ),
            (
                "localhost:5000",
                Some(
                    json!({"username": "al", "password": "p:w", "serveraddress": "localhost:5000"}),
                ),
            ),
            (
                "other:1",
                Some(json!({"username": "u", "identitytoken": "tok", "serveraddress": "other:1"})),
            ),
            (
                "plain.example",
                Some(json!({"username": "p", "password": "q", "serveraddress": "plain.example"})),
            ),
            ("empty:1", None),
            ("nowhere", None),
            ("localhost:5001", None),
        ];
        for (host, want) in cases {
            assert_eq!(lookup(&cfg, host).map(|a| a.to_json()), want, "{host}");
        }
        assert!(lookup(&json!({}), "docker.io").is_none());
        assert!(lookup(&json!({"auths": []}), "docker.io").is_none());
    }

    #[test]
    fn header_is_url_safe_base64_json() {
        assert_eq!(encode_header(None), "e30=");
        let a = Auth::Password {
            username: "u".into(),
            password: "?>?>".into(),
            server: "h:1".into(),
        };
        let h = encode_header(Some(&a));
        assert!(!h.contains('+') && !h.contains('/'), "{h}");
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(&h)
            .unwrap();
        let v: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            v,
            json!({"username": "u", "password": "?>?>", "serveraddress": "h:1"})
        );
    }

    #[test]
    fn keys_for_login() {
        assert_eq!(login_key(None), INDEX_SERVER);
        assert_eq!(login_key(Some("docker.io")), INDEX_SERVER);
        assert_eq!(login_key(Some(INDEX_SERVER)), INDEX_SERVER);
        assert_eq!(login_key(Some("localhost:5000")), "localhost:5000");
        assert_eq!(
            login_key(Some("https://r.example:443/v2/")),
            "r.example:443"
        );
    }

    #[test]
    fn store_and_remove_keep_other_keys() {
        let mut cfg = json!({"auths": {"a:1": {"auth": b64("x:y")}}, "psFormat": "{{.ID}}"});
        store(&mut cfg, "localhost:5000", "al", "pw", None);
        store(&mut cfg, INDEX_SERVER, "hub", "ignored", Some("tok"));
        assert_eq!(cfg["psFormat"], "{{.ID}}");
        assert_eq!(cfg["auths"]["a:1"]["auth"], b64("x:y"));
        assert_eq!(
            cfg["auths"]["localhost:5000"],
            json!({"auth": b64("al:pw")})
        );
        assert_eq!(
            cfg["auths"][INDEX_SERVER],
            json!({"auth": b64("hub:"), "identitytoken": "tok"})
        );
        cfg["auths"]["https://localhost:5000"] = json!({"auth": b64("old:pw")});
        let mut removed = remove(&mut cfg, "localhost:5000");
        removed.sort();
        assert_eq!(removed, ["https://localhost:5000", "localhost:5000"]);
        assert_eq!(remove(&mut cfg, "localhost:5000"), Vec::<String>::new());
        assert_eq!(remove(&mut cfg, INDEX_SERVER), [INDEX_SERVER]);
        assert_eq!(cfg["auths"], json!({"a:1": {"auth": b64("x:y")}}));
        let mut empty = json!({});
        assert!(remove(&mut empty, "x").is_empty());
        store(&mut empty, "x", "u", "p", None);
        assert_eq!(empty, json!({"auths": {"x": {"auth": b64("u:p")}}}));
    }

    #[test]
    fn file_round_trip() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/config.json");
        assert_eq!(load(&p).unwrap(), json!({}));
        let mut cfg = json!({"detachKeys": "ctrl-x"});
        store(&mut cfg, "localhost:5000", "u", "p", None);
        save(&p, &cfg).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = load(&p).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(lookup(&back, "localhost:5000").unwrap().username(), "u");
        // Only the config remains in the directory (no temporary file left behind).
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        std::fs::write(&p, "{not json").unwrap();
        assert!(load(&p).is_err());
        std::fs::write(&p, "  \n").unwrap();
        assert_eq!(load(&p).unwrap(), json!({}));
    }
}
