//! `WWW-Authenticate` challenges: `Basic realm="…"` and `Bearer realm="…",service="…",scope="…"`.

use std::collections::BTreeMap;

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
    }
}
