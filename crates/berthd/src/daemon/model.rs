//! The container record as stored and as the API shows it: Docker's `Config`, `HostConfig` and
//! `State`, with the fields moby always sends.

use berth_api::units::human_duration;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Docker's "zero time", sent for timestamps that have not happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Accepts a JSON string or array of strings (Docker's `strslice`), or null.
fn str_or_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SV {
        S(String),
        V(Vec<String>),
    }
    Ok(match Option::<SV>::deserialize(d)? {
        None => None,
        Some(SV::S(s)) => Some(vec![s]),
        Some(SV::V(v)) => Some(v),
    })
}

fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `Config` of a container (the create request's top level).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    #[serde(deserialize_with = "null_default")]
    pub hostname: String,
    #[serde(deserialize_with = "null_default")]
    pub domainname: String,
    #[serde(deserialize_with = "null_default")]
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<Value>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "str_or_vec")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(deserialize_with = "null_default")]
    pub image: String,
    pub volumes: Option<Value>,
    #[serde(deserialize_with = "null_default")]
    pub working_dir: String,
    #[serde(deserialize_with = "str_or_vec")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_disabled: Option<bool>,
    pub on_build: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// One `--ulimit`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// `--restart`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    pub maximum_retry_count: i64,
}

/// The `HostConfig` fields berth acts on; the rest are kept and echoed back in `extra`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub auto_remove: bool,
    pub memory: i64,
    pub memory_swap: i64,
    pub memory_reservation: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    #[serde(deserialize_with = "null_default")]
    pub cpuset_cpus: String,
    pub pids_limit: Option<i64>,
    pub readonly_rootfs: bool,
    #[serde(deserialize_with = "null_default")]
    pub cap_add: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    #[serde(deserialize_with = "null_default")]
    pub ulimits: Vec<Ulimit>,
    pub shm_size: i64,
    #[serde(deserialize_with = "null_default")]
    pub network_mode: String,
    pub restart_policy: RestartPolicy,
    #[serde(deserialize_with = "null_default")]
    pub security_opt: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub sysctls: BTreeMap<String, String>,
    pub oom_score_adj: i64,
    #[serde(deserialize_with = "null_default")]
    pub binds: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub log_config: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `State` of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: "created".into(),
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
        }
    }
}

/// A container as persisted in the metadata store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    /// With the leading `/`, as Docker stores it.
    pub name: String,
    pub created: String,
    pub image_id: String,
    pub config: Config,
    pub host_config: HostConfig,
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub restart_count: i64,
    /// Set by `stop`/`kill`, so restart policies do not undo what the user asked.
    #[serde(default)]
    pub manually_stopped: bool,
}

impl ContainerRecord {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
    pub fn bare_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }
}

/// Seconds since an RFC 3339 time (0 for the zero time or garbage).
pub fn secs_since(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| (chrono::Utc::now() - d.with_timezone(&chrono::Utc)).num_seconds())
        .unwrap_or(0)
}

/// Unix seconds of an RFC 3339 time.
pub fn unix_secs(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp())
        .unwrap_or(0)
}

/// The `Status` column of `docker ps`.
pub fn status_text(st: &State) -> String {
    match st.status.as_str() {
        "running" | "paused" if st.paused => {
            format!("Up {} (Paused)", human_duration(secs_since(&st.started_at)))
        }
        "running" | "paused" => format!("Up {}", human_duration(secs_since(&st.started_at))),
        "restarting" => format!(
            "Restarting ({}) {} ago",
            st.exit_code,
            human_duration(secs_since(&st.finished_at))
        ),
        "exited" => {
            if st.finished_at == ZERO_TIME {
                format!("Exited ({})", st.exit_code)
            } else {
                format!(
                    "Exited ({}) {} ago",
                    st.exit_code,
                    human_duration(secs_since(&st.finished_at))
                )
            }
        }
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        _ => "Created".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_accepts_string_or_array_cmd() {
        let c: Config = serde_json::from_str(
            r#"{"Cmd":"echo hi","Entrypoint":null,"Env":null,"Labels":null,"Image":"busybox"}"#,
        )
        .unwrap();
        assert_eq!(c.cmd, Some(vec!["echo hi".into()]));
        assert!(c.entrypoint.is_none());
        let c: Config = serde_json::from_str(r#"{"Cmd":["a","b"]}"#).unwrap();
        assert_eq!(c.cmd, Some(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn host_config_keeps_unknown_fields() {
        let h: HostConfig =
            serde_json::from_str(r#"{"Memory":5,"Foo":{"x":1},"CapAdd":null}"#).unwrap();
        assert_eq!(h.memory, 5);
        assert_eq!(h.extra["Foo"]["x"], 1);
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["Foo"]["x"], 1);
    }
}
