//! Flag value parsing shared by the commands, with docker's wording for errors: memory sizes,
//! env files, ulimits, filters, restart policies, CPU counts and image references.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// go-units `RAMInBytes`: `512m`, `1g`, `100k`, `1.5G`, plain bytes; binary multiples.
pub fn parse_ram(s: &str) -> Result<i64, String> {
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let num: f64 = s[..num_end]
        .parse()
        .map_err(|_| format!("invalid size: '{s}'"))?;
    let raw_suffix = s[num_end..].trim_start_matches(' ');
    let mult: f64 = match raw_suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "ki" | "kib" => 1024.0,
        "m" | "mb" | "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gi" | "gib" => 1024.0f64.powi(3),
        "t" | "tb" | "ti" | "tib" => 1024.0f64.powi(4),
        "p" | "pb" | "pi" | "pib" => 1024.0f64.powi(5),
        _ => return Err(format!("invalid suffix: '{raw_suffix}'")),
    };
    Ok((num * mult) as i64)
}

/// `--memory-swap`: `-1` means unlimited, otherwise a size.
pub fn parse_swap(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    parse_ram(s)
}

/// `--cpus 1.5` → NanoCpus.
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("failed to parse {s} as a rational number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("failed to parse {s} as a rational number"));
    }
    Ok((v * 1e9).round() as i64)
}

