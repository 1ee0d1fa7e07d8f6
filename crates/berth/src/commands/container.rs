//! Container commands other than run/create: ps, logs, stop, restart, kill, rm, start, wait,
//! rename and prune.

use super::run::{demux_push, spawn_resize, start_wait, stream_attached};
use super::{for_each, seg, write_out};
use crate::cli::{
    ContainersArgs, KillArgs, LogsArgs, PruneArgs, PsArgs, RenameArgs, RmArgs, StartArgs, StopArgs,
};
use crate::client::{empty, next_chunk, Client};
use crate::format::{self, Format};
use crate::opts;
use crate::term;
use crate::{CliError, CmdResult};
use berth_api::stream::FrameDecoder;
use hyper::Method;
use serde_json::{json, Value};

const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

fn usage_err(e: impl std::fmt::Display) -> CliError {
    CliError::Status(125, e.to_string())
}

/// The header titles of docker's container formatter.
pub fn ps_header() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
        "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
        "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM",
    })
}

/// docker's `CreatedAt`: Go's `time.Time.String()` in local time.
pub fn created_at(ts: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(ts, 0) {
        chrono::LocalResult::Single(t) => {
            let off = t.format("%z").to_string();
            let zone = if off == "+0000" {
                "UTC".to_string()
            } else {
                off.clone()
            };
            format!("{} {off} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
        }
        _ => ts.to_string(),
    }
}

/// docker's `DisplayablePorts` (simplified: one entry per binding, no range merging).
pub fn display_ports(ports: &Value) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in ports.as_array().into_iter().flatten() {
        let private = p["PrivatePort"].as_u64().unwrap_or(0);
        let typ = p["Type"].as_str().unwrap_or("tcp");
        let s = match (p["IP"].as_str(), p["PublicPort"].as_u64()) {
            (Some(ip), Some(public)) if public != 0 => {
                let ip = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip.to_string()
                };
                format!("{ip}:{public}->{private}/{typ}")
            }
            _ => format!("{private}/{typ}"),
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(", ")
}

/// One row of docker's container formatter context, from a `/containers/json` item.
pub fn ps_row(c: &Value, trunc: bool, now: i64) -> Value {
    let id = c["Id"].as_str().unwrap_or_default();
    let image = c["Image"].as_str().unwrap_or_default();
    let image_id = c["ImageID"].as_str().unwrap_or_default();
    let image = if image.is_empty() {
        "<no image>".to_string()
    } else if trunc
        && (image.starts_with("sha256:")
            || format::truncate_id(image_id) == format::truncate_id(image))
    {
        format::truncate_id(image)
    } else if trunc {
        image.split('@').next().unwrap_or(image).to_string()
    } else {
        image.to_string()
    };
    let command = c["Command"].as_str().unwrap_or_default();
    let command = format::go_quote(&if trunc {
        format::ellipsis(command, 20)
    } else {
        command.to_string()
    });
    let created = c["Created"].as_i64().unwrap_or(0);
    let mut names: Vec<String> = c["Names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|n| n.strip_prefix('/').unwrap_or(n).to_string())
        .collect();
    if trunc {
        if let Some(n) = names.iter().find(|n| !n.contains('/')) {
            names = vec![n.clone()];
        }
    }
    let labels_map = c["Labels"].as_object().cloned().unwrap_or_default();
    let mut labels: Vec<String> = labels_map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    labels.sort();
    let size = match (c["SizeRw"].as_i64(), c["SizeRootFs"].as_i64()) {
        (Some(rw), Some(root)) => format!(
            "{} (virtual {})",
            format::human_size(rw as f64),
            format::human_size(root as f64)
        ),
        (Some(rw), None) => format::human_size(rw as f64),
        _ => "0B".into(),
    };
    let mounts: Vec<String> = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let name = m["Name"].as_str().unwrap_or_default();
            if !name.is_empty() {
                if trunc {
                    format::ellipsis(name, 15)
                } else {
                    name.to_string()
                }
            } else {
                m["Source"].as_str().unwrap_or_default().to_string()
            }
        })
        .collect();
    let mut networks: Vec<String> = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    json!({
        "ID": if trunc { format::truncate_id(id) } else { id.to_string() },
        "Image": image,
        "Command": command,
        "CreatedAt": created_at(created),
        "RunningFor": format!("{} ago", format::human_duration(now - created)),
        "Ports": display_ports(&c["Ports"]),
        "State": c["State"].as_str().unwrap_or_default(),
        "Status": c["Status"].as_str().unwrap_or_default(),
        "Size": size,
        "Names": names.join(","),
        "Labels": labels.join(","),
        "LabelsMap": Value::Object(labels_map),
        "Mounts": mounts.join(","),
        "Networks": networks.join(","),
        "LocalVolumes": c["Mounts"].as_array().map(|m| m.iter().filter(|x| x["Driver"] == "local").count()).unwrap_or(0).to_string(),
    })
}

