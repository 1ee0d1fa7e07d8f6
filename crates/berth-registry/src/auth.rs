//! Access control: none, htpasswd basic auth, or Docker's bearer-token flow with a token
//! endpoint served by the registry itself. Tokens are `base64url(claims).base64url(hmac)` with
//! HMAC-SHA256 under the server's secret; the claims carry the account, the granted
//! `repository:<name>:<actions>` scopes and an expiry (five minutes).
//!
//! Policy:
//! - `GET /v2/` needs valid credentials (or a valid token) but no scope.
//! - Repository endpoints need `pull` for GET/HEAD and `push` for POST/PUT/PATCH; DELETE needs
//!   `delete` or `push` (a pusher may already overwrite every tag, so deleting grants it
//!   nothing new). `_catalog` needs any valid token.
//! - Every htpasswd user is granted whatever repository scope they ask for (there are no
//!   per-repository ACLs); anonymous clients get `pull` only, and only with
//!   `allow_anonymous_pull`, which also lets them pull without any token.
//! - A missing, invalid or expired token, or one lacking the scope, answers 401 with a
//!   `Bearer` challenge naming the scope needed (`error="insufficient_scope"` or
//!   `"invalid_token"`), as distribution does, so clients fetch a better token and retry.
//! - htpasswd mode: any valid user may do anything; otherwise 401 with a `Basic` challenge.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How clients authenticate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AuthConfig {
    /// Anyone may pull and push.
    #[default]
    None,
    /// `WWW-Authenticate: Basic`, users from an htpasswd file (bcrypt entries).
    Htpasswd { path: PathBuf, realm: String },
    /// Docker's token flow. `realm` is the token URL (default: this server's `/token`).
    Token {
        htpasswd: PathBuf,
        #[serde(default)]
        realm: Option<String>,
        #[serde(default = "default_service")]
        service: String,
        /// Lets anonymous clients pull.
        #[serde(default)]
        allow_anonymous_pull: bool,
    },
}

fn default_service() -> String {
    "berth-registry".into()
}

/// Users and their bcrypt hashes, with a cache of credentials already verified: bcrypt costs
/// tens of milliseconds by design, and a client sends basic credentials with every request.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// sha256(salt, user, 0, password) of credentials bcrypt accepted.
    verified: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
    salt: [u8; 16],
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, crate::RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::RegistryError::Config(format!("htpasswd {}: {e}", path.display()))
        })?;
        Ok(Htpasswd::parse(&text))
    }

    pub fn parse(text: &str) -> Htpasswd {
        use rand::RngCore;
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        Htpasswd {
            users: text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .filter_map(|l| l.trim().split_once(':'))
                .map(|(u, h)| (u.to_string(), h.trim().to_string()))
                .collect(),
            verified: Default::default(),
            salt,
        }
    }

    /// Whether `user` exists with password `pw` (bcrypt only, as distribution requires).
    pub fn verify(&self, user: &str, pw: &str) -> bool {
        let Some(h) = self.users.get(user).filter(|h| h.starts_with("$2")) else {
            return false;
        };
        let mut k = Sha256::new();
        k.update(self.salt);
        k.update(user.as_bytes());
        k.update([0]);
        k.update(pw.as_bytes());
        let key: [u8; 32] = k.finalize().into();
        if self.verified.lock().is_ok_and(|v| v.contains(&key)) {
            return true;
        }
        let ok = bcrypt::verify(pw, h).unwrap_or(false);
        if ok {
            if let Ok(mut v) = self.verified.lock() {
                v.insert(key);
            }
        }
        ok
    }
}

/// Basic credentials from an `Authorization` header.
pub fn basic_credentials(h: &str) -> Option<(String, String)> {
    let b64 = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// What a token grants.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: String,
    /// `repository:<name>:<a,b>` entries.
    pub access: Vec<String>,
    pub exp: i64,
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

/// Signs claims into a token.
pub fn issue(secret: &[u8], c: &Claims) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let body = e.encode(serde_json::to_vec(c).unwrap_or_default());
    let sig = e.encode(hmac(secret, body.as_bytes()));
    format!("{body}.{sig}")
}

/// Checks a token's signature and expiry.
pub fn verify(secret: &[u8], token: &str, now: i64) -> Option<Claims> {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (body, sig) = token.split_once('.')?;
    let want = hmac(secret, body.as_bytes());
    let got = e.decode(sig).ok()?;
    // Constant-time comparison.
    if got.len() != want.len() || got.iter().zip(&want).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
        return None;
    }
    let c: Claims = serde_json::from_slice(&e.decode(body).ok()?).ok()?;
    (c.exp > now).then_some(c)
}

/// Whether the claims allow `action` on repository `name`.
pub fn allows(c: &Claims, name: &str, action: &str) -> bool {
    c.access.iter().any(|a| {
        let mut parts = a.splitn(3, ':');
        let (Some("repository"), Some(n), Some(acts)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        (n == name || n == "*") && acts.split(',').any(|x| x == action || x == "*")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let c = Claims {
            sub: "bob".into(),
            access: vec!["repository:a/b:pull,push".into()],
            exp: 100,
        };
        let t = issue(b"k", &c);
        assert_eq!(verify(b"k", &t, 50), Some(c.clone()));
        assert_eq!(verify(b"k", &t, 100), None, "expired");
        assert_eq!(verify(b"other", &t, 50), None, "wrong key");
        let mut forged = t.clone();
        forged.insert(3, 'x');
        assert_eq!(verify(b"k", &forged, 50), None);
        assert!(allows(&c, "a/b", "push"));
        assert!(!allows(&c, "a/c", "pull"));
        assert!(!allows(&c, "a/b", "delete"));
    }

    #[test]
    fn htpasswd_and_basic() {
        let h = bcrypt::hash("pw", 4).unwrap();
        let f = Htpasswd::parse(&format!("alice:{h}\nbob:plain\n"));
        assert!(f.verify("alice", "pw"));
        assert!(!f.verify("alice", "nope"));
        assert!(
            !f.verify("bob", "plain"),
            "only bcrypt entries are accepted"
        );
        assert_eq!(
            basic_credentials("Basic YWxpY2U6cHc="),
            Some(("alice".into(), "pw".into()))
        );
        // The RFC 2104 test vector 2 for HMAC-SHA256.
        assert_eq!(
            hex::encode(hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
