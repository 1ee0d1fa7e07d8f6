//! `GET /version` and `GET /info`, with real figures from this machine.

use super::Daemon;
use serde_json::{json, Value};
use std::sync::Arc;

/// berth's version, reported as the engine version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `2` on a unified cgroup hierarchy, `1` on v1 or hybrid.
pub fn cgroup_version() -> &'static str {
    match nix::sys::statfs::statfs("/sys/fs/cgroup") {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => "2",
        _ => "1",
    }
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

impl Daemon {
    pub fn version(&self) -> Value {
        let kernel = kernel_release();
        json!({
            "Platform": {"Name": "berth"},
            "Components": [{"Name": "Engine", "Version": VERSION, "Details": {
                "ApiVersion": berth_api::API_VERSION, "MinAPIVersion": berth_api::MIN_API_VERSION,
                "Os": "linux", "Arch": std::env::consts::ARCH, "KernelVersion": kernel, "Experimental": "false"
            }}],
            "Version": VERSION,
            "ApiVersion": berth_api::API_VERSION,
            "MinAPIVersion": berth_api::MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH },
            "KernelVersion": kernel,
            "BuildTime": "",
        })
    }

    pub async fn info(self: &Arc<Self>) -> Value {
        let recs: Vec<_> = self.all().iter().map(|c| c.snapshot()).collect();
        let running = recs
            .iter()
            .filter(|r| r.state.running && !r.state.paused)
            .count();
        let paused = recs.iter().filter(|r| r.state.paused).count();
        let images = self.images.clone();
        let n_images =
            tokio::task::spawn_blocking(move || images.list().map(|l| l.len()).unwrap_or(0))
                .await
                .unwrap_or(0);
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cg = cgroup_version();
        json!({
            "ID": "",
            "Containers": recs.len(),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": recs.len() - running - paused,
            "Images": n_images,
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
            "Plugins": {"Volume": [], "Network": ["host", "null"], "Authorization": null, "Log": ["json-file"]},
            "MemoryLimit": true,
            "SwapLimit": true,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "CPUSet": true,
            "PidsLimit": true,
            "IPv4Forwarding": true,
            "Debug": false,
            "NFd": std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
            "OomKillDisable": false,
            "NGoroutines": 0,
            "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cg,
            "NEventsListener": 0,
            "KernelVersion": kernel_release(),
            "OperatingSystem": os_name(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": std::env::consts::ARCH,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": self.registry_config(),
            "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "MemTotal": mem_total(),
            "DockerRootDir": self.paths.data_root,
            "Name": hostname,
            "Labels": [],
            "ExperimentalBuild": false,
            "ServerVersion": VERSION,
            "Runtimes": {"runc": {"path": "libcontainer"}},
            "DefaultRuntime": "runc",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
            "LiveRestoreEnabled": true,
            "Isolation": "",
            "InitBinary": "",
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Warnings": null,
        })
    }
}
