//! OCI runtime spec generation with Docker 28's defaults: capabilities, mounts, masked and
//! read-only paths, device rules, namespaces, resources, rlimits and the seccomp profile.
//!
//! Everything the kernel is asked for is bounded by what the host has (`HostFacts`): a
//! privileged container gets the host's bounding set, not every capability, and rlimits are
//! clamped under the host's hard limits, because an unprivileged-enough root cannot raise them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice,
    LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimit,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

use crate::{caps, seccomp};

/// Docker's `/dev/shm` size when none is given (64 MiB).
pub const DEFAULT_SHM_SIZE: i64 = 64 * 1024 * 1024;

/// Docker's smallest accepted memory limit (6 MiB).
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The CFS period Docker uses to express `--cpus` (100ms).
const NANO_CPUS_PERIOD: u64 = 100_000;

/// The OCI runtime-spec version written into `config.json`.
const OCI_VERSION: &str = "1.2.0";

/// Paths hidden from the container (Docker's `maskedPaths`).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in the container (Docker's `readonlyPaths`).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Which network namespace the container joins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetNs {
    /// A fresh namespace (bridge and none networks; the network driver fills it in).
    New,
    /// The host's namespace (`--network host`): no namespace entry.
    Host,
    /// An existing namespace, e.g. a bind-mounted `/run/berth/netns/<id>` or
    /// `/proc/<pid>/ns/net` for `--network container:<id>`.
    Path(PathBuf),
}

/// One `--ulimit name=soft:hard`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ulimit {
    /// Docker's name: `nofile`, `nproc`, `core`, …
    pub name: String,
    /// Soft limit; negative means unlimited.
    pub soft: i64,
    /// Hard limit; negative means unlimited.
    pub hard: i64,
}

/// A bind mount from the host (volumes, `-v`, and the container's hostname/hosts/resolv.conf).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    /// Absolute host path.
    pub source: PathBuf,
    /// Absolute path in the container.
    pub destination: String,
    /// Mount read-only.
    pub readonly: bool,
}

/// Everything from a container's config and host config that shapes its OCI spec.
#[derive(Clone, Debug)]
pub struct SpecInput {
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Working directory; empty means `/`.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub tty: bool,
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// Memory limit in bytes; 0 = none.
    pub memory: i64,
    /// Memory plus swap in bytes; -1 = unlimited swap, 0 = twice `memory` (Docker's default).
    pub memory_swap: i64,
    pub memory_reservation: i64,
    /// CPUs in billionths (`--cpus 1.5` = 1_500_000_000); 0 = none.
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub cpuset_cpus: String,
    /// `None`, 0 or negative = unlimited.
    pub pids_limit: Option<i64>,
    pub ulimits: Vec<Ulimit>,
    /// Bytes; 0 = Docker's default 64 MiB.
    pub shm_size: i64,
    pub netns: NetNs,
    /// Bind mounts, including /etc/hostname, /etc/hosts and /etc/resolv.conf from the
    /// container's directory; they go after (and replace) the default mounts.
    pub mounts: Vec<BindMount>,
    /// Absolute cgroup path, e.g. `/berth/<id>`; empty leaves it to the runtime.
    pub cgroups_path: String,
    pub oom_score_adj: Option<i32>,
    pub seccomp_unconfined: bool,
    pub no_new_privileges: bool,
    pub sysctls: BTreeMap<String, String>,
}

impl Default for SpecInput {
    fn default() -> Self {
        SpecInput {
            args: Vec::new(),
            env: Vec::new(),
            cwd: "/".to_string(),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            hostname: String::new(),
            tty: false,
            rootfs: PathBuf::new(),
            readonly_rootfs: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            privileged: false,
            memory: 0,
            memory_swap: 0,
            memory_reservation: 0,
            nano_cpus: 0,
            cpu_shares: 0,
            cpu_quota: 0,
            cpu_period: 0,
            cpuset_cpus: String::new(),
            pids_limit: None,
            ulimits: Vec::new(),
            shm_size: 0,
            netns: NetNs::New,
            mounts: Vec::new(),
            cgroups_path: String::new(),
            oom_score_adj: None,
            seccomp_unconfined: false,
            no_new_privileges: false,
            sysctls: BTreeMap::new(),
        }
    }
}

/// What the host allows: nothing in a spec may ask for more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// The daemon's capability bounding set.
    pub bounding_caps: Vec<Capability>,
    /// Hard `RLIMIT_NOFILE` of the daemon.
    pub nofile_hard: u64,
    /// Hard `RLIMIT_NPROC` of the daemon.
    pub nproc_hard: u64,
    /// Online CPUs, to validate `--cpus` (0 = unknown, no check).
    pub ncpu: u64,
}

impl HostFacts {
    /// Reads the bounding set from `/proc/self/status` and the hard limits with getrlimit.
    pub fn detect() -> HostFacts {
        HostFacts {
            bounding_caps: caps::host_bounding_caps(),
            nofile_hard: hard_rlimit(libc::RLIMIT_NOFILE),
            nproc_hard: hard_rlimit(libc::RLIMIT_NPROC),
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get() as u64)
                .unwrap_or(0),
        }
    }
}

