//! System commands: version, info, and the generic inspect.

use super::{seg, write_out};
use crate::cli::{InfoArgs, VersionArgs};
use crate::client::Client;
use crate::format::{self, Template};
use crate::{CliError, CmdResult};
use serde_json::{json, Value};

fn template(f: &str) -> Result<Template, CliError> {
    Template::parse(f).map_err(|e| CliError::Status(125, e.to_string()))
}

fn exec(t: &Template, v: &Value) -> Result<String, CliError> {
    t.execute(v).map_err(|e| CliError::Msg(e.to_string()))
}

fn client_version() -> Value {
    json!({
        "Platform": {"Name": ""},
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": berth_api::API_VERSION,
        "DefaultAPIVersion": berth_api::API_VERSION,
        "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown"),
        "GoVersion": "",
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "BuildTime": "",
        "Context": "default",
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

/// The text of `version`, laid out like docker's (tabwriter with minwidth 20, padding 1).
pub fn render_version(client: &Value, server: Option<&Value>) -> String {
    let mut t = String::new();
    t.push_str("Client:\n");
    t.push_str(&format!(" Version:\t{}\n", s(client, "Version")));
    t.push_str(&format!(" API version:\t{}\n", s(client, "ApiVersion")));
    t.push_str(&format!(" Git commit:\t{}\n", s(client, "GitCommit")));
    t.push_str(&format!(
        " OS/Arch:\t{}/{}\n",
        s(client, "Os"),
        s(client, "Arch")
    ));
    t.push_str(&format!(" Context:\t{}\n", s(client, "Context")));
    if let Some(sv) = server {
        t.push('\n');
        let name = sv["Platform"]["Name"].as_str().unwrap_or_default();
        t.push_str(&format!(
            "Server:{}\n",
            if name.is_empty() {
                String::new()
            } else {
                format!(" {name}")
            }
        ));
        let comps = sv["Components"].as_array().cloned().unwrap_or_default();
        if comps.is_empty() {
            t.push_str(" Engine:\n");
            t.push_str(&format!("  Version:\t{}\n", s(sv, "Version")));
            t.push_str(&format!(
                "  API version:\t{} (minimum version {})\n",
                s(sv, "ApiVersion"),
                s(sv, "MinAPIVersion")
            ));
            t.push_str(&format!("  Git commit:\t{}\n", s(sv, "GitCommit")));
            t.push_str(&format!("  Built:\t{}\n", s(sv, "BuildTime")));
            t.push_str(&format!("  OS/Arch:\t{}/{}\n", s(sv, "Os"), s(sv, "Arch")));
            t.push_str(&format!(
                "  Experimental:\t{}\n",
                sv["Experimental"].as_bool().unwrap_or(false)
            ));
        }
        for c in comps {
            let cname = s(&c, "Name");
            t.push_str(&format!(" {cname}:\n"));
            t.push_str(&format!("  Version:\t{}\n", s(&c, "Version")));
            let d = &c["Details"];
            if cname == "Engine" {
                t.push_str(&format!(
                    "  API version:\t{} (minimum version {})\n",
                    s(d, "ApiVersion"),
                    s(d, "MinAPIVersion")
                ));
                for (k, label) in [
                    ("GoVersion", "Go version"),
                    ("GitCommit", "Git commit"),
                    ("BuildTime", "Built"),
                ] {
                    if !s(d, k).is_empty() {
                        t.push_str(&format!("  {label}:\t{}\n", s(d, k)));
                    }
                }
                t.push_str(&format!("  OS/Arch:\t{}/{}\n", s(d, "Os"), s(d, "Arch")));
                t.push_str(&format!("  Experimental:\t{}\n", s(d, "Experimental")));
            } else if let Some(o) = d.as_object() {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                for k in keys {
                    t.push_str(&format!("  {k}:\t{}\n", format::go_print(&o[k])));
                }
            }
        }
    }
    format::tabwrite_with(&t, 20, 1)
}

/// `berth version`.
pub async fn version(c: &Client, a: VersionArgs) -> CmdResult {
    let client = client_version();
    let server = c.get_json("/version").await;
    if let Some(f) = &a.format {
        let t = template(f)?;
        let data = json!({"Client": client, "Server": server.as_ref().ok()});
        write_out(format!("{}\n", exec(&t, &data)?).as_bytes());
    } else {
        write_out(render_version(&client, server.as_ref().ok()).as_bytes());
    }
    match server {
        Ok(_) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// go-units `BytesSize`: binary units with 4 significant digits ("7.765GiB").
pub fn bytes_size(n: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut s = n;
    let mut i = 0;
    while s >= 1024.0 && i < UNITS.len() - 1 {
        s /= 1024.0;
        i += 1;
    }
    format!("{}{}", format::go_g(s, 4), UNITS[i])
}

/// The text of `info`: docker's layout for the fields berth reports.
pub fn render_info(i: &Value) -> String {
    let num = |k: &str| i[k].as_i64().unwrap_or(0);
    let mut o = String::new();
    o.push_str("Client:\n");
    o.push_str(&format!(" Version:    {}\n", env!("CARGO_PKG_VERSION")));
    o.push_str(" Context:    default\n");
    o.push_str(" Debug Mode: false\n\n");
    o.push_str("Server:\n");
    o.push_str(&format!(" Containers: {}\n", num("Containers")));
    o.push_str(&format!("  Running: {}\n", num("ContainersRunning")));
    o.push_str(&format!("  Paused: {}\n", num("ContainersPaused")));
    o.push_str(&format!("  Stopped: {}\n", num("ContainersStopped")));
    o.push_str(&format!(" Images: {}\n", num("Images")));
    o.push_str(&format!(" Server Version: {}\n", s(i, "ServerVersion")));
    o.push_str(&format!(" Storage Driver: {}\n", s(i, "Driver")));
    for pair in i["DriverStatus"].as_array().into_iter().flatten() {
        if let (Some(k), Some(v)) = (pair[0].as_str(), pair[1].as_str()) {
            o.push_str(&format!("  {k}: {v}\n"));
        }
    }
    o.push_str(&format!(" Logging Driver: {}\n", s(i, "LoggingDriver")));
    o.push_str(&format!(" Cgroup Driver: {}\n", s(i, "CgroupDriver")));
    o.push_str(&format!(" Cgroup Version: {}\n", s(i, "CgroupVersion")));
    if let Some(rts) = i["Runtimes"].as_object() {
        let mut names: Vec<&String> = rts.keys().collect();
        names.sort();
        o.push_str(&format!(
            " Runtimes: {}\n",
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    o.push_str(&format!(" Default Runtime: {}\n", s(i, "DefaultRuntime")));
    o.push_str(&format!(" Kernel Version: {}\n", s(i, "KernelVersion")));
    o.push_str(&format!(" Operating System: {}\n", s(i, "OperatingSystem")));
    o.push_str(&format!(" OSType: {}\n", s(i, "OSType")));
    o.push_str(&format!(" Architecture: {}\n", s(i, "Architecture")));
    o.push_str(&format!(" CPUs: {}\n", num("NCPU")));
    o.push_str(&format!(
        " Total Memory: {}\n",
        bytes_size(num("MemTotal") as f64)
    ));
    o.push_str(&format!(" Name: {}\n", s(i, "Name")));
    o.push_str(&format!(" ID: {}\n", s(i, "ID")));
    o.push_str(&format!(" Docker Root Dir: {}\n", s(i, "DockerRootDir")));
    o.push_str(&format!(
        " Debug Mode: {}\n",
        i["Debug"].as_bool().unwrap_or(false)
    ));
    o.push_str(&format!(
        " Experimental: {}\n",
        i["ExperimentalBuild"].as_bool().unwrap_or(false)
    ));
    o.push_str(&format!(
        " Live Restore Enabled: {}\n",
        i["LiveRestoreEnabled"].as_bool().unwrap_or(false)
    ));
    o
}

/// `berth info`.
pub async fn info(c: &Client, a: InfoArgs) -> CmdResult {
    let i = c.get_json("/info").await?;
    match &a.format {
        Some(f) => {
            let f = if f == "json" { "{{json .}}" } else { f };
            let t = template(f)?;
            write_out(format!("{}\n", exec(&t, &i)?).as_bytes());
        }
        None => write_out(render_info(&i).as_bytes()),
    }
    for w in i["Warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        eprintln!("{w}");
    }
    Ok(0)
}

/// `berth inspect` (any type) and `container inspect` / `image inspect` (one type).
pub async fn inspect(
    c: &Client,
    names: Vec<String>,
    format: Option<String>,
    kind: Option<String>,
    size: bool,
) -> CmdResult {
    let tpl = match format.as_deref() {
        Some("json") | None => None,
        Some(f) => Some(template(f)?),
    };
    if let Some(k) = &kind {
        if k != "container" && k != "image" {
            return Err(CliError::Msg(format!(
                "\"{k}\" is not a valid value for --type"
            )));
        }
    }
    let size_q = if size { "?size=1" } else { "" };
    let mut raws: Vec<String> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for n in &names {
        let mut found = None;
        let mut last_err = None;
        if kind.as_deref() != Some("image") {
            match c
                .get_bytes(&format!("/containers/{}/json{size_q}", seg(n)))
                .await
            {
                Ok(b) => found = Some(b),
                Err(e) if e.is_not_found() => last_err = Some(e),
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            }
        }
        if found.is_none() && kind.as_deref() != Some("container") {
            match c.get_bytes(&format!("/images/{}/json", seg(n))).await {
                Ok(b) => found = Some(b),
                Err(e) if e.is_not_found() => last_err = Some(e),
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            }
        }
        match found {
            Some(b) => raws.push(String::from_utf8_lossy(&b).trim().to_string()),
            None => errors.push(match (&kind, last_err) {
                (None, _) => format!("Error: No such object: {n}"),
                (Some(_), Some(e)) => e.to_string(),
                (Some(_), None) => format!("Error: No such object: {n}"),
            }),
        }
    }
    match tpl {
        None => write_out(
            format!(
                "{}\n",
                format::indent_json(&format!("[{}]", raws.join(",")))
            )
            .as_bytes(),
        ),
        Some(t) => {
            for r in &raws {
                let v: Value = serde_json::from_str(r).map_err(|e| CliError::Msg(e.to_string()))?;
                write_out(format!("{}\n", exec(&t, &v)?).as_bytes());
            }
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(CliError::Status(1, errors.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_layout() {
        let client = json!({"Version": "0.1.0", "ApiVersion": "1.50", "GitCommit": "abc", "Os": "linux", "Arch": "amd64", "Context": "default"});
        let server = json!({
            "Platform": {"Name": "berth"},
            "Components": [{"Name": "Engine", "Version": "0.1.0", "Details": {"ApiVersion": "1.50", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64", "Experimental": "false"}}],
        });
        let out = render_version(&client, Some(&server));
        let want = "Client:\n Version:           0.1.0\n API version:       1.50\n Git commit:        abc\n OS/Arch:           linux/amd64\n Context:           default\n\nServer: berth\n Engine:\n  Version:          0.1.0\n  API version:      1.50 (minimum version 1.24)\n  OS/Arch:          linux/amd64\n  Experimental:     false\n";
        assert_eq!(out, want);
    }

    #[test]
    fn info_units() {
        assert_eq!(bytes_size(8_337_563_648.0), "7.765GiB");
        assert_eq!(bytes_size(1024.0), "1KiB");
        let out = render_info(
            &json!({"Containers": 3, "ContainersRunning": 1, "ContainersStopped": 2, "NCPU": 4, "MemTotal": 1073741824u64, "ServerVersion": "0.1.0"}),
        );
        assert!(
            out.contains("\nServer:\n Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n")
        );
        assert!(out.contains(" Total Memory: 1GiB\n"));
    }
}