/// Reads an env file like docker's `opts.ParseEnvFile`: `KEY=value` lines kept verbatim,
/// comments and blank lines skipped, a bare `KEY` taken from `lookup` (dropped when unset).
pub fn parse_env_file(
    content: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (n, raw) in content.lines().enumerate() {
        let raw = if n == 0 {
            raw.trim_start_matches('\u{feff}')
        } else {
            raw
        };
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if name.is_empty() {
            return Err(format!("no variable name on line '{line}'"));
        }
        if name.contains(char::is_whitespace) {
            return Err(format!("variable '{name}' contains whitespaces"));
        }
        match value {
            Some(_) => out.push(line.to_string()),
            None => {
                if let Some(v) = lookup(name) {
                    out.push(format!("{name}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// `-e KEY` takes the value from the local environment; `-e KEY=v` is kept.
pub fn expand_env(v: &str) -> String {
    if v.contains('=') {
        return v.to_string();
    }
    match std::env::var(v) {
        Ok(val) => format!("{v}={val}"),
        Err(_) => v.to_string(),
    }
}

/// `--ulimit nofile=1024:2048` → `{"Name":"nofile","Soft":1024,"Hard":2048}`.
pub fn parse_ulimit(s: &str) -> Result<Value, String> {
    let (name, limits) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {s}"))?;
    const NAMES: [&str; 15] = [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    if !NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let parse = |x: &str| {
        x.parse::<i64>()
            .map_err(|_| format!("invalid ulimit argument: {s}"))
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let v = parse(limits)?;
            (v, v)
        }
    };
    if soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `--restart on-failure:3` → `{"Name":"on-failure","MaximumRetryCount":3}`.
pub fn parse_restart(s: &str) -> Result<Value, String> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    match name {
        "no" | "always" | "unless-stopped" | "on-failure" | "" => {}
        _ => return Err(format!("invalid restart policy '{name}'")),
    }
    let n = match count {
        Some(c) => {
            if name != "on-failure" {
                return Err(format!("invalid restart policy '{s}': maximum retry count can only be used with 'on-failure'"));
            }
            c.parse::<i64>().map_err(|_| {
                format!("invalid restart policy '{s}': maximum retry count must be an integer")
            })?
        }
        None => 0,
    };
    Ok(json!({"Name": name, "MaximumRetryCount": n}))
}

/// `-l k=v` / `-l k` as a labels map.
pub fn parse_labels(list: &[String]) -> Map<String, Value> {
    let mut m = Map::new();
    for l in list {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    m
}

/// Encodes `--filter k=v` flags as the `filters` query parameter: `{"k":["v",...]}`.
pub fn encode_filters(list: &[String]) -> Result<Option<String>, String> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in list {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| format!("bad format of filter (expected name=value): {f}"))?;
        let k = k.trim().to_lowercase();
        let v = v.trim().to_string();
        let e = m.entry(k).or_default();
        if !e.contains(&v) {
            e.push(v);
        }
    }
    Ok(Some(serde_json::to_string(&m).unwrap_or_default()))
}

/// Adds `:latest` to a reference without a tag or digest, as docker shows it.
pub fn with_latest(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || image.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// Splits `repo[:tag]` (a registry port is not a tag).
pub fn split_repo_tag(r: &str) -> (String, String) {
    if let Some(i) = r.rfind(':') {
        if !r[i + 1..].contains('/') {
            return (r[..i].to_string(), r[i + 1..].to_string());
        }
    }
    (r.to_string(), String::new())
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds `?k=v&...` from pairs, encoding values.
pub fn query(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_sizes() {
        let ok = [
            ("512m", 512 << 20),
            ("1g", 1 << 30),
            ("1G", 1 << 30),
            ("100k", 100 << 10),
            ("100kb", 100 << 10),
            ("1.5g", 3 << 29),
            ("4096", 4096),
            ("10b", 10),
            ("2MiB", 2 << 20),
        ];
        for (s, want) in ok {
            assert_eq!(parse_ram(s), Ok(want), "{s}");
        }
        assert_eq!(parse_ram("12x"), Err("invalid suffix: 'x'".into()));
        assert_eq!(parse_ram("abc"), Err("invalid size: 'abc'".into()));
        assert_eq!(parse_swap("-1"), Ok(-1));
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("0.01"), Ok(10_000_000));
        assert!(parse_cpus("x").is_err());
    }

    #[test]
    fn env_files() {
        let content = "\u{feff}# comment\n\nA=1\n  B=  spaced\nC=\nHOME_X\nUNSET_Y\nD=a=b\n";
        let got =
            parse_env_file(content, |k| (k == "HOME_X").then(|| "/root".to_string())).unwrap();
        assert_eq!(
            got,
            vec!["A=1", "B=  spaced", "C=", "HOME_X=/root", "D=a=b"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        );
        assert!(parse_env_file("=x\n", |_| None).is_err());
        assert_eq!(
            parse_env_file("A B\n", |_| None),
            Err("variable 'A B' contains whitespaces".into())
        );
        assert_eq!(
            parse_env_file("B = x\n", |_| None),
            Err("variable 'B ' contains whitespaces".into())
        );
    }

    #[test]
    fn ulimits() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048"),
            Ok(json!({"Name":"nofile","Soft":1024,"Hard":2048}))
        );
        assert_eq!(
            parse_ulimit("nproc=100"),
            Ok(json!({"Name":"nproc","Soft":100,"Hard":100}))
        );
        assert!(parse_ulimit("bogus=1").is_err());
        assert!(parse_ulimit("nofile=2:1").is_err());
        assert!(parse_ulimit("nofile").is_err());
    }

    #[test]
    fn restart_policies() {
        assert_eq!(
            parse_restart("always"),
            Ok(json!({"Name":"always","MaximumRetryCount":0}))
        );
        assert_eq!(
            parse_restart("on-failure:3"),
            Ok(json!({"Name":"on-failure","MaximumRetryCount":3}))
        );
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("sometimes").is_err());
    }

    #[test]
    fn filters() {
        assert_eq!(encode_filters(&[]), Ok(None));
        let f = encode_filters(&[
            "status=exited".into(),
            "name=web".into(),
            "status=created".into(),
        ])
        .unwrap();
        assert_eq!(
            f.as_deref(),
            Some(r#"{"name":["web"],"status":["exited","created"]}"#)
        );
        assert!(encode_filters(&["nope".into()]).is_err());
        assert_eq!(query(&[("filters", f.unwrap())]), "?filters=%7B%22name%22%3A%5B%22web%22%5D%2C%22status%22%3A%5B%22exited%22%2C%22created%22%5D%7D");
    }

    #[test]
    fn references() {
        assert_eq!(with_latest("alpine"), "alpine:latest");
        assert_eq!(with_latest("alpine:3"), "alpine:3");
        assert_eq!(with_latest("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(with_latest("x@sha256:ab"), "x@sha256:ab");
        assert_eq!(
            split_repo_tag("localhost:5000/x"),
            ("localhost:5000/x".into(), "".into())
        );
        assert_eq!(split_repo_tag("x:1"), ("x".into(), "1".into()));
        assert_eq!(
            parse_labels(&["a=1".into(), "b".into()]),
            json!({"a":"1","b":""}).as_object().unwrap().clone()
        );
    }
}
