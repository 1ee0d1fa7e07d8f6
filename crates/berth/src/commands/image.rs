//! Image commands: images, rmi, tag, load, save, import and prune.

use super::container::{confirm, created_at, resolve_format};
use super::{for_each, seg, write_out};
use crate::cli::{ImagesArgs, ImportArgs, LoadArgs, PruneArgs, RmiArgs, SaveArgs, TagArgs};
use crate::client::{empty, next_chunk, stream_reader, Body, Client};
use crate::format;
use crate::opts;
use crate::term;
use crate::{CliError, CmdResult};
use hyper::Method;
use serde_json::{json, Value};
use std::io::Write;

const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const IMAGES_TABLE_DIGESTS: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// The header titles of docker's image formatter.
fn images_header() -> Value {
    json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
        "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
    })
}

/// The rows docker's image formatter makes of one `/images/json` item: one per tag, else one
/// per digest, else one `<none>` row.
pub fn image_rows(img: &Value, trunc: bool, now: i64) -> Vec<Value> {
    let id = img["Id"].as_str().unwrap_or_default();
    let id = if trunc {
        format::truncate_id(id)
    } else {
        id.to_string()
    };
    let created = img["Created"].as_i64().unwrap_or(0);
    let since = if created == 0 {
        "N/A".to_string()
    } else {
        format!("{} ago", format::human_duration(now - created))
    };
    let size = format::human_size(img["Size"].as_i64().unwrap_or(0) as f64);
    let tags: Vec<&str> = img["RepoTags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|t| *t != "<none>:<none>")
        .collect();
    let digests: Vec<&str> = img["RepoDigests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|d| *d != "<none>@<none>")
        .collect();
    let row = |repo: &str, tag: &str, digest: &str| {
        json!({
            "ID": id, "Repository": repo, "Tag": tag, "Digest": digest,
            "CreatedSince": since, "CreatedAt": created_at(created), "Size": size, "VirtualSize": size,
            "Containers": match img["Containers"].as_i64() { Some(n) if n >= 0 => n.to_string(), _ => "N/A".into() },
            "SharedSize": "N/A", "UniqueSize": "N/A",
        })
    };
    let digest_for = |repo: &str| {
        digests
            .iter()
            .find_map(|d| {
                d.split_once('@')
                    .filter(|(r, _)| *r == repo)
                    .map(|(_, dg)| dg.to_string())
            })
            .unwrap_or_else(|| "<none>".into())
    };
    if !tags.is_empty() {
        return tags
            .iter()
            .map(|t| {
                let (repo, tag) = opts::split_repo_tag(t);
                row(
                    &repo,
                    if tag.is_empty() { "<none>" } else { &tag },
                    &digest_for(&repo),
                )
            })
            .collect();
    }
    if !digests.is_empty() {
        return digests
            .iter()
            .map(|d| {
                let (repo, dg) = d.split_once('@').unwrap_or((d, "<none>"));
                row(repo, "<none>", dg)
            })
            .collect();
    }
    vec![row("<none>", "<none>", "<none>")]
}

/// Renders the images output for a `/images/json` response.
pub fn render_images(
    list: &Value,
    format: Option<&str>,
    quiet: bool,
    digests: bool,
    trunc: bool,
    now: i64,
) -> Result<String, CliError> {
    let default = if digests {
        IMAGES_TABLE_DIGESTS
    } else {
        IMAGES_TABLE
    };
    let (fmt, _) = resolve_format(format, quiet, "{{.ID}}", default)?;
    let rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| image_rows(i, trunc, now))
        .collect();
    fmt.render(&rows, &images_header())
        .map_err(|e| CliError::Msg(e.to_string()))
}

/// `berth images`.
pub async fn images(c: &Client, a: ImagesArgs) -> CmdResult {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.reference {
        filters.push(format!("reference={r}"));
    }
    let mut q = Vec::new();
    if a.all {
        q.push(("all", "1".to_string()));
    }
    if let Some(f) = opts::encode_filters(&filters).map_err(|e| CliError::Status(125, e))? {
        q.push(("filters", f));
    }
    let list = c
        .get_json(&format!("/images/json{}", opts::query(&q)))
        .await?;
    let now = chrono::Utc::now().timestamp();
    let out = render_images(
        &list,
        a.format.as_deref(),
        a.quiet,
        a.digests,
        !a.no_trunc,
        now,
    )?;
    write_out(out.as_bytes());
    Ok(0)
}

/// The lines `rmi` prints for a `DELETE /images/{name}` response.
pub fn rmi_lines(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for item in v.as_array().into_iter().flatten() {
        if let Some(u) = item["Untagged"].as_str().filter(|s| !s.is_empty()) {
            out.push(format!("Untagged: {u}"));
        }
        if let Some(d) = item["Deleted"].as_str().filter(|s| !s.is_empty()) {
            out.push(format!("Deleted: {d}"));
        }
    }
    out
}

/// `berth rmi`.
pub async fn rmi(c: &Client, a: RmiArgs) -> CmdResult {
    let mut q = Vec::new();
    if a.force {
        q.push(("force", "1".to_string()));
    }
    if a.no_prune {
        q.push(("noprune", "1".to_string()));
    }
    let qs = opts::query(&q);
    for_each(&a.images, |n| {
        let path = format!("/images/{}{qs}", seg(&n));
        async move {
            let body = c.delete(&path).await?;
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let lines = rmi_lines(&v);
            Ok(if lines.is_empty() {
                None
            } else {
                Some(lines.join("\n"))
            })
        }
    })
    .await
}

/// `berth tag`.
pub async fn tag(c: &Client, a: TagArgs) -> CmdResult {
    let (repo, tag) = opts::split_repo_tag(&a.target);
    let mut q = vec![("repo", repo)];
    if !tag.is_empty() {
        q.push(("tag", tag));
    }
    c.post(
        &format!("/images/{}/tag{}", seg(&a.source), opts::query(&q)),
        None,
    )
    .await?;
    Ok(0)
}

/// Prints a JSON-message stream as docker's jsonmessage display does (without progress bars);
/// fails on an `error` message.
/// Shows a load or import message stream (docker's JSON message display).
async fn print_messages(body: hyper::body::Incoming) -> CmdResult {
    crate::progress::display(body, false).await?;
    Ok(0)
}

async fn file_body(path: &str) -> Result<Body, CliError> {
    let f = tokio::fs::File::open(path)
        .await
        .map_err(|e| CliError::Msg(format!("open {path}: {}", io_text(&e))))?;
    Ok(stream_reader(f))
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `berth load`.
pub async fn load(c: &Client, a: LoadArgs) -> CmdResult {
    let body = match &a.input {
        Some(p) => file_body(p).await?,
        None => {
            if term::is_tty(libc::STDIN_FILENO) {
                return Err(CliError::Msg(
                    "requested load from stdin, but stdin is empty".into(),
                ));
            }
            stream_reader(tokio::io::stdin())
        }
    };
    let q = if a.quiet { "?quiet=1" } else { "?quiet=0" };
    let resp = c
        .request(
            Method::POST,
            &format!("/images/load{q}"),
            body,
            Some("application/x-tar"),
        )
        .await?;
    print_messages(resp.into_body()).await
}

/// `berth save`.
pub async fn save(c: &Client, a: SaveArgs) -> CmdResult {
    if a.output.is_none() && term::is_tty(libc::STDOUT_FILENO) {
        return Err(CliError::Msg(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
        ));
    }
    let q: Vec<(&str, String)> = a.images.iter().map(|i| ("names", i.clone())).collect();
    let resp = c
        .request(
            Method::GET,
            &format!("/images/get{}", opts::query(&q)),
            empty(),
            None,
        )
        .await?;
    let mut body = resp.into_body();
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::fs::File::create(p).map_err(|e| {
            CliError::Msg(format!(
                "failed to save image: invalid output path: {}",
                io_text(&e)
            ))
        })?),
        None => Box::new(std::io::stdout().lock()),
    };
    while let Some(chunk) = next_chunk(&mut body).await {
        out.write_all(&chunk?)
            .map_err(|e| CliError::Msg(e.to_string()))?;
    }
    out.flush().map_err(|e| CliError::Msg(e.to_string()))?;
    Ok(0)
}

