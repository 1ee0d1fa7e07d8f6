//! `docker import`: a rootfs tar becomes a one-layer image; `--change` lines set its config.

use crate::config::{ContainerConfig, History, ImageConfig, ImageRecord, LayerBlob, RootFs};
use crate::layer::{decompressed, HashReader};
use crate::load::{media_type, now_rfc3339};
use crate::store::{commit_blob, spool, unique_name, write_blob, NewImage, TempDir};
use crate::{ImageError, ImageStore, Reference};
use serde_json::Value;
use std::fs;
use std::io::Read;

fn invalid(msg: impl Into<String>) -> ImageError {
    ImageError::InvalidArgument(msg.into())
}

/// Splits on whitespace, honouring '…' and "…" quotes and backslash escapes (quotes removed).
fn words(s: &str) -> Result<Vec<String>, ImageError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(invalid(format!("unmatched quote in {s:?}")));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// JSON array form, or shell form run with `/bin/sh -c`.
fn command(rest: &str) -> Vec<String> {
    if rest.trim_start().starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), rest.to_string()]
}

/// `k=v k2="v 2"` pairs, or the legacy `KEY value` form.
fn pairs(instr: &str, rest: &str) -> Result<Vec<(String, String)>, ImageError> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid(format!("{instr} requires at least one argument")))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words(rest)?
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| invalid(format!("{instr}: syntax error - can't find = in {w:?}. Must be of the form: name=value")))
        })
        .collect()
}

