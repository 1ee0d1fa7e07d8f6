//! `berth build` and `berth builder prune`: the context sent as a tar (minus what
//! .dockerignore excludes), the legacy builder's stream shown with each step's time.

use crate::cli::{BuildArgs, BuilderPruneArgs};
use crate::client::{full, next_chunk, stream_reader, Client, JsonLines};
use crate::{CliError, CmdResult};
use base64::Engine;
use hyper::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `K=V` flags as a JSON object (`K` alone takes the value from the environment, like docker).
fn kv_json(items: &[String], from_env: bool) -> Result<String, CliError> {
    let mut m = BTreeMap::new();
    for i in items {
        match i.split_once('=') {
            Some((k, v)) => {
                m.insert(k.to_string(), Value::String(v.to_string()));
            }
            None if from_env => {
                if let Ok(v) = std::env::var(i) {
                    m.insert(i.clone(), Value::String(v));
                }
            }
            None => {
                m.insert(i.clone(), Value::String(String::new()));
            }
        }
    }
    Ok(Value::Object(m.into_iter().collect()).to_string())
}

/// `--secret id=x,src=path` → (id, contents).
fn read_secret(spec: &str) -> Result<(String, Vec<u8>), CliError> {
    let mut id = None;
    let mut src = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(v.to_string()),
            Some(("type", "file")) => {}
            _ => {
                return Err(CliError::Msg(format!(
                    "invalid secret {spec:?}: want id=ID,src=PATH"
                )))
            }
        }
    }
    let id = id.ok_or_else(|| CliError::Msg(format!("invalid secret {spec:?}: id is required")))?;
    let src = src.unwrap_or_else(|| id.clone());
    let data =
        std::fs::read(&src).map_err(|e| CliError::Msg(format!("secret {id}: {src}: {e}")))?;
    Ok((id, data))
}

/// Writes the context directory as a tar: .dockerignore'd paths left out (but never the
/// Dockerfile or .dockerignore), symlinks as links, owners zeroed. An outside Dockerfile is
/// added as `extra`.
pub fn context_tar(
    dir: &Path,
    dockerfile_rel: &str,
    extra: Option<(&str, &[u8])>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let ignore = std::fs::read_to_string(dir.join(".dockerignore")).unwrap_or_default();
    let m = berth_build::dockerignore::Matcher::from_file(&ignore)
        .map_err(|e| CliError::Msg(format!("invalid .dockerignore: {e}")))?;
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let err = |e: std::io::Error| CliError::Msg(format!("error creating the build context: {e}"));
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
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
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
                    let mut h = tar::Header::new_gnu();
                    h.set_metadata(&md);
                    h.set_uid(0);
                    h.set_gid(0);
                    b.append_data(&mut h, format!("{r}/"), std::io::empty())?;
                }
                walk(b, root, &r, m, keep)?;
            } else if !excluded {
                let mut h = tar::Header::new_gnu();
                h.set_metadata(&md);
                h.set_uid(0);
                h.set_gid(0);
                if md.file_type().is_symlink() {
                    let t = std::fs::read_link(&p)?;
                    b.append_link(&mut h, &r, t)?;
                } else if md.is_file() {
                    b.append_data(&mut h, &r, std::fs::File::open(&p)?)?;
                }
            }
        }
        Ok(())
    }
    walk(&mut b, dir, "", &m, &[dockerfile_rel, ".dockerignore"]).map_err(err)?;
    if let Some((name, data)) = extra {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).map_err(err)?;
    }
    b.into_inner().map_err(err)?;
    Ok(())
}