/// Resolves `--format` for ps/images: `json`, a template, or the table default.
pub fn resolve_format(
    format: Option<&str>,
    quiet: bool,
    quiet_tpl: &str,
    default: &str,
) -> Result<(Format, bool), CliError> {
    let (src, json) = match format {
        _ if quiet => (quiet_tpl.to_string(), false),
        Some("json") => ("{{json .}}".to_string(), true),
        Some("table") | None => (default.to_string(), false),
        Some(f) => (f.to_string(), false),
    };
    Ok((Format::parse(&src).map_err(usage_err)?, json))
}

/// Renders the ps output for a `/containers/json` response.
pub fn render_ps(
    list: &Value,
    format: Option<&str>,
    quiet: bool,
    size: bool,
    trunc: bool,
    now: i64,
) -> Result<String, CliError> {
    let default = if size {
        format!("{PS_TABLE}\t{{{{.Size}}}}")
    } else {
        PS_TABLE.to_string()
    };
    let (fmt, json) = resolve_format(format, quiet, "{{.ID}}", &default)?;
    let rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut r = ps_row(c, trunc, now);
            if json {
                if let Some(o) = r.as_object_mut() {
                    o.remove("LabelsMap");
                }
            }
            r
        })
        .collect();
    fmt.render(&rows, &ps_header())
        .map_err(|e| CliError::Msg(e.to_string()))
}

/// `berth ps`.
pub async fn ps(c: &Client, a: PsArgs) -> CmdResult {
    let mut q = Vec::new();
    let limit = if a.latest { 1 } else { a.last };
    if a.all || limit > 0 {
        q.push(("all", "1".to_string()));
    }
    if limit > 0 {
        q.push(("limit", limit.to_string()));
    }
    let wants_size = a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size"));
    if wants_size {
        q.push(("size", "1".into()));
    }
    if let Some(f) = opts::encode_filters(&a.filter).map_err(usage_err)? {
        q.push(("filters", f));
    }
    let list = c
        .get_json(&format!("/containers/json{}", opts::query(&q)))
        .await?;
    let now = chrono::Utc::now().timestamp();
    let out = render_ps(
        &list,
        a.format.as_deref(),
        a.quiet,
        a.size,
        !a.no_trunc,
        now,
    )?;
    write_out(out.as_bytes());
    Ok(0)
}

/// docker's `GetTimestamp` for --since/--until: a duration before now, RFC 3339, or seconds.
pub fn parse_timestamp(v: &str, now: i64) -> String {
    if let Some(d) = parse_go_duration(v) {
        return (now - d).to_string();
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S") {
        return t.and_utc().timestamp().to_string();
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp().to_string())
            .unwrap_or_default();
    }
    v.to_string()
}

/// Go's `time.ParseDuration` for whole seconds: `1h30m`, `42m`, `10s`.
fn parse_go_duration(v: &str) -> Option<i64> {
    if v.is_empty() || v.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
    }
    if !num.is_empty() {
        return None;
    }
    Some(total as i64)
}

/// `berth logs`.
pub async fn logs(c: &Client, a: LogsArgs) -> CmdResult {
    let info = c
        .get_json(&format!("/containers/{}/json", seg(&a.container)))
        .await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let now = chrono::Utc::now().timestamp();
    let mut q = vec![("stdout", "1".to_string()), ("stderr", "1".to_string())];
    if a.follow {
        q.push(("follow", "1".into()));
    }
    if a.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if a.details {
        q.push(("details", "1".into()));
    }
    q.push(("tail", a.tail.clone()));
    if let Some(s) = &a.since {
        q.push(("since", parse_timestamp(s, now)));
    }
    if let Some(u) = &a.until {
        q.push(("until", parse_timestamp(u, now)));
    }
    let resp = c
        .request(
            Method::GET,
            &format!("/containers/{}/logs{}", seg(&a.container), opts::query(&q)),
            empty(),
            None,
        )
        .await?;
    let mut body = resp.into_body();
    let mut dec = FrameDecoder::new();
    while let Some(chunk) = next_chunk(&mut body).await {
        let chunk = chunk?;
        if tty {
            write_out(&chunk);
        } else {
            demux_push(&mut dec, &chunk).map_err(|e| CliError::Msg(e.to_string()))?;
        }
    }
    Ok(0)
}

