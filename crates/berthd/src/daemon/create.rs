//! `POST /containers/create`: validates the request, merges the image's config as Docker does,
//! and records a container in the `created` state with its directory prepared.

use super::model::{Config, ContainerRecord, HostConfig, State};
use super::{blocking, Container, Daemon};
use crate::error::{image_err, internal, ApiError, Result};
use std::sync::Arc;

/// The create request body: `Config` fields at the top level, plus `HostConfig`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    #[serde(flatten)]
    pub config: Config,
    pub host_config: Option<HostConfig>,
    pub networking_config: Option<serde_json::Value>,
}

/// The response: the new ID and warnings.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Created {
    pub id: String,
    pub warnings: Vec<String>,
}

/// Replaces `KEY=…` entries of `base` with those of `over`, appending new keys (Docker's
/// `ReplaceOrAppendEnvValues`).
pub fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for e in over {
        let key = e.split('=').next().unwrap_or(e);
        if let Some(slot) = out.iter_mut().find(|b| b.split('=').next() == Some(key)) {
            *slot = e.clone();
        } else {
            out.push(e.clone());
        }
    }
    out
}

fn validate_host_config(h: &HostConfig) -> Result<()> {
    match h.network_mode.as_str() {
        "" | "default" | "bridge" | "none" | "host" => {}
        m if m.starts_with("container:") => {
            return Err(ApiError::not_implemented(format!(
                "network mode {m} is not supported yet"
            )));
        }
        m => return Err(ApiError::not_found(format!("network {m} not found"))),
    }
    if h.memory != 0 && h.memory < 6 * 1024 * 1024 {
        return Err(ApiError::invalid("Minimum memory limit allowed is 6MB"));
    }
    if h.memory_swap > 0 && h.memory > 0 && h.memory_swap < h.memory {
        return Err(ApiError::invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if h.nano_cpus != 0 && (h.cpu_quota != 0 || h.cpu_period != 0) {
        return Err(ApiError::invalid(
            "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set",
        ));
    }
    if h.nano_cpus < 0 {
        return Err(ApiError::invalid(
            "Range of CPUs is from 0.01 to the number of CPUs available",
        ));
    }
    if h.nano_cpus > 0 {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as i64)
            .unwrap_or(1);
        if h.nano_cpus > cpus * 1_000_000_000 {
            return Err(ApiError::invalid(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
    }
    if h.shm_size < 0 {
        return Err(ApiError::invalid("SHM size can not be less than 0"));
    }
    match h.restart_policy.name.as_str() {
        "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
        other => {
            return Err(ApiError::invalid(format!(
                "invalid restart policy '{other}'"
            )))
        }
    }
    if h.auto_remove && !matches!(h.restart_policy.name.as_str(), "" | "no") {
        return Err(ApiError::invalid(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    for b in &h.binds {
        parse_bind(b)?;
    }
    for cap in h.cap_add.iter().chain(h.cap_drop.iter()) {
        if !cap.eq_ignore_ascii_case("all") {
            berth_runtime::caps::parse_cap(cap).map_err(|e| ApiError::invalid(e.to_string()))?;
        }
    }
    Ok(())
}

impl Daemon {
    pub async fn create(
        self: &Arc<Self>,
        name: Option<String>,
        body: CreateBody,
    ) -> Result<Created> {
        let mut config = body.config;
        let mut host = body.host_config.unwrap_or_default();
        if config.image.is_empty() {
            return Err(ApiError::invalid(
                "config cannot be empty in order to create a container",
            ));
        }
        validate_host_config(&host)?;
        if host.network_mode.is_empty() {
            host.network_mode = "bridge".into();
        }
        if host.restart_policy.name.is_empty() {
            host.restart_policy.name = "no".into();
        }
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !super::super::names::valid(&n) {
                    return Err(ApiError::invalid(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                format!("/{}", n.trim_start_matches('/'))
            }
            None => loop {
                let n = format!("/{}", crate::names::generate());
                if self.name_owner(&n).is_none() {
                    break n;
                }
            },
        };
        let images = self.images.clone();
        let image_name = config.image.clone();
        let image = blocking(move || images.resolve(&image_name).map_err(image_err)).await?;
        let ic = image.config.config.clone().unwrap_or_default();

        // Merge the image's defaults, as dockerd's `merge` does.
        let image_env = ic.env.clone().unwrap_or_default();
        config.env = Some(merge_env(&image_env, config.env.as_deref().unwrap_or(&[])));
        if config.entrypoint.is_none() {
            config.entrypoint = ic.entrypoint.clone();
            if config.cmd.is_none() {
                config.cmd = ic.cmd.clone();
            }
        }
        if config.working_dir.is_empty() {
            config.working_dir = ic.working_dir.clone().unwrap_or_default();
        }
        if config.user.is_empty() {
            config.user = ic.user.clone().unwrap_or_default();
        }
        if config.stop_signal.is_none() {
            config.stop_signal = ic.stop_signal.clone();
        }
        if let Some(labels) = &ic.labels {
            for (k, v) in labels {
                config.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let as_value = |m: &Option<std::collections::BTreeMap<String, serde_json::Value>>| {
            m.as_ref().and_then(|m| serde_json::to_value(m).ok())
        };
        if config.exposed_ports.is_none() {
            config.exposed_ports = as_value(&ic.exposed_ports);
        }
        if config.volumes.is_none() {
            config.volumes = as_value(&ic.volumes);
        }
        if config.healthcheck.is_none() {
            config.healthcheck = ic.healthcheck.clone();
        }
        let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
        argv.extend(config.cmd.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err(ApiError::invalid("no command specified"));
        }

        let id = random_id();
        if config.hostname.is_empty() {
            config.hostname = if host.network_mode == "host" {
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                id[..12].to_string()
            };
        }
        let rec = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            created: berth_runtime::jsonlog::now_rfc3339(),
            image_id: image.id.to_string(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config: host,
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
        };
        let dir = self.paths.container_dir(&id);
        let rec2 = rec.clone();
        blocking(move || {
            prepare_dir(&dir, &rec2).map_err(|e| internal("prepare container directory", e))
        })
        .await?;

        // The name check and the insert happen under one lock so two creates cannot share a name.
        {
            let mut map = self.containers.write().unwrap_or_else(|e| e.into_inner());
            if let Some(owner) = map.values().map(|c| c.snapshot()).find(|r| r.name == name) {
                drop(map);
                let _ = std::fs::remove_dir_all(self.paths.container_dir(&id));
                return Err(ApiError::conflict(format!(
                    "Conflict. The container name \"{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    owner.id
                )));
            }
            map.insert(id.clone(), Container::new(rec));
        }
        let c = self.get(&id)?;
        if let Err(e) = self.persist(&c) {
            self.forget(&id);
            let _ = std::fs::remove_dir_all(self.paths.container_dir(&id));
            return Err(e);
        }
        tracing::info!(id = %&id[..12], name = %name, "container created");
        Ok(Created {
            id,
            warnings: Vec::new(),
        })
    }
}

/// A new 64-hex container ID.
pub fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Creates the container's directory with its writable layer and the files Docker bind-mounts
/// over /etc/hostname, /etc/hosts and /etc/resolv.conf.
fn prepare_dir(dir: &std::path::Path, rec: &ContainerRecord) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("rw/upper"))?;
    std::fs::create_dir_all(dir.join("rw/work"))?;
    std::fs::create_dir_all(dir.join("rootfs"))?;
    std::fs::create_dir_all(dir.join("bundle"))?;
    let host_net = rec.host_config.network_mode == "host";
    std::fs::write(dir.join("hostname"), format!("{}\n", rec.config.hostname))?;
    let hosts = if host_net {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string()
    };
    std::fs::write(dir.join("hosts"), hosts)?;
    std::fs::write(dir.join("resolv.conf"), resolv_conf(host_net))?;
    Ok(())
}

/// The host's resolv.conf; without host networking, loopback resolvers are unreachable from the
/// container, so they are dropped and Google's public resolvers stand in (Docker's rule).
fn resolv_conf(host_net: bool) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if host_net {
        return host;
    }
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let t = line.trim();
        if let Some(ns) = t.strip_prefix("nameserver") {
            let ns = ns.trim();
            if ns.starts_with("127.") || ns == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merge_replaces_by_key() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let over = vec!["A=2".to_string(), "B=3".to_string()];
        assert_eq!(merge_env(&base, &over), vec!["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn host_config_checks() {
        let mut h = HostConfig {
            memory: 1024,
            ..Default::default()
        };
        assert!(validate_host_config(&h).is_err());
        h.memory = 0;
        h.nano_cpus = 1_000_000_000;
        h.cpu_quota = 5;
        assert!(validate_host_config(&h).is_err());
        let h = HostConfig {
            network_mode: "nosuch".into(),
            ..Default::default()
        };
        assert_eq!(
            validate_host_config(&h).unwrap_err().kind,
            berth_api::ErrorKind::NotFound
        );
        let h = HostConfig {
            restart_policy: super::super::model::RestartPolicy {
                name: "sometimes".into(),
                maximum_retry_count: 0,
            },
            ..Default::default()
        };
        assert!(validate_host_config(&h).is_err());
    }
}

/// One `HostConfig.Binds` entry: `/host/path:/container/path[:ro|rw[,…]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    pub source: String,
    pub destination: String,
    pub readonly: bool,
}

/// Parses a `Binds` entry with Docker's messages. Named volumes are refused by name: berth has
/// no volume store yet.
pub fn parse_bind(spec: &str) -> Result<Bind> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => {
            return Err(ApiError::invalid(format!(
                "invalid volume specification: '{spec}'"
            )))
        }
    };
    if source.is_empty() || destination.is_empty() {
        return Err(ApiError::invalid(format!(
            "invalid volume specification: '{spec}'"
        )));
    }
    if !source.starts_with('/') {
        return Err(ApiError::not_implemented(format!(
            "named volumes are not supported by berth yet ({source}); use an absolute host path"
        )));
    }
    if !destination.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config: invalid mount path: '{destination}' mount path must be absolute"
        )));
    }
    if destination == "/" {
        return Err(ApiError::invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config: destination can't be '/'"
        )));
    }
    let mut readonly = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" | "z" | "Z" | "private" | "rprivate" | "shared" | "rshared" | "slave"
            | "rslave" | "nocopy" => {}
            other => {
                return Err(ApiError::invalid(format!(
                    "invalid volume specification: '{spec}': invalid mode: {other}"
                )))
            }
        }
    }
    Ok(Bind {
        source: source.to_string(),
        destination: destination.to_string(),
        readonly,
    })
}

#[cfg(test)]
mod bind_tests {
    use super::*;

    #[test]
    fn binds() {
        assert_eq!(
            parse_bind("/a:/b:ro").unwrap(),
            Bind {
                source: "/a".into(),
                destination: "/b".into(),
                readonly: true
            }
        );
        assert!(!parse_bind("/a:/b").unwrap().readonly);
        assert!(parse_bind("/a").is_err());
        assert!(parse_bind("/a:b").is_err());
        assert!(parse_bind("/a:/b:xx").is_err());
        assert_eq!(
            parse_bind("vol:/b").unwrap_err().kind,
            crate::error::ErrorKind::NotImplemented
        );
    }
}