fn hard_rlimit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(resource, &mut rl) } == 0 {
        rl.rlim_max
    } else {
        u64::MAX
    }
}

/// Why a spec cannot be built; messages follow Docker's where Docker has one.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// An unknown name in `--cap-add`/`--cap-drop`, with its `CAP_` prefix.
    #[error("unknown capability: {0:?}")]
    InvalidCapability(String),
    /// A bad `--ulimit`.
    #[error("{0}")]
    InvalidUlimit(String),
    /// Any other invalid option, with Docker's wording.
    #[error("{0}")]
    InvalidArgument(String),
    /// oci-spec refused a value (should not happen with validated input).
    #[error("invalid runtime spec: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
}

/// Builds the OCI spec for a container the way Docker 28 would, bounded by `host`.
pub fn build_spec(input: &SpecInput, host: &HostFacts) -> Result<Spec, SpecError> {
    if input.args.is_empty() {
        return Err(SpecError::InvalidArgument("no command specified".into()));
    }
    let cwd = if input.cwd.is_empty() {
        "/"
    } else {
        input.cwd.as_str()
    };
    if !cwd.starts_with('/') {
        return Err(SpecError::InvalidArgument(format!(
            "the working directory '{cwd}' is invalid, it needs to be an absolute path"
        )));
    }
    if !input.cgroups_path.is_empty() && !input.cgroups_path.starts_with('/') {
        return Err(SpecError::InvalidArgument(format!(
            "cgroups path must be absolute: {}",
            input.cgroups_path
        )));
    }

    let effective = effective_caps(input, host)?;
    let cap_set: HashSet<Capability> = effective.iter().copied().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(cap_set.clone())
        .effective(cap_set.clone())
        .permitted(cap_set)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?;

    let user = UserBuilder::default()
        .uid(input.uid)
        .gid(input.gid)
        .additional_gids(input.additional_gids.clone())
        .build()?;

    let mut process = ProcessBuilder::default()
        .terminal(input.tty)
        .user(user)
        .args(input.args.clone())
        .env(input.env.clone())
        .cwd(cwd)
        .capabilities(capabilities)
        .build()?;
    // libcontainer tests the field's presence, not its value: an explicit `false` makes it load
    // seccomp after capabilities are dropped, which the kernel refuses without no_new_privs.
    process.set_no_new_privileges(input.no_new_privileges.then_some(true));
    process.set_oom_score_adj(input.oom_score_adj);
    // The builder starts from oci-spec's default, which has a NOFILE 1024 rlimit: replace it.
    let rlimits = rlimits(&input.ulimits, host)?;
    process.set_rlimits((!rlimits.is_empty()).then_some(rlimits));

    let root = RootBuilder::default()
        .path(input.rootfs.clone())
        .readonly(input.readonly_rootfs)
        .build()?;

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces(&input.netns)?)
        .resources(resources(input, host)?)
        .rootfs_propagation("private")
        .build()?;
    if !input.cgroups_path.is_empty() {
        linux.set_cgroups_path(Some(PathBuf::from(&input.cgroups_path)));
    }
    if input.privileged {
        linux.set_masked_paths(Some(Vec::new()));
        linux.set_readonly_paths(Some(Vec::new()));
        // Host devices are not copied in yet; the runtime still creates the defaults.
        linux.set_devices(Some(Vec::new()));
    } else {
        linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|s| s.to_string()).collect()));
        linux.set_readonly_paths(Some(READONLY_PATHS.iter().map(|s| s.to_string()).collect()));
        linux.set_devices(Some(default_devices()?));
    }
    if !input.sysctls.is_empty() {
        linux.set_sysctl(Some(
            input
                .sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ));
    }
    if !input.privileged && !input.seccomp_unconfined {
        linux.set_seccomp(Some(seccomp::default_profile(&effective)));
    }

    let mut spec = SpecBuilder::default()
        .version(OCI_VERSION)
        .process(process)
        .root(root)
        .mounts(mounts(input)?)
        .linux(linux)
        .build()?;
    if !input.hostname.is_empty() {
        spec.set_hostname(Some(input.hostname.clone()));
    } else {
        spec.set_hostname(None);
    }
    Ok(spec)
}

/// The container's capabilities: Docker's default set tweaked by add/drop, or everything for
/// privileged, always limited to the host's bounding set.
pub fn effective_caps(input: &SpecInput, host: &HostFacts) -> Result<Vec<Capability>, SpecError> {
    if input.privileged {
        // Docker validates add/drop even when privileged ignores them.
        caps::tweak_caps(&caps::default_caps(), &input.cap_add, &input.cap_drop)?;
        return Ok(caps::intersect(&caps::all_caps(), &host.bounding_caps));
    }
    let wanted = caps::tweak_caps(&caps::default_caps(), &input.cap_add, &input.cap_drop)?;
    let granted = caps::intersect(&wanted, &host.bounding_caps);
    if granted.len() != wanted.len() {
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|c| !granted.contains(c))
            .map(|c| caps::cap_name(*c))
            .collect();
        tracing::debug!(
            ?missing,
            "capabilities not in the host bounding set are left out"
        );
    }
    Ok(granted)
}