/// `berth stop` and `berth restart`.
pub async fn stop(c: &Client, a: StopArgs, restart: bool) -> CmdResult {
    let mut q = Vec::new();
    if let Some(t) = a.timeout {
        q.push(("t", t.to_string()));
    }
    if let Some(s) = &a.signal {
        q.push(("signal", s.clone()));
    }
    let qs = opts::query(&q);
    let op = if restart { "restart" } else { "stop" };
    for_each(&a.containers, |n| {
        let path = format!("/containers/{}/{op}{qs}", seg(&n));
        async move {
            c.post(&path, None).await?;
            Ok(Some(n))
        }
    })
    .await
}

/// `berth kill`.
pub async fn kill(c: &Client, a: KillArgs) -> CmdResult {
    let qs = a
        .signal
        .as_ref()
        .map(|s| opts::query(&[("signal", s.clone())]))
        .unwrap_or_default();
    for_each(&a.containers, |n| {
        let path = format!("/containers/{}/kill{qs}", seg(&n));
        async move {
            c.post(&path, None).await?;
            Ok(Some(n))
        }
    })
    .await
}

/// `berth rm`.
pub async fn rm(c: &Client, a: RmArgs) -> CmdResult {
    let mut q = Vec::new();
    if a.force {
        q.push(("force", "1".to_string()));
    }
    if a.volumes {
        q.push(("v", "1".to_string()));
    }
    if a.link {
        q.push(("link", "1".to_string()));
    }
    let qs = opts::query(&q);
    for_each(&a.containers, |n| {
        let path = format!("/containers/{}{qs}", seg(&n));
        async move {
            c.delete(&path).await?;
            Ok(Some(n))
        }
    })
    .await
}

/// `berth start`; with `-a` attaches to one container and exits with its status.
pub async fn start(c: &Client, a: StartArgs) -> CmdResult {
    if !(a.attach || a.interactive) {
        return for_each(&a.containers, |n| {
            let path = format!("/containers/{}/start", seg(&n));
            async move {
                c.post(&path, None).await?;
                Ok(Some(n))
            }
        })
        .await;
    }
    if a.containers.len() > 1 {
        return Err(CliError::Msg(
            "you cannot start and attach multiple containers at once".into(),
        ));
    }
    let name = &a.containers[0];
    let info = c
        .get_json(&format!("/containers/{}/json", seg(name)))
        .await?;
    let id = info["Id"].as_str().unwrap_or(name).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = a.interactive && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let mut q = vec![
        ("stream", "1".to_string()),
        ("stdout", "1".into()),
        ("stderr", "1".into()),
    ];
    if stdin {
        q.push(("stdin", "1".into()));
    }
    let conn = c
        .hijack(&format!("/containers/{id}/attach{}", opts::query(&q)))
        .await?;
    let auto_remove = info["HostConfig"]["AutoRemove"].as_bool().unwrap_or(false);
    let cond = if auto_remove { "removed" } else { "next-exit" };
    let waiter = start_wait(c, &id, cond).await?;
    c.post(&format!("/containers/{id}/start"), None).await?;
    let raw = if tty && stdin {
        term::RawGuard::enable()
    } else {
        None
    };
    if tty && term::is_tty(libc::STDOUT_FILENO) {
        spawn_resize(c.clone(), id.clone(), false);
    }
    stream_attached(conn, tty, stdin).await;
    let status = waiter.await.unwrap_or(Ok(1));
    drop(raw);
    status
}

/// `berth wait`.
pub async fn wait(c: &Client, a: ContainersArgs) -> CmdResult {
    for_each(&a.containers, |n| {
        let path = format!("/containers/{}/wait", seg(&n));
        async move {
            let resp = c.request(Method::POST, &path, empty(), None).await?;
            let body = crate::client::read_all(resp.into_body()).await?;
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(m) = v["Error"]["Message"].as_str().filter(|m| !m.is_empty()) {
                return Err(CliError::Msg(m.to_string()));
            }
            Ok(Some(v["StatusCode"].as_i64().unwrap_or(0).to_string()))
        }
    })
    .await
}

/// `berth rename`.
pub async fn rename(c: &Client, a: RenameArgs) -> CmdResult {
    let new = a.new_name.trim();
    if new.is_empty() || a.container.trim().is_empty() {
        return Err(CliError::Msg(
            "Error: neither old nor new names may be empty".into(),
        ));
    }
    c.post(
        &format!(
            "/containers/{}/rename{}",
            seg(&a.container),
            opts::query(&[("name", new.to_string())])
        ),
        None,
    )
    .await?;
    Ok(0)
}

