//! Authentication: parsing `WWW-Authenticate` challenges (`Basic realm="…"`,
//! `Bearer realm="…",service="…",scope="…"`) and Docker's token flow.
//!
//! A Bearer challenge is answered by asking its realm for a token for the repository's scopes
//! (`repository:<path>:pull` or `pull,push`):
//!
//! - with an identity token: `POST <realm>` form `grant_type=refresh_token` (Docker's OAuth2
//!   flow); a realm that does not know that flow (404/405) is asked as below with the identity
//!   token as a Basic password (berth's own registry accepts that);
//! - otherwise `GET <realm>?service=…&scope=…[&account=<user>]`, with Basic credentials when
//!   there are any, anonymously when not.
//!
//! The answer's `token` (or `access_token`) is cached per (registry, scopes) until a few seconds
//! before its `expires_in` (60 s when absent, as Docker assumes).

use crate::client::{basic, full, header, lock, pct, read_capped};
use crate::endpoint::{authority, is_insecure};
use crate::error::registry_error;
use crate::types::Credentials;
use crate::{Client, DistError, Result};
use bytes::Bytes;
use hyper::{Request, StatusCode};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::debug;

/// A parsed challenge: its scheme (lower-cased) and parameters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
}

/// Parses one `WWW-Authenticate` header value (quoted values may contain commas and `\"`).
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = match h.find(' ') {
        Some(i) => (&h[..i], &h[i + 1..]),
        None => (h, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = rest[ks..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                // Copy whole UTF-8 characters.
                let ch_len = utf8_len(b[i]);
                val.push_str(&rest[i..(i + ch_len).min(b.len())]);
                i += ch_len;
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = rest[vs..i].trim().to_string();
        }
        if !key.is_empty() {
            params.insert(key, val);
        }
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

fn utf8_len(first: u8) -> usize {
    match first {
        0..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Largest token response read.
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

impl Client {
    /// A bearer token for `scopes` on `host` from the challenge's realm, cached until expiry.
    pub(crate) async fn token(
        &self,
        host: &str,
        challenge: &Challenge,
        scopes: &[String],
        creds: Option<&Credentials>,
    ) -> Result<String> {
        let key = (host.to_string(), scopes.join(" "));
        if let Some((t, exp)) = lock(&self.inner.tokens).get(&key) {
            if *exp > Instant::now() {
                return Ok(t.clone());
            }
        }
        let realm = challenge
            .param("realm")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| DistError::Invalid(format!("{host}: bearer challenge without realm")))?;
        if !realm.starts_with("https://") && !realm.starts_with("http://") {
            return Err(DistError::Invalid(format!(
                "{host}: bearer realm is not a URL: {realm}"
            )));
        }
        let service = challenge.param("service").unwrap_or("");
        let skip_verify = is_insecure(&self.opts().insecure_registries, authority(realm));
        let mut resp = None;
        if let Some(refresh) = creds.and_then(|c| c.identity_token.as_deref()) {
            let form = format!(
                "grant_type=refresh_token&refresh_token={}&service={}&scope={}&client_id=berth",
                pct(refresh),
                pct(service),
                pct(&scopes.join(" "))
            );
            let req = Request::post(realm)
                .header("User-Agent", &self.opts().user_agent)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Content-Length", form.len().to_string())
                .body(full(form))
                .map_err(|e| DistError::Invalid(format!("{realm}: {e}")))?;
            let r = self.send_raw(req, skip_verify).await?;
            if !matches!(
                r.status(),
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ) {
                resp = Some(r);
            } else {
                debug!(
                    realm,
                    "realm does not take refresh tokens; asking with basic auth"
                );
            }
        }
        let resp = match resp {
            Some(r) => r,
            None => {
                let mut q = format!("service={}", pct(service));
                for s in scopes {
                    q.push_str(&format!("&scope={}", pct(s)));
                }
                let mut auth = None;
                if let Some(c) = creds {
                    if let Some(t) = &c.identity_token {
                        auth = Some(basic(&Credentials {
                            username: "<token>".into(),
                            password: t.clone(),
                            identity_token: None,
                        }));
                    } else if !c.username.is_empty() {
                        q.push_str(&format!("&account={}", pct(&c.username)));
                        auth = Some(basic(c));
                    }
                }
                let sep = if realm.contains('?') { '&' } else { '?' };
                let url = format!("{realm}{sep}{q}");
                let mut b = Request::get(&url).header("User-Agent", &self.opts().user_agent);
                if let Some(a) = auth {
                    b = b.header("Authorization", a);
                }
                let req = b
                    .body(full(Bytes::new()))
                    .map_err(|e| DistError::Invalid(format!("{realm}: {e}")))?;
                self.send_raw(req, skip_verify).await?
            }
        };
        let status = resp.status();
        let www = header(&resp, "WWW-Authenticate");
        let body = read_capped(
            resp.into_body(),
            MAX_TOKEN_RESPONSE,
            self.opts().stall_timeout,
        )
        .await
        .map_err(|e| DistError::Unavailable(format!("{realm}: {e}")))?;
        if !status.is_success() {
            debug!(realm, %status, challenge = ?www, "token request refused");
            return Err(token_error(status, &body));
        }
        let (token, ttl) =
            parse_token_response(&body).map_err(|e| DistError::Invalid(format!("{realm}: {e}")))?;
        let keep = Duration::from_secs(ttl.saturating_sub(5).max(1));
        lock(&self.inner.tokens).insert(key, (token.clone(), Instant::now() + keep));
        Ok(token)
    }
}

/// A refused token request: the registry's JSON errors, or Docker Hub's `{"details": "…"}`.
fn token_error(status: StatusCode, body: &[u8]) -> DistError {
    let details = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("details").and_then(Value::as_str).map(str::to_string));
    match (status, details) {
        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, Some(d)) => {
            DistError::Unauthorized(format!("unauthorized: {d}"))
        }
        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, None) => {
            match registry_error(status, body) {
                e @ DistError::Unauthorized(_) => e,
                e => DistError::Unauthorized(format!("unauthorized: {e}")),
            }
        }
        _ => registry_error(status, body),
    }
}