/// `berth import`.
pub async fn import(c: &Client, a: ImportArgs) -> CmdResult {
    let mut q = Vec::new();
    let body = if a.file == "-" {
        q.push(("fromSrc", "-".to_string()));
        stream_reader(tokio::io::stdin())
    } else if a.file.starts_with("http://") || a.file.starts_with("https://") {
        q.push(("fromSrc", a.file.clone()));
        empty()
    } else {
        q.push(("fromSrc", "-".to_string()));
        file_body(&a.file).await?
    };
    if let Some(r) = &a.reference {
        let (repo, tag) = opts::split_repo_tag(r);
        q.push(("repo", repo));
        if !tag.is_empty() {
            q.push(("tag", tag));
        }
    }
    if let Some(m) = &a.message {
        q.push(("message", m.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.to_lowercase()));
    }
    for ch in &a.change {
        q.push(("changes", ch.clone()));
    }
    let resp = c
        .request(
            Method::POST,
            &format!("/images/create{}", opts::query(&q)),
            body,
            Some("application/x-tar"),
        )
        .await?;
    print_messages(resp.into_body()).await
}

/// The text `image prune` prints for a prune report.
pub fn prune_report(r: &Value) -> String {
    let mut out = String::new();
    let deleted = r["ImagesDeleted"].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        out.push_str("Deleted Images:\n");
        for d in &deleted {
            if let Some(u) = d["Untagged"].as_str().filter(|s| !s.is_empty()) {
                out.push_str(&format!("untagged: {u}\n"));
            } else if let Some(x) = d["Deleted"].as_str() {
                out.push_str(&format!("deleted: {x}\n"));
            }
        }
        out.push('\n');
    }
    let space = r["SpaceReclaimed"].as_u64().unwrap_or(0);
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        format::human_size_prec(space as f64, 4)
    ));
    out
}

