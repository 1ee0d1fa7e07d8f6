//! `GET /containers/{id}/json` and `GET /containers/json`: the container as the API shows it,
//! with every field moby always sends (the Go CLI dereferences them), and Docker's list filters.

use super::model::{status_text, unix_secs, ContainerRecord};
use super::{Container, Daemon};
use crate::error::{ApiError, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Docker's filter argument: `{"key":["v1","v2"]}` or the legacy `{"key":{"v1":true}}`.
pub type Filters = BTreeMap<String, Vec<String>>;

/// Parses the `filters` query parameter.
pub fn parse_filters(s: Option<&str>) -> Result<Filters> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(Filters::new());
    };
    let v: Value =
        serde_json::from_str(s).map_err(|e| ApiError::invalid(format!("invalid filter: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid("invalid filter: expected an object"))?;
    let mut out = Filters::new();
    for (k, v) in obj {
        let vals: Vec<String> = match v {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            Value::Object(m) => m
                .iter()
                .filter(|(_, b)| b.as_bool().unwrap_or(false))
                .map(|(k, _)| k.clone())
                .collect(),
            Value::String(s) => vec![s.clone()],
            _ => return Err(ApiError::invalid(format!("invalid filter '{k}'"))),
        };
        out.insert(k.clone(), vals);
    }
    Ok(out)
}

/// Whether labels match every `label` filter value (`key` or `key=value`).
pub fn labels_match(labels: &BTreeMap<String, String>, wanted: &[String]) -> bool {
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(w.as_str()),
    })
}

fn network_settings(rec: &ContainerRecord) -> Value {
    let mode = rec.host_config.network_mode.as_str();
    // Until bridge networking lands, `bridge`/`default` containers have a private network
    // namespace with loopback only: no endpoint, no address, and inspect says exactly that.
    let networks = match mode {
        "host" | "none" => {
            let mut m = Map::new();
            m.insert(mode.to_string(), endpoint());
            Value::Object(m)
        }
        _ => json!({}),
    };
    json!({
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": {},
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": networks,
    })
}

fn endpoint() -> Value {
    json!({
        "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "", "DriverOpts": null,
        "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null
    })
}

/// HostConfig as inspect shows it: what the user sent, with Docker's defaults filled in.
fn host_config_json(rec: &ContainerRecord) -> Value {
    let mut v = serde_json::to_value(&rec.host_config).unwrap_or_else(|_| json!({}));
    let obj = v
        .as_object_mut()
        .expect("HostConfig serialises to an object");
    let defaults = json!({
        "Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {"max-size": "20m", "max-file": "5"}},
        "PortBindings": {}, "VolumeDriver": "", "VolumesFrom": null, "ConsoleSize": [0, 0],
        "CgroupnsMode": "private", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null,
        "GroupAdd": null, "IpcMode": "private", "Cgroup": "", "Links": null, "PidMode": "", "PublishAllPorts": false,
        "UTSMode": "", "UsernsMode": "", "Isolation": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [],
        "CgroupParent": "", "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetMems": "", "Devices": [],
        "DeviceCgroupRules": null, "DeviceRequests": null, "MemorySwappiness": null, "OomKillDisable": null,
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "Runtime": "runc",
        "MaskedPaths": [], "ReadonlyPaths": [], "Init": null, "Annotations": null, "Mounts": null
    });
    for (k, d) in defaults.as_object().expect("object literal") {
        match obj.get(k) {
            None | Some(Value::Null) => {
                obj.insert(k.clone(), d.clone());
            }
            _ => {}
        }
    }
    if obj.get("LogConfig").and_then(|l| l.get("Type")).is_none() {
        obj.insert("LogConfig".into(), defaults["LogConfig"].clone());
    }
    if obj.get("PidsLimit").is_none() {
        obj.insert("PidsLimit".into(), Value::Null);
    }
    v
}

impl Daemon {
    /// The full inspect document.
    pub fn inspect(&self, c: &Arc<Container>, size: bool) -> Value {
        let rec = c.snapshot();
        let dir = self.paths.container_dir(&rec.id);
        let lower: Vec<String> = self
            .images
            .resolve(&rec.image_id)
            .ok()
            .and_then(|i| self.images.lower_dirs(&i).ok())
            .unwrap_or_default()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut v = json!({
            "Id": rec.id,
            "Created": rec.created,
            "Path": rec.path,
            "Args": rec.args,
            "State": rec.state,
            "Image": rec.image_id,
            "ResolvConfPath": dir.join("resolv.conf"),
            "HostnamePath": dir.join("hostname"),
            "HostsPath": dir.join("hosts"),
            "LogPath": self.paths.log_path(&rec.id),
            "Name": rec.name,
            "RestartCount": rec.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": null,
            "HostConfig": host_config_json(&rec),
            "GraphDriver": {
                "Data": {
                    "LowerDir": lower.join(":"),
                    "MergedDir": dir.join("rootfs"),
                    "UpperDir": dir.join("rw/upper"),
                    "WorkDir": dir.join("rw/work"),
                },
                "Name": "overlay2"
            },
            "Mounts": [],
            "Config": rec.config,
            "NetworkSettings": network_settings(&rec),
        });
        if size {
            let rw = super::remove::dir_size(&dir.join("rw/upper"));
            v["SizeRw"] = json!(rw);
            let img = self
                .images
                .resolve(&rec.image_id)
                .map(|i| i.size)
                .unwrap_or(0);
            v["SizeRootFs"] = json!(rw + img);
        }
        v
    }