fn namespaces(netns: &NetNs) -> Result<Vec<LinuxNamespace>, SpecError> {
    let mut out = Vec::new();
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ] {
        out.push(LinuxNamespaceBuilder::default().typ(typ).build()?);
    }
    match netns {
        NetNs::New => out.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()?,
        ),
        NetNs::Host => {}
        NetNs::Path(p) => out.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(p.clone())
                .build()?,
        ),
    }
    Ok(out)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// Docker's default mounts, then the bind mounts; a bind mount on a default mount's
/// destination replaces it (as `-v /host/shm:/dev/shm` does in Docker).
fn mounts(input: &SpecInput) -> Result<Vec<Mount>, SpecError> {
    let shm_size = if input.shm_size > 0 {
        input.shm_size
    } else if input.shm_size == 0 {
        DEFAULT_SHM_SIZE
    } else {
        return Err(SpecError::InvalidArgument(
            "SHM size can not be less than 0".into(),
        ));
    };
    let shm_opt = format!("size={shm_size}");
    let sys_ro = if input.privileged { "rw" } else { "ro" };
    let defaults = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &[sys_ro, "nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[sys_ro, "nosuid", "noexec", "nodev", "relatime"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_opt],
        )?,
    ];
    let mut out: Vec<Mount> = defaults
        .into_iter()
        .filter(|m| {
            !input
                .mounts
                .iter()
                .any(|b| std::path::Path::new(&b.destination) == m.destination())
        })
        .collect();
    for b in &input.mounts {
        if !b.destination.starts_with('/') {
            return Err(SpecError::InvalidArgument(format!(
                "invalid mount config: mount path must be absolute: {}",
                b.destination
            )));
        }
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        if b.readonly {
            options.push("ro".to_string());
        }
        out.push(
            MountBuilder::default()
                .destination(&b.destination)
                .typ("bind")
                .source(b.source.clone())
                .options(options)
                .build()?,
        );
    }
    Ok(out)
}

fn device(path: &str, major: i64, minor: i64) -> Result<LinuxDevice, SpecError> {
    Ok(LinuxDeviceBuilder::default()
        .path(path)
        .typ(LinuxDeviceType::C)
        .major(major)
        .minor(minor)
        .file_mode(0o666u32)
        .uid(0u32)
        .gid(0u32)
        .build()?)
}

/// The device nodes every container gets in its `/dev`.
fn default_devices() -> Result<Vec<LinuxDevice>, SpecError> {
    Ok(vec![
        device("/dev/null", 1, 3)?,
        device("/dev/zero", 1, 5)?,
        device("/dev/full", 1, 7)?,
        device("/dev/random", 1, 8)?,
        device("/dev/urandom", 1, 9)?,
        device("/dev/tty", 5, 0)?,
    ])
}

fn dev_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup, SpecError> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    Ok(b.build()?)
}

/// The device cgroup rules: Docker's deny-all plus its allow list (`runc`'s defaults included,
/// since Docker relies on runc adding them), or allow-all for privileged containers.
fn device_rules(privileged: bool) -> Result<Vec<LinuxDeviceCgroup>, SpecError> {
    use LinuxDeviceType::{A, B, C};
    if privileged {
        return Ok(vec![dev_rule(true, A, None, None, "rwm")?]);
    }
    let allow_c = |major, minor| dev_rule(true, C, Some(major), Some(minor), "rwm");
    Ok(vec![
        dev_rule(false, A, None, None, "rwm")?,
        dev_rule(true, C, None, None, "m")?,
        dev_rule(true, B, None, None, "m")?,
        allow_c(1, 3)?,                                  // null
        allow_c(1, 5)?,                                  // zero
        allow_c(1, 7)?,                                  // full
        allow_c(1, 8)?,                                  // random
        allow_c(1, 9)?,                                  // urandom
        allow_c(5, 0)?,                                  // tty
        allow_c(5, 1)?,                                  // console
        allow_c(5, 2)?,                                  // ptmx
        dev_rule(true, C, Some(136), None, "rwm")?,      // pts/*
        allow_c(10, 200)?,                               // net/tun
        dev_rule(false, C, Some(10), Some(229), "rwm")?, // fuse
    ])
}