/// Asks docker's confirmation question on stdin; true on "y"/"yes".
pub fn confirm(warning: &str) -> bool {
    super::write_out(format!("{warning}\nAre you sure you want to continue? [y/N] ").as_bytes());
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

/// `berth container prune`.
pub async fn prune(c: &Client, a: PruneArgs) -> CmdResult {
    if !a.force && !confirm("WARNING! This will remove all stopped containers.") {
        return Ok(0);
    }
    let mut q = Vec::new();
    if let Some(f) = opts::encode_filters(&a.filter).map_err(usage_err)? {
        q.push(("filters", f));
    }
    let r = c
        .post_json(&format!("/containers/prune{}", opts::query(&q)), None)
        .await?;
    let deleted: Vec<&str> = r["ContainersDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let space = r["SpaceReclaimed"].as_u64().unwrap_or(0);
    let out = format::prune_report("Deleted Containers", &deleted, space);
    write_out(out.as_bytes());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(now: i64) -> Value {
        json!([
            {
                "Id": "8dfafdbc3a40a3e1c9d3cbb4f6fd0a3a6a1c8a2bd1f7a1c5e8a3a2b1c0d9e8f7",
                "Names": ["/web"],
                "Image": "nginx:latest",
                "ImageID": "sha256:aaaaaaaaaaaabbbb",
                "Command": "nginx -g 'daemon off;'",
                "Created": now - 150,
                "State": "running",
                "Status": "Up 2 minutes",
                "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
                "Labels": {"b": "2", "a": "1"},
                "NetworkSettings": {"Networks": {"bridge": {}}},
                "Mounts": []
            },
            {
                "Id": "1234567890abcdef",
                "Names": ["/db"],
                "Image": "sha256:ffffffffffffffffffff",
                "ImageID": "sha256:ffffffffffffffffffff",
                "Command": "echo hi",
                "Created": now - 3 * 3600,
                "State": "exited",
                "Status": "Exited (0) 2 hours ago",
                "Ports": [],
                "Labels": {},
                "NetworkSettings": {"Networks": {}},
                "Mounts": []
            }
        ])
    }

    #[test]
    fn ps_table_like_docker() {
        let now = 1_700_000_000;
        let out = render_ps(&sample(now), None, false, false, true, now).unwrap();
        let want = "\
CONTAINER ID   IMAGE          COMMAND                  CREATED         STATUS                   PORTS                  NAMES
8dfafdbc3a40   nginx:latest   \"nginx -g 'daemon of…\"   2 minutes ago   Up 2 minutes             0.0.0.0:8080->80/tcp   web
1234567890ab   ffffffffffff   \"echo hi\"                3 hours ago     Exited (0) 2 hours ago                          db
";
        assert_eq!(out, want);
    }

    #[test]
    fn ps_empty_and_quiet_and_formats() {
        let now = 1_700_000_000;
        assert_eq!(
            render_ps(&json!([]), None, false, false, true, now).unwrap(),
            "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
        );
        assert_eq!(
            render_ps(&sample(now), None, true, false, true, now).unwrap(),
            "8dfafdbc3a40\n1234567890ab\n"
        );
        assert_eq!(
            render_ps(
                &sample(now),
                Some("{{.Names}} {{.State}} {{.Label \"a\"}} {{.Labels}}"),
                false,
                false,
                true,
                now
            )
            .unwrap(),
            "web running 1 a=1,b=2\ndb exited  \n"
        );
        assert_eq!(
            render_ps(
                &sample(now),
                Some("table {{.Names}}\t{{.Networks}}"),
                false,
                false,
                true,
                now
            )
            .unwrap(),
            "NAMES     NETWORKS\nweb       bridge\ndb        \n"
        );
        let j = render_ps(&sample(now), Some("json"), false, false, true, now).unwrap();
        let first: Value = serde_json::from_str(j.lines().next().unwrap()).unwrap();
        assert_eq!(first["Names"], "web");
        assert!(first.get("LabelsMap").is_none());
        let full = render_ps(
            &sample(now),
            Some("{{.ID}} {{.Command}}"),
            false,
            false,
            false,
            now,
        )
        .unwrap();
        assert!(full.starts_with("8dfafdbc3a40a3e1c9d3cbb4f6fd0a3a6a1c8a2bd1f7a1c5e8a3a2b1c0d9e8f7 \"nginx -g 'daemon off;'\"\n"));
    }

    #[test]
    fn timestamps_and_durations() {
        assert_eq!(
            parse_timestamp("42m", 10_000),
            (10_000 - 42 * 60).to_string()
        );
        assert_eq!(
            parse_timestamp("1h30m", 10_000),
            (10_000 - 5400).to_string()
        );
        assert_eq!(parse_timestamp("1700000000", 0), "1700000000");
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z", 0),
            "1700000000.000000000"
        );
    }

    #[test]
    fn ports() {
        let p = json!([
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"PrivatePort": 53, "Type": "udp"}
        ]);
        assert_eq!(
            display_ports(&p),
            "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 53/udp"
        );
    }
}