/// Applies Dockerfile-like `--change` lines to a container config.
pub(crate) fn apply_changes(
    cfg: &mut ContainerConfig,
    changes: &[String],
) -> Result<(), ImageError> {
    for line in changes {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (instr, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let upper = instr.to_ascii_uppercase();
        if rest.is_empty() {
            return Err(invalid(format!("{upper} requires at least one argument")));
        }
        match upper.as_str() {
            "CMD" => cfg.cmd = Some(command(rest)),
            "ENTRYPOINT" => cfg.entrypoint = Some(command(rest)),
            "SHELL" => {
                cfg.shell = Some(
                    serde_json::from_str(rest)
                        .map_err(|_| invalid("SHELL requires the arguments to be in JSON form"))?,
                )
            }
            "ENV" => {
                let env = cfg.env.get_or_insert_with(Vec::new);
                for (k, v) in pairs("ENV", rest)? {
                    env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
            }
            "LABEL" => {
                let labels = cfg.labels.get_or_insert_with(Default::default);
                for (k, v) in pairs("LABEL", rest)? {
                    labels.insert(k, v);
                }
            }
            "EXPOSE" => {
                let ports = cfg.exposed_ports.get_or_insert_with(Default::default);
                for p in words(rest)? {
                    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let ok = num.split_once('-').unwrap_or((num, num));
                    if ok.0.parse::<u16>().is_err()
                        || ok.1.parse::<u16>().is_err()
                        || !["tcp", "udp", "sctp"].contains(&proto)
                    {
                        return Err(invalid(format!("invalid containerPort: {p}")));
                    }
                    ports.insert(
                        format!("{num}/{}", proto.to_ascii_lowercase()),
                        Value::Object(Default::default()),
                    );
                }
            }
            "USER" => cfg.user = Some(rest.to_string()),
            "WORKDIR" => cfg.working_dir = Some(rest.to_string()),
            "STOPSIGNAL" => cfg.stop_signal = Some(rest.to_string()),
            "VOLUME" => {
                let vols = cfg.volumes.get_or_insert_with(Default::default);
                let list = if rest.starts_with('[') {
                    serde_json::from_str::<Vec<String>>(rest)
                        .map_err(|_| invalid(format!("VOLUME: invalid JSON {rest}")))?
                } else {
                    words(rest)?
                };
                for v in list {
                    vols.insert(v, Value::Object(Default::default()));
                }
            }
            "ONBUILD" => cfg
                .on_build
                .get_or_insert_with(Vec::new)
                .push(rest.to_string()),
            _ => return Err(invalid(format!("{instr} is not a valid change command"))),
        }
    }
    Ok(())
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl ImageStore {
    /// `docker import`: a rootfs tar (plain or gzip) becomes a one-layer image.
    pub fn import(
        &self,
        input: &mut dyn Read,
        changes: &[String],
        message: &str,
        tag: Option<&str>,
    ) -> Result<ImageRecord, ImageError> {
        let tag = match tag.filter(|t| !t.is_empty()) {
            Some(t) => {
                let r = Reference::parse(t)?;
                if r.digest().is_some() {
                    return Err(ImageError::InvalidReference(
                        "refusing to create a tag with a digest reference".into(),
                    ));
                }
                Some(r)
            }
            None => None,
        };
        let mut cc = ContainerConfig::default();
        apply_changes(&mut cc, changes)?;
        let _g = self.lock();
        let dir = TempDir(self.ingest_dir().join(unique_name("import")));
        fs::create_dir(&dir.0)?;
        let (path, blob_digest, blob_size) = spool(self, &dir.0, input)?;
        // The diff ID names the snapshot, so hash the layer before unpacking it.
        let (diff_id, _) = HashReader::new(decompressed(Box::new(fs::File::open(&path)?))?)
            .finish()
            .map_err(|e| ImageError::InvalidArchive(format!("reading import input: {e}")))?;
        let mut staging = self.staging()?;
        let what = "import".to_string();
        let sizes = staging.ensure_chain(std::slice::from_ref(&diff_id), |_| {
            Ok((
                Box::new(fs::File::open(&path)?) as Box<dyn Read>,
                what.clone(),
            ))
        })?;
        let now = now_rfc3339();
        let comment = if message.is_empty() {
            "Imported from -".to_string()
        } else {
            message.to_string()
        };
        let config = ImageConfig {
            architecture: host_arch().into(),
            os: "linux".into(),
            created: Some(now.clone()),
            author: None,
            config: Some(cc),
            rootfs: RootFs {
                type_: "layers".into(),
                diff_ids: vec![diff_id.clone()],
            },
            history: vec![History {
                created: Some(now.clone()),
                comment: Some(comment),
                ..Default::default()
            }],
            extra: Default::default(),
        };
        let bytes = serde_json::to_vec(&config).map_err(|e| ImageError::Db(e.to_string()))?;
        let media_type = media_type(&path)?.to_string();
        commit_blob(self, &path, &blob_digest)?;
        let id = write_blob(self, &bytes)?;
        let record = ImageRecord {
            id,
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            config,
            chain_ids: vec![diff_id.clone()],
            layers: vec![diff_id],
            size: sizes.iter().sum(),
            created: now,
            parent: String::new(),
            layer_blobs: vec![LayerBlob {
                digest: blob_digest,
                size: blob_size,
                media_type,
            }],
            layer_sizes: sizes,
            manifests: Vec::new(),
        };
        let (mut recs, _) = staging.commit(vec![NewImage {
            record,
            tags: tag.into_iter().collect(),
        }])?;
        recs.pop()
            .ok_or_else(|| ImageError::Db("import produced no image".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes() {
        let mut c = ContainerConfig::default();
        let lines: Vec<String> = [
            "CMD echo hi",
            "ENTRYPOINT [\"/bin/app\", \"--x\"]",
            "ENV A=1 B=\"two words\"",
            "ENV C 3 4",
            "ENV A=override",
            "LABEL k=v \"with space\"=yes",
            "EXPOSE 80 53/udp",
            "USER nobody",
            "WORKDIR /srv",
            "VOLUME /data /cache",
            "STOPSIGNAL SIGINT",
            "shell [\"/bin/bash\", \"-c\"]",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        apply_changes(&mut c, &lines).unwrap();
        assert_eq!(c.cmd.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint.unwrap(), ["/bin/app", "--x"]);
        assert_eq!(c.env.unwrap(), ["B=two words", "C=3 4", "A=override"]);
        let l = c.labels.unwrap();
        assert_eq!(l["k"], "v");
        assert_eq!(l["with space"], "yes");
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("80/tcp"));
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("53/udp"));
        assert_eq!(c.user.as_deref(), Some("nobody"));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.volumes.unwrap().len(), 2);
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(c.shell.unwrap(), ["/bin/bash", "-c"]);
        for bad in ["FROM x", "RUN ls", "EXPOSE abc", "CMD", "ENV A=\"x"] {
            let e = apply_changes(&mut ContainerConfig::default(), &[bad.to_string()]).unwrap_err();
            assert!(matches!(e, ImageError::InvalidArgument(_)), "{bad}: {e}");
        }
    }
}