fn resources(input: &SpecInput, host: &HostFacts) -> Result<LinuxResources, SpecError> {
    let invalid = |m: &str| Err(SpecError::InvalidArgument(m.to_string()));

    // Memory, with Docker's checks and its "swap defaults to the limit again" rule.
    if input.memory < 0 || input.memory_reservation < 0 {
        return invalid("invalid memory limit: must not be negative");
    }
    if input.memory > 0 && input.memory < MIN_MEMORY {
        return invalid("Minimum memory limit allowed is 6MB");
    }
    if input.memory_swap > 0 && input.memory == 0 {
        return invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        );
    }
    if input.memory > 0 && input.memory_swap > 0 && input.memory_swap < input.memory {
        return invalid("Minimum memoryswap limit should be larger than memory limit, see usage");
    }
    if input.memory > 0 && input.memory_reservation > input.memory {
        return invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        );
    }
    let mut mem = LinuxMemoryBuilder::default();
    let mut has_mem = false;
    if input.memory > 0 {
        mem = mem.limit(input.memory);
        let swap = match input.memory_swap {
            0 => input.memory.saturating_mul(2),
            s if s < 0 => -1,
            s => s,
        };
        mem = mem.swap(swap);
        has_mem = true;
    } else if input.memory_swap < 0 {
        mem = mem.swap(-1i64);
        has_mem = true;
    }
    if input.memory_reservation > 0 {
        mem = mem.reservation(input.memory_reservation);
        has_mem = true;
    }

    // CPU.
    if input.nano_cpus > 0 && input.cpu_period > 0 {
        return invalid("Conflicting options: Nano CPUs and CPU Period cannot both be set");
    }
    if input.nano_cpus > 0 && input.cpu_quota > 0 {
        return invalid("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
    }
    if input.nano_cpus < 0 || input.cpu_shares < 0 {
        return invalid("invalid CPU value: must not be negative");
    }
    if host.ncpu > 0 && input.nano_cpus > 0 {
        let max = host.ncpu as i64 * 1_000_000_000;
        if input.nano_cpus < 10_000_000 || input.nano_cpus > max {
            return Err(SpecError::InvalidArgument(format!(
                "Range of CPUs is from 0.01 to {}.00, as there are only {} CPUs available",
                host.ncpu, host.ncpu
            )));
        }
    }
    if input.cpu_period != 0 && !(1000..=1_000_000).contains(&input.cpu_period) {
        return invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1 second (i.e. 1000000)",
        );
    }
    if input.cpu_quota > 0 && input.cpu_quota < 1000 {
        return invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)");
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut has_cpu = false;
    if input.cpu_shares > 0 {
        cpu = cpu.shares(input.cpu_shares as u64);
        has_cpu = true;
    }
    if input.nano_cpus > 0 {
        let quota = (input.nano_cpus as i128 * NANO_CPUS_PERIOD as i128 / 1_000_000_000) as i64;
        cpu = cpu.period(NANO_CPUS_PERIOD).quota(quota);
        has_cpu = true;
    } else {
        if input.cpu_period > 0 {
            cpu = cpu.period(input.cpu_period as u64);
            has_cpu = true;
        }
        if input.cpu_quota != 0 {
            cpu = cpu.quota(input.cpu_quota);
            has_cpu = true;
        }
    }
    if !input.cpuset_cpus.is_empty() {
        cpu = cpu.cpus(input.cpuset_cpus.clone());
        has_cpu = true;
    }

    let mut res = LinuxResourcesBuilder::default()
        .devices(device_rules(input.privileged)?)
        .build()?;
    if has_mem {
        res.set_memory(Some(mem.build()?));
    }
    if has_cpu {
        res.set_cpu(Some(cpu.build()?));
    }
    if let Some(limit) = input.pids_limit.filter(|l| *l > 0) {
        res.set_pids(Some(LinuxPidsBuilder::default().limit(limit).build()?));
    }
    Ok(res)
}

/// Maps Docker's ulimit name to the rlimit type.
fn rlimit_type(name: &str) -> Option<PosixRlimitType> {
    use PosixRlimitType::*;
    Some(match name {
        "as" => RlimitAs,
        "core" => RlimitCore,
        "cpu" => RlimitCpu,
        "data" => RlimitData,
        "fsize" => RlimitFsize,
        "locks" => RlimitLocks,
        "memlock" => RlimitMemlock,
        "msgqueue" => RlimitMsgqueue,
        "nice" => RlimitNice,
        "nofile" => RlimitNofile,
        "nproc" => RlimitNproc,
        "rss" => RlimitRss,
        "rtprio" => RlimitRtprio,
        "rttime" => RlimitRttime,
        "sigpending" => RlimitSigpending,
        "stack" => RlimitStack,
        _ => return None,
    })
}