/// The token (`token`, else `access_token`) and its lifetime in seconds (at least 60, as
/// Docker assumes).
fn parse_token_response(body: &[u8]) -> std::result::Result<(String, u64), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("bad token response: {e}"))?;
    let token = ["token", "access_token"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str).filter(|t| !t.is_empty()))
        .ok_or("no token in response")?
        .to_string();
    let ttl = v
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(60)
        .max(60);
    Ok((token, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (header, scheme, params)
    type Row<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

    #[test]
    fn challenges() {
        let table: &[Row] = &[
            ("Basic realm=\"reg\"", "basic", &[("realm", "reg")]),
            (
                "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/busybox:pull\"",
                "bearer",
                &[
                    ("realm", "https://auth.docker.io/token"),
                    ("service", "registry.docker.io"),
                    ("scope", "repository:library/busybox:pull"),
                ],
            ),
            (
                "Bearer realm=\"http://h/token\", scope=\"repository:a:pull,push\", error=\"insufficient_scope\"",
                "bearer",
                &[
                    ("realm", "http://h/token"),
                    ("scope", "repository:a:pull,push"),
                    ("error", "insufficient_scope"),
                ],
            ),
            ("Bearer realm=plain,service=x", "bearer", &[("realm", "plain"), ("service", "x")]),
            ("Basic realm=\"a \\\"quoted\\\" b\"", "basic", &[("realm", "a \"quoted\" b")]),
            ("Basic", "basic", &[]),
            (
                "bearer  Realm=\"https://a/t?x=1,2\" , Service=\"s\",scope=\"repository:a/b:pull repository:c:pull\"",
                "bearer",
                &[
                    ("realm", "https://a/t?x=1,2"),
                    ("service", "s"),
                    ("scope", "repository:a/b:pull repository:c:pull"),
                ],
            ),
            (
                "Bearer realm=\"r\",error=\"invalid_token\",error_description=\"expired, renew\"",
                "bearer",
                &[
                    ("realm", "r"),
                    ("error", "invalid_token"),
                    ("error_description", "expired, renew"),
                ],
            ),
            ("Bearer realm=\"unterminated", "bearer", &[("realm", "unterminated")]),
            ("Bearer realm=\"\"", "bearer", &[("realm", "")]),
            ("Basic realm=\"caf\u{e9}\"", "basic", &[("realm", "caf\u{e9}")]),
        ];
        for (input, scheme, params) in table {
            let c = parse_challenge(input).unwrap();
            assert_eq!(c.scheme, *scheme, "{input}");
            let want: BTreeMap<String, String> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(c.params, want, "{input}");
        }
        assert!(parse_challenge("").is_none());
        assert!(parse_challenge("   ").is_none());
    }

    #[test]
    fn token_responses() {
        let table: &[(&str, Option<(&str, u64)>)] = &[
            (r#"{"token":"t","expires_in":300}"#, Some(("t", 300))),
            (r#"{"access_token":"a"}"#, Some(("a", 60))),
            (
                r#"{"token":"","access_token":"a","expires_in":5}"#,
                Some(("a", 60)),
            ),
            (r#"{"token":"t","access_token":"a"}"#, Some(("t", 60))),
            (r#"{"expires_in":300}"#, None),
            ("not json", None),
        ];
        for (body, want) in table {
            let got = parse_token_response(body.as_bytes()).ok();
            let got = got.as_ref().map(|(t, n)| (t.as_str(), *n));
            assert_eq!(got, *want, "{body}");
        }
        let e = token_error(
            StatusCode::UNAUTHORIZED,
            br#"{"details":"incorrect username or password"}"#,
        );
        assert_eq!(
            e.to_string(),
            "unauthorized: incorrect username or password"
        );
        let e = token_error(StatusCode::FORBIDDEN, b"");
        assert_eq!(e.kind(), crate::ErrorKind::Unauthorized);
        let e = token_error(StatusCode::INTERNAL_SERVER_ERROR, b"");
        assert_eq!(e.kind(), crate::ErrorKind::Unavailable);
    }
}