/// `berth build`.
pub async fn build(c: &Client, a: BuildArgs) -> CmdResult {
    let mut q: Vec<String> = Vec::new();
    for t in &a.tags {
        q.push(format!("t={}", enc(t)));
    }
    if !a.build_args.is_empty() {
        q.push(format!("buildargs={}", enc(&kv_json(&a.build_args, true)?)));
    }
    if !a.labels.is_empty() {
        q.push(format!("labels={}", enc(&kv_json(&a.labels, false)?)));
    }
    if let Some(t) = &a.target {
        q.push(format!("target={}", enc(t)));
    }
    if a.no_cache {
        q.push("nocache=1".into());
    }
    if a.quiet {
        q.push("q=1".into());
    }
    if let Some(n) = &a.network {
        q.push(format!("networkmode={}", enc(n)));
    }
    if let Some(p) = &a.platform {
        q.push(format!("platform={}", enc(p)));
    }
    q.push("rm=1".into());
    let body = if a.context == "-" {
        if a.file.is_some() {
            // The Dockerfile inside the stdin tar is named by -f as given.
            q.push(format!(
                "dockerfile={}",
                enc(a.file.as_deref().unwrap_or("Dockerfile"))
            ));
        }
        stream_reader(tokio::io::stdin())
    } else {
        let dir = PathBuf::from(&a.context);
        if !dir.is_dir() {
            return Err(CliError::Msg(format!(
                "unable to prepare context: path {:?} not found",
                a.context
            )));
        }
        let dir = dir
            .canonicalize()
            .map_err(|e| CliError::Msg(format!("{}: {e}", a.context)))?;
        let df = match &a.file {
            Some(f) => {
                let p = PathBuf::from(f);
                if p.is_absolute() {
                    p
                } else {
                    std::env::current_dir().unwrap_or_default().join(p)
                }
            }
            None => dir.join("Dockerfile"),
        };
        let df = df.canonicalize().map_err(|_| {
            CliError::Msg(format!("unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory", df.display()))
        })?;
        let (rel, extra) = match df.strip_prefix(&dir) {
            Ok(r) => (r.to_string_lossy().into_owned(), None),
            Err(_) => {
                let name = format!(
                    ".dockerfile.{:x}",
                    std::process::id() as u64 * 2654435761 % 0xffff_ffff
                );
                let data = std::fs::read(&df)
                    .map_err(|e| CliError::Msg(format!("{}: {e}", df.display())))?;
                (name, Some(data))
            }
        };
        q.push(format!("dockerfile={}", enc(&rel)));
        let mut tar = Vec::new();
        context_tar(
            &dir,
            &rel,
            extra.as_ref().map(|d| (rel.as_str(), d.as_slice())),
            &mut tar,
        )?;
        if !a.quiet {
            eprintln!(
                "Sending build context to berth daemon  {}",
                crate::format::human_size(tar.len() as f64)
            );
        }
        full(tar)
    };
    let mut headers = Vec::new();
    if !a.secrets.is_empty() {
        let mut m = serde_json::Map::new();
        for s in &a.secrets {
            let (id, data) = read_secret(s)?;
            m.insert(
                id,
                json!(base64::engine::general_purpose::STANDARD.encode(data)),
            );
        }
        headers.push((
            "X-Berth-Build-Secrets",
            base64::engine::general_purpose::STANDARD.encode(Value::Object(m).to_string()),
        ));
    }
    let path = format!("/build?{}", q.join("&"));
    let resp = c
        .request_with(
            Method::POST,
            &path,
            body,
            Some("application/x-tar"),
            &headers,
        )
        .await?;
    let mut body = resp.into_body();
    let mut lines = JsonLines::default();
    let mut id = String::new();
    let mut step_start: Option<Instant> = None;
    let mut out = std::io::stdout();
    let mut handle = |v: Value, out: &mut std::io::Stdout| -> Result<(), CliError> {
        if let Some(e) = v["errorDetail"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
        {
            if let Some(t) = step_start.take() {
                let _ = writeln!(out, " ---> failed after {:.2}s", t.elapsed().as_secs_f64());
            }
            return Err(CliError::Msg(e.to_string()));
        }
        if let Some(i) = v["aux"]["ID"].as_str() {
            id = i.to_string();
        }
        if let Some(s) = v["stream"].as_str() {
            if a.quiet {
                return Ok(());
            }
            let ends_step = s.starts_with("Step ") || s.starts_with("Successfully built");
            if ends_step {
                if let Some(t) = step_start.take() {
                    let _ = writeln!(out, " ---> took {:.2}s", t.elapsed().as_secs_f64());
                }
                if s.starts_with("Step ") {
                    step_start = Some(Instant::now());
                }
            }
            let _ = out.write_all(s.as_bytes());
            let _ = out.flush();
        }
        Ok(())
    };
    while let Some(chunk) = next_chunk(&mut body).await {
        for v in lines.push(&chunk?) {
            handle(v, &mut out)?;
        }
    }
    for v in lines.finish() {
        handle(v, &mut out)?;
    }
    if a.quiet {
        println!("{id}");
    }
    Ok(0)
}

/// `berth builder prune`.
pub async fn prune(c: &Client, _a: BuilderPruneArgs) -> CmdResult {
    let v = c.post_json("/build/prune", None).await?;
    let n = v["SpaceReclaimed"].as_u64().unwrap_or(0);
    println!(
        "Total reclaimed space: {}",
        crate::format::human_size(n as f64)
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        std::os::unix::fs::symlink("main.rs", r.join("src/link")).unwrap();
        let mut out = Vec::new();
        context_tar(
            r,
            "Dockerfile",
            Some((".dockerfile.x", b"FROM y")),
            &mut out,
        )
        .unwrap();
        let mut a = tar::Archive::new(out.as_slice());
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Dockerfile",
                "src/",
                "src/link",
                "src/main.rs",
                ".dockerfile.x"
            ]
        );
        assert_eq!(
            kv_json(&["A=1".into(), "B=x=y".into()], false).unwrap(),
            r#"{"A":"1","B":"x=y"}"#
        );
        let f = r.join("tok");
        std::fs::write(&f, "s").unwrap();
        assert_eq!(
            read_secret(&format!("id=t,src={}", f.display())).unwrap(),
            ("t".to_string(), b"s".to_vec())
        );
        assert!(read_secret("src=x").is_err());
    }
}