/// The rlimits asked for with `--ulimit`, each clamped under the host's hard limit. None are
/// added otherwise: like Docker, the container inherits the daemon's (shim's) limits.
fn rlimits(ulimits: &[Ulimit], host: &HostFacts) -> Result<Vec<PosixRlimit>, SpecError> {
    let mut out: Vec<PosixRlimit> = Vec::new();
    for u in ulimits {
        let typ = rlimit_type(&u.name)
            .ok_or_else(|| SpecError::InvalidUlimit(format!("invalid ulimit type: {}", u.name)))?;
        // Negative means unlimited (RLIM_INFINITY), as in Docker.
        let as_u64 = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
        let (soft, hard) = (as_u64(u.soft), as_u64(u.hard));
        if soft > hard {
            return Err(SpecError::InvalidUlimit(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft, u.hard
            )));
        }
        let host_hard = match typ {
            PosixRlimitType::RlimitNofile => host.nofile_hard,
            PosixRlimitType::RlimitNproc => host.nproc_hard,
            _ => u64::MAX,
        };
        let hard_c = hard.min(host_hard);
        let soft_c = soft.min(hard_c);
        if hard_c != hard {
            tracing::debug!(ulimit = %u.name, asked = hard, host = host_hard, "ulimit clamped to the host's hard limit");
        }
        let rl = PosixRlimitBuilder::default()
            .typ(typ)
            .soft(soft_c)
            .hard(hard_c)
            .build()?;
        // A later --ulimit of the same name wins, as in Docker.
        out.retain(|r| r.typ() != typ);
        out.push(rl);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::{cap_mask, default_caps};

    fn host() -> HostFacts {
        // This VM's root: no CAP_SYS_RESOURCE (24), no CAP_MAC_OVERRIDE (32).
        let mask = 0x1ff_ffff_ffffu64 & !(1 << 24) & !(1 << 32);
        HostFacts {
            bounding_caps: caps::caps_from_mask(mask),
            nofile_hard: 20000,
            nproc_hard: 63000,
            ncpu: 4,
        }
    }

    fn input() -> SpecInput {
        SpecInput {
            args: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: vec!["PATH=/usr/bin:/bin".into()],
            hostname: "abc123".into(),
            rootfs: "/var/lib/berth/containers/x/rootfs".into(),
            cgroups_path: "/berth/x".into(),
            ..SpecInput::default()
        }
    }

    fn eff(spec: &Spec) -> Vec<Capability> {
        let c = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        c.effective().as_ref().unwrap().iter().copied().collect()
    }

    fn res(spec: &Spec) -> &LinuxResources {
        spec.linux().as_ref().unwrap().resources().as_ref().unwrap()
    }

    #[test]
    fn default_spec() {
        let s = build_spec(&input(), &host()).unwrap();
        assert_eq!(cap_mask(&eff(&s)), 0xa80425fb);
        let p = s.process().as_ref().unwrap();
        let c = p.capabilities().as_ref().unwrap();
        assert_eq!(c.bounding(), c.effective());
        assert_eq!(c.permitted(), c.effective());
        assert!(c.inheritable().as_ref().unwrap().is_empty());
        assert!(c.ambient().as_ref().unwrap().is_empty());
        assert!(p.rlimits().is_none(), "no default rlimits");
        assert_eq!(p.cwd(), &PathBuf::from("/"));
        assert_eq!(s.hostname().as_deref(), Some("abc123"));
        let l = s.linux().as_ref().unwrap();
        assert_eq!(l.masked_paths().as_ref().unwrap().len(), MASKED_PATHS.len());
        assert_eq!(
            l.readonly_paths().as_ref().unwrap().len(),
            READONLY_PATHS.len()
        );
        assert!(l.seccomp().is_some());
        assert_eq!(l.rootfs_propagation().as_deref(), Some("private"));
        assert_eq!(
            l.cgroups_path().as_deref(),
            Some(std::path::Path::new("/berth/x"))
        );
        assert_eq!(l.devices().as_ref().unwrap().len(), 6);
        let rules = res(&s).devices().as_ref().unwrap();
        assert!(!rules[0].allow());
        assert!(rules
            .iter()
            .any(|r| r.allow() && r.major() == Some(136) && r.minor().is_none()));
        let dests: Vec<String> = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm"
            ]
        );
        let shm = &s.mounts().as_ref().unwrap()[6];
        assert!(shm
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=67108864".to_string()));
        let cg = &s.mounts().as_ref().unwrap()[4];
        assert!(cg.options().as_ref().unwrap().contains(&"ro".to_string()));
    }

    #[test]
    fn caps_cases() {
        // (cap_add, cap_drop, privileged, expected mask)
        let h = host();
        let host_mask = cap_mask(&h.bounding_caps);
        let cases: Vec<(Vec<&str>, Vec<&str>, bool, u64)> = vec![
            (vec![], vec![], false, 0xa80425fb),
            (vec!["NET_ADMIN"], vec![], false, 0xa80425fb | 1 << 12),
            (vec![], vec!["all"], false, 0),
            (vec!["chown"], vec!["ALL"], false, 1),
            (vec!["ALL"], vec![], false, host_mask),
            // Asking for a capability the host lacks yields what the host has.
            (vec!["sys_resource"], vec![], false, 0xa80425fb),
            (vec![], vec![], true, host_mask),
            (vec![], vec!["all"], true, host_mask),
        ];
        for (add, drop, privileged, want) in cases {
            let i = SpecInput {
                cap_add: add.iter().map(|s| s.to_string()).collect(),
                cap_drop: drop.iter().map(|s| s.to_string()).collect(),
                privileged,
                ..input()
            };
            let s = build_spec(&i, &h).unwrap();
            assert_eq!(
                cap_mask(&eff(&s)),
                want,
                "add {add:?} drop {drop:?} priv {privileged}"
            );
        }
        let bad = SpecInput {
            cap_add: vec!["foo".into()],
            ..input()
        };
        assert_eq!(
            build_spec(&bad, &h).unwrap_err().to_string(),
            "unknown capability: \"CAP_FOO\""
        );
    }

    #[test]
    fn privileged() {
        let i = SpecInput {
            privileged: true,
            ..input()
        };
        let s = build_spec(&i, &host()).unwrap();
        let l = s.linux().as_ref().unwrap();
        assert!(l.masked_paths().as_ref().unwrap().is_empty());
        assert!(l.readonly_paths().as_ref().unwrap().is_empty());
        assert!(l.seccomp().is_none());
        let rules = res(&s).devices().as_ref().unwrap();
        assert_eq!(rules.len(), 1);
        assert!(rules[0].allow());
        assert_eq!(rules[0].typ(), Some(LinuxDeviceType::A));
        for m in s.mounts().as_ref().unwrap() {
            if m.destination() == std::path::Path::new("/sys/fs/cgroup")
                || m.destination() == std::path::Path::new("/sys")
            {
                assert!(!m.options().as_ref().unwrap().contains(&"ro".to_string()));
            }
        }
        assert!(!eff(&s).contains(&Capability::SysResource));
        assert!(eff(&s).contains(&Capability::SysAdmin));
    }

    #[test]
    fn seccomp_unconfined_and_caps_follow() {
        let i = SpecInput {
            seccomp_unconfined: true,
            ..input()
        };
        let s = build_spec(&i, &host()).unwrap();
        assert!(s.linux().as_ref().unwrap().seccomp().is_none());
        // The profile follows the effective caps: SYS_ADMIN opens mount.
        let i = SpecInput {
            cap_add: vec!["SYS_ADMIN".into()],
            ..input()
        };
        let s = build_spec(&i, &host()).unwrap();
        let sc = s.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        assert!(sc
            .syscalls()
            .iter()
            .flatten()
            .any(|r| r.names().iter().any(|n| n == "mount")));
    }

    #[test]
    fn memory_cases() {
        const M: i64 = 64 * 1024 * 1024;
        // (memory, swap, reservation) → Ok((limit, swap, reservation)) or Err(substring)
        type Want = Result<(Option<i64>, Option<i64>, Option<i64>), &'static str>;
        let cases: Vec<(i64, i64, i64, Want)> = vec![
            (0, 0, 0, Ok((None, None, None))),
            (M, 0, 0, Ok((Some(M), Some(2 * M), None))),
            (M, -1, 0, Ok((Some(M), Some(-1), None))),
            (M, 3 * M, 0, Ok((Some(M), Some(3 * M), None))),
            (M, M, 0, Ok((Some(M), Some(M), None))),
            (M, 0, M / 2, Ok((Some(M), Some(2 * M), Some(M / 2)))),
            (0, 0, M, Ok((None, None, Some(M)))),
            (1024, 0, 0, Err("Minimum memory limit allowed is 6MB")),
            (0, M, 0, Err("always set the Memory limit")),
            (M, M / 2, 0, Err("memoryswap limit should be larger")),
            (M, 0, 2 * M, Err("memory reservation")),
        ];
        for (memory, memory_swap, memory_reservation, want) in cases {
            let i = SpecInput {
                memory,
                memory_swap,
                memory_reservation,
                ..input()
            };
            match (build_spec(&i, &host()), want) {
                (Ok(s), Ok((limit, swap, reservation))) => {
                    let m = res(&s).memory();
                    assert_eq!(m.as_ref().and_then(|m| m.limit()), limit, "{memory}");
                    assert_eq!(m.as_ref().and_then(|m| m.swap()), swap, "{memory}");
                    assert_eq!(m.as_ref().and_then(|m| m.reservation()), reservation);
                }
                (Err(e), Err(sub)) => assert!(e.to_string().contains(sub), "{e}"),
                (got, want) => panic!("{memory}/{memory_swap}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn cpu_cases() {
        struct Case {
            nano: i64,
            shares: i64,
            quota: i64,
            period: i64,
            cpuset: &'static str,
            want: Want,
        }
        type Want = Result<(Option<u64>, Option<i64>, Option<u64>), &'static str>;
        let c = |nano, shares, quota, period, cpuset, want| Case {
            nano,
            shares,
            quota,
            period,
            cpuset,
            want,
        };
        let cases = vec![
            c(0, 0, 0, 0, "", Ok((None, None, None))),
            c(
                1_500_000_000,
                0,
                0,
                0,
                "",
                Ok((None, Some(150_000), Some(100_000))),
            ),
            c(
                500_000_000,
                512,
                0,
                0,
                "0-1",
                Ok((Some(512), Some(50_000), Some(100_000))),
            ),
            c(
                0,
                0,
                50_000,
                100_000,
                "",
                Ok((None, Some(50_000), Some(100_000))),
            ),
            c(0, 1024, 0, 0, "", Ok((Some(1024), None, None))),
            c(
                1_000_000_000,
                0,
                50_000,
                0,
                "",
                Err("Nano CPUs and CPU Quota cannot both be set"),
            ),
            c(
                1_000_000_000,
                0,
                0,
                100_000,
                "",
                Err("Nano CPUs and CPU Period cannot both be set"),
            ),
            c(
                5_000_000,
                0,
                0,
                0,
                "",
                Err("Range of CPUs is from 0.01 to 4.00"),
            ),
            c(5_000_000_000, 0, 0, 0, "", Err("Range of CPUs")),
            c(0, 0, 0, 100, "", Err("CPU cfs period")),
            c(0, 0, 10, 0, "", Err("CPU cfs quota")),
        ];
        for k in cases {
            let i = SpecInput {
                nano_cpus: k.nano,
                cpu_shares: k.shares,
                cpu_quota: k.quota,
                cpu_period: k.period,
                cpuset_cpus: k.cpuset.into(),
                ..input()
            };
            match (build_spec(&i, &host()), k.want) {
                (Ok(s), Ok((shares, quota, period))) => {
                    let cpu = res(&s).cpu();
                    assert_eq!(cpu.as_ref().and_then(|c| c.shares()), shares, "{}", k.nano);
                    assert_eq!(cpu.as_ref().and_then(|c| c.quota()), quota, "{}", k.nano);
                    assert_eq!(cpu.as_ref().and_then(|c| c.period()), period, "{}", k.nano);
                    let cpus = cpu
                        .as_ref()
                        .and_then(|c| c.cpus().clone())
                        .unwrap_or_default();
                    assert_eq!(cpus, k.cpuset);
                }
                (Err(e), Err(sub)) => assert!(e.to_string().contains(sub), "{e}"),
                (got, want) => panic!("nano {}: got {got:?}, want {want:?}", k.nano),
            }
        }
    }

    #[test]
    fn pids_cases() {
        for (limit, want) in [
            (None, None),
            (Some(0), None),
            (Some(-1), None),
            (Some(100), Some(100)),
        ] {
            let i = SpecInput {
                pids_limit: limit,
                ..input()
            };
            let s = build_spec(&i, &host()).unwrap();
            assert_eq!(
                res(&s).pids().as_ref().map(|p| p.limit()),
                want,
                "{limit:?}"
            );
        }
    }

    #[test]
    fn ulimit_cases() {
        let u = |name: &str, soft, hard| Ulimit {
            name: name.into(),
            soft,
            hard,
        };
        // (ulimits, Ok([(type, soft, hard)]) or Err(message))
        type Want = Result<Vec<(PosixRlimitType, u64, u64)>, &'static str>;
        let cases: Vec<(Vec<Ulimit>, Want)> = vec![
            (vec![], Ok(vec![])),
            (
                vec![u("nofile", 1024, 2048)],
                Ok(vec![(PosixRlimitType::RlimitNofile, 1024, 2048)]),
            ),
            // Clamped under the host's 20000.
            (
                vec![u("nofile", 1024, 1_048_576)],
                Ok(vec![(PosixRlimitType::RlimitNofile, 1024, 20000)]),
            ),
            (
                vec![u("nofile", 65536, 65536)],
                Ok(vec![(PosixRlimitType::RlimitNofile, 20000, 20000)]),
            ),
            (
                vec![u("core", -1, -1)],
                Ok(vec![(PosixRlimitType::RlimitCore, u64::MAX, u64::MAX)]),
            ),
            (
                vec![u("nproc", 10, 20), u("nproc", 5, 6)],
                Ok(vec![(PosixRlimitType::RlimitNproc, 5, 6)]),
            ),
            (
                vec![u("nofile", 10, 5)],
                Err("ulimit soft limit must be less than or equal to hard limit: 10 > 5"),
            ),
            (vec![u("bogus", 1, 1)], Err("invalid ulimit type: bogus")),
        ];
        for (ulimits, want) in cases {
            let i = SpecInput {
                ulimits: ulimits.clone(),
                ..input()
            };
            match (build_spec(&i, &host()), want) {
                (Ok(s), Ok(want)) => {
                    let got: Vec<_> = s
                        .process()
                        .as_ref()
                        .unwrap()
                        .rlimits()
                        .iter()
                        .flatten()
                        .map(|r| (r.typ(), r.soft(), r.hard()))
                        .collect();
                    assert_eq!(got, want, "{ulimits:?}");
                }
                (Err(e), Err(msg)) => {
                    assert!(matches!(e, SpecError::InvalidUlimit(_)));
                    assert_eq!(e.to_string(), msg);
                }
                (got, want) => panic!("{ulimits:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn namespace_cases() {
        let cases = [
            (NetNs::New, Some(None)),
            (NetNs::Host, None),
            (
                NetNs::Path("/run/berth/netns/x".into()),
                Some(Some(PathBuf::from("/run/berth/netns/x"))),
            ),
        ];
        for (netns, want) in cases {
            let i = SpecInput {
                netns: netns.clone(),
                ..input()
            };
            let s = build_spec(&i, &host()).unwrap();
            let ns = s.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
            let mut types: Vec<LinuxNamespaceType> = ns.iter().map(|n| n.typ()).collect();
            let before = types.len();
            types.dedup();
            assert_eq!(types.len(), before, "unique");
            for t in [
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Uts,
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::Cgroup,
            ] {
                assert!(types.contains(&t), "{t:?}");
            }
            let net = ns
                .iter()
                .find(|n| n.typ() == LinuxNamespaceType::Network)
                .map(|n| n.path().clone());
            assert_eq!(net, want, "{netns:?}");
        }
    }

    #[test]
    fn bind_mounts_and_shm() {
        let i = SpecInput {
            shm_size: 1 << 20,
            readonly_rootfs: true,
            mounts: vec![
                BindMount {
                    source: "/var/lib/berth/containers/x/hosts".into(),
                    destination: "/etc/hosts".into(),
                    readonly: false,
                },
                BindMount {
                    source: "/data".into(),
                    destination: "/data".into(),
                    readonly: true,
                },
            ],
            ..input()
        };
        let s = build_spec(&i, &host()).unwrap();
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
        let ms = s.mounts().as_ref().unwrap();
        let shm = ms
            .iter()
            .find(|m| m.destination() == std::path::Path::new("/dev/shm"))
            .unwrap();
        assert!(shm
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=1048576".to_string()));
        let data = ms.last().unwrap();
        assert_eq!(data.typ().as_deref(), Some("bind"));
        assert_eq!(
            data.options().as_ref().unwrap(),
            &["rbind", "rprivate", "ro"]
        );
        let hosts = &ms[ms.len() - 2];
        assert_eq!(hosts.options().as_ref().unwrap(), &["rbind", "rprivate"]);

        // A bind on /dev/shm replaces the tmpfs.
        let i = SpecInput {
            mounts: vec![BindMount {
                source: "/tmp/shm".into(),
                destination: "/dev/shm".into(),
                readonly: false,
            }],
            ..input()
        };
        let s = build_spec(&i, &host()).unwrap();
        let shm: Vec<_> = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|m| m.destination() == std::path::Path::new("/dev/shm"))
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0].typ().as_deref(), Some("bind"));
    }

    #[test]
    fn argument_errors() {
        let cases = [
            (
                SpecInput {
                    args: vec![],
                    ..input()
                },
                "no command specified",
            ),
            (
                SpecInput {
                    cwd: "rel".into(),
                    ..input()
                },
                "needs to be an absolute path",
            ),
            (
                SpecInput {
                    cgroups_path: "berth/x".into(),
                    ..input()
                },
                "cgroups path must be absolute",
            ),
            (
                SpecInput {
                    shm_size: -1,
                    ..input()
                },
                "SHM size",
            ),
        ];
        for (i, want) in cases {
            let e = build_spec(&i, &host()).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    #[test]
    fn json_round_trip_and_libcontainer_validation() {
        let mut sysctls = BTreeMap::new();
        sysctls.insert("net.ipv4.ip_forward".to_string(), "1".to_string());
        let i = SpecInput {
            tty: true,
            uid: 1000,
            gid: 1000,
            additional_gids: vec![10, 20],
            memory: 128 << 20,
            nano_cpus: 500_000_000,
            pids_limit: Some(50),
            ulimits: vec![Ulimit {
                name: "nofile".into(),
                soft: 100,
                hard: 200,
            }],
            oom_score_adj: Some(500),
            no_new_privileges: true,
            sysctls,
            ..input()
        };
        let s = build_spec(&i, &host()).unwrap();
        let json = serde_json::to_string_pretty(&s).unwrap();
        let back: Spec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let p = back.process().as_ref().unwrap();
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.user().uid(), 1000);
        assert_eq!(
            p.user().additional_gids().as_deref(),
            Some(&[10u32, 20][..])
        );
        assert_eq!(p.oom_score_adj(), Some(500));
        assert_eq!(p.no_new_privileges(), Some(true));
        let p = build_spec(
            &SpecInput {
                no_new_privileges: false,
                ..input()
            },
            &host(),
        )
        .unwrap();
        assert_eq!(
            p.process().as_ref().unwrap().no_new_privileges(),
            None,
            "absent, not false: libcontainer keys on presence"
        );
        // The names in config.json are the OCI ones.
        assert!(json.contains("\"CAP_CHOWN\""));
        assert!(json.contains("\"SCMP_ACT_ERRNO\""));
        assert!(json.contains("\"rootfsPropagation\": \"private\""));
        // libcontainer's own checks (namespaces for hostname, sysctls, …) accept it.
        libcontainer::validator::Validator::validate_spec(&back).unwrap();
        // Host network: net.* sysctls are refused by libcontainer, as by Docker.
        let host_net = SpecInput {
            netns: NetNs::Host,
            ..i
        };
        let s = build_spec(&host_net, &host()).unwrap();
        assert!(libcontainer::validator::Validator::validate_spec(&s).is_err());
    }

    #[test]
    fn detect_reads_host() {
        let h = HostFacts::detect();
        assert!(!h.bounding_caps.is_empty());
        assert!(h.nofile_hard > 0);
        let s = build_spec(&input(), &h).unwrap();
        // The default set is a subset of any root's bounding set here.
        assert_eq!(cap_mask(&eff(&s)) & !cap_mask(&default_caps()), 0);
    }
}