/// `berth image prune`.
pub async fn prune(c: &Client, a: PruneArgs) -> CmdResult {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !confirm(warning) {
        return Ok(0);
    }
    let mut filters = a.filter.clone();
    filters.push(format!("dangling={}", !a.all));
    let f = opts::encode_filters(&filters)
        .map_err(|e| CliError::Status(125, e))?
        .unwrap_or_default();
    let r = c
        .post_json(
            &format!("/images/prune{}", opts::query(&[("filters", f)])),
            None,
        )
        .await?;
    write_out(prune_report(&r).as_bytes());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_table_like_docker() {
        let now = 1_700_000_000;
        let list = json!([
            {"Id": "sha256:4a8b6f2c1d3e5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8", "RepoTags": ["busybox:latest", "busybox:1"], "RepoDigests": [], "Created": now - 7200, "Size": 4_261_234},
            {"Id": "sha256:0000111122223333444455556666777788889999aaaabbbbccccddddeeeeffff", "RepoTags": [], "RepoDigests": [], "Created": now - 90, "Size": 1_200_000},
        ]);
        let out = render_images(&list, None, false, false, true, now).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "REPOSITORY   TAG       IMAGE ID       CREATED              SIZE"
        );
        assert_eq!(
            lines[1],
            "busybox      latest    4a8b6f2c1d3e   2 hours ago          4.26MB"
        );
        assert_eq!(
            lines[3],
            "<none>       <none>    000011112222   About a minute ago   1.2MB"
        );
        assert_eq!(
            render_images(&list, None, true, false, true, now).unwrap(),
            "4a8b6f2c1d3e\n4a8b6f2c1d3e\n000011112222\n"
        );
        let f = render_images(
            &list,
            Some("{{.Repository}}:{{.Tag}} {{.ID}}"),
            false,
            false,
            false,
            now,
        )
        .unwrap();
        assert!(f.starts_with("busybox:latest sha256:4a8b6f2c1d3e"));
    }

    #[test]
    fn rmi_and_prune_output() {
        let v = json!([{"Untagged": "busybox:latest"}, {"Deleted": "sha256:abc"}]);
        assert_eq!(
            rmi_lines(&v),
            vec!["Untagged: busybox:latest", "Deleted: sha256:abc"]
        );
        let r = json!({"ImagesDeleted": [{"Untagged": "x:1"}, {"Deleted": "sha256:abc"}], "SpaceReclaimed": 4_261_234});
        assert_eq!(prune_report(&r), "Deleted Images:\nuntagged: x:1\ndeleted: sha256:abc\n\nTotal reclaimed space: 4.261MB\n");
        assert_eq!(
            prune_report(&json!({"ImagesDeleted": null, "SpaceReclaimed": 0})),
            "Total reclaimed space: 0B\n"
        );
    }
}