    /// `GET /containers/json`.
    pub fn list(
        &self,
        all: bool,
        limit: Option<i64>,
        size: bool,
        filters: &Filters,
    ) -> Result<Vec<Value>> {
        for k in filters.keys() {
            if !matches!(
                k.as_str(),
                "id" | "name" | "label" | "status" | "ancestor" | "exited" | "before" | "since"
            ) {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        if let Some(st) = filters.get("status") {
            for s in st {
                if !matches!(
                    s.as_str(),
                    "created"
                        | "restarting"
                        | "running"
                        | "removing"
                        | "paused"
                        | "exited"
                        | "dead"
                ) {
                    return Err(ApiError::invalid(format!("invalid filter 'status={s}'")));
                }
            }
        }
        let mut recs: Vec<ContainerRecord> = self.all().iter().map(|c| c.snapshot()).collect();
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        // Filters that name other containers.
        let anchor = |key: &str| -> Result<Option<String>> {
            match filters.get(key).and_then(|v| v.first()) {
                Some(n) => Ok(Some(self.get(n)?.snapshot().created)),
                None => Ok(None),
            }
        };
        let before = anchor("before")?;
        let since = anchor("since")?;
        let ancestors: Vec<String> = filters
            .get("ancestor")
            .map(|v| {
                v.iter()
                    .filter_map(|a| self.images.resolve(a).ok().map(|i| i.id.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let want_status = filters.get("status");
        let implicit_all = all || want_status.is_some() || filters.contains_key("exited");
        let mut out = Vec::new();
        for rec in recs {
            if !implicit_all && !rec.state.running {
                continue;
            }
            if let Some(ids) = filters.get("id") {
                if !ids.iter().any(|i| rec.id.starts_with(i.as_str())) {
                    continue;
                }
            }
            if let Some(names) = filters.get("name") {
                // Docker matches names as regular expressions; a substring match covers the
                // common uses (`name=web`, `name=^/web$` is not supported yet).
                if !names
                    .iter()
                    .any(|n| rec.bare_name().contains(n.trim_start_matches('/')))
                {
                    continue;
                }
            }
            if let Some(l) = filters.get("label") {
                if !labels_match(&rec.config.labels, l) {
                    continue;
                }
            }
            if let Some(st) = want_status {
                if !st.contains(&rec.state.status) {
                    continue;
                }
            }
            if let Some(codes) = filters.get("exited") {
                if rec.state.status != "exited"
                    || !codes
                        .iter()
                        .any(|c| c.parse::<i64>().ok() == Some(rec.state.exit_code))
                {
                    continue;
                }
            }
            if filters.contains_key("ancestor") && !ancestors.contains(&rec.image_id) {
                continue;
            }
            if before.as_ref().is_some_and(|b| rec.created >= *b)
                || since.as_ref().is_some_and(|s| rec.created <= *s)
            {
                continue;
            }
            out.push(self.summary(&rec, size));
            if limit.is_some_and(|l| l > 0 && out.len() as i64 >= l) {
                break;
            }
        }
        Ok(out)
    }

    fn summary(&self, rec: &ContainerRecord, size: bool) -> Value {
        let mut command = rec.path.clone();
        for a in &rec.args {
            command.push(' ');
            command.push_str(a);
        }
        let ns = network_settings(rec);
        let mut v = json!({
            "Id": rec.id,
            "Names": [rec.name],
            "Image": rec.config.image,
            "ImageID": rec.image_id,
            "Command": command,
            "Created": unix_secs(&rec.created),
            "Ports": [],
            "Labels": rec.config.labels,
            "State": rec.state.status,
            "Status": status_text(&rec.state),
            "HostConfig": {"NetworkMode": rec.host_config.network_mode},
            "NetworkSettings": {"Networks": ns["Networks"]},
            "Mounts": [],
        });
        if size {
            let dir = self.paths.container_dir(&rec.id);
            let rw = super::remove::dir_size(&dir.join("rw/upper"));
            let img = self
                .images
                .resolve(&rec.image_id)
                .map(|i| i.size)
                .unwrap_or(0);
            v["SizeRw"] = json!(rw);
            v["SizeRootFs"] = json!(rw + img);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_both_forms() {
        let f = parse_filters(Some(
            r#"{"status":["running","exited"],"label":{"a=b":true}}"#,
        ))
        .unwrap();
        assert_eq!(f["status"], vec!["running", "exited"]);
        assert_eq!(f["label"], vec!["a=b"]);
        assert!(parse_filters(Some("{bad")).is_err());
        assert!(parse_filters(None).unwrap().is_empty());
    }

    #[test]
    fn label_matching() {
        let mut l = BTreeMap::new();
        l.insert("app".to_string(), "web".to_string());
        assert!(labels_match(&l, &["app".into()]));
        assert!(labels_match(&l, &["app=web".into()]));
        assert!(!labels_match(&l, &["app=db".into()]));
        assert!(!labels_match(&l, &["tier".into()]));
    }
}
