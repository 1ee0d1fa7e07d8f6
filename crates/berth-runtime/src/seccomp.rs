//! Docker's default seccomp profile (moby `profiles/seccomp/default.json`), resolved for one
//! container's capability set into an OCI `LinuxSeccomp`.
//!
//! Syscall names the installed libseccomp does not know (newer than it) are left in: libcontainer
//! skips names it cannot resolve (with a warning), as runc does, so the profile stays Docker's on
//! newer hosts without failing on older ones.

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

/// The `errno` a denied syscall returns (EPERM), as Docker's `defaultErrnoRet`.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// Namespace flags of `clone(2)`: clone is allowed without CAP_SYS_ADMIN only when none is set.
/// CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7e02_0000;

/// One argument condition of a rule.
#[derive(Clone, Copy)]
struct Cond {
    index: usize,
    value: u64,
    op: LinuxSeccompOperator,
}

/// What a rule does when it applies.
#[derive(Clone, Copy)]
enum Act {
    Allow,
    Errno(u32),
}

/// One entry of the profile, with Docker's `includes`/`excludes` filters.
struct Rule {
    names: &'static [&'static str],
    act: Act,
    args: &'static [Cond],
    /// Included only if the container has every one of these capabilities.
    with_caps: &'static [Capability],
    /// Excluded if the container has any of these capabilities.
    without_caps: &'static [Capability],
    /// Included only on these architectures (Go `GOARCH` names, as the profile uses); empty = all.
    arches: &'static [&'static str],
    /// Excluded on these architectures.
    not_arches: &'static [&'static str],
}

const fn allow(names: &'static [&'static str]) -> Rule {
    Rule {
        names,
        act: Act::Allow,
        args: &[],
        with_caps: &[],
        without_caps: &[],
        arches: &[],
        not_arches: &[],
    }
}

const fn allow_with(names: &'static [&'static str], caps: &'static [Capability]) -> Rule {
    Rule {
        with_caps: caps,
        ..allow(names)
    }
}

const fn allow_on(names: &'static [&'static str], arches: &'static [&'static str]) -> Rule {
    Rule {
        arches,
        ..allow(names)
    }
}

const fn personality(value: u64) -> Rule {
    Rule {
        args: match value {
            0 => &[Cond {
                index: 0,
                value: 0,
                op: LinuxSeccompOperator::ScmpCmpEq,
            }],
            0x8 => &[Cond {
                index: 0,
                value: 0x8,
                op: LinuxSeccompOperator::ScmpCmpEq,
            }],
            0x20000 => &[Cond {
                index: 0,
                value: 0x20000,
                op: LinuxSeccompOperator::ScmpCmpEq,
            }],
            0x20008 => &[Cond {
                index: 0,
                value: 0x20008,
                op: LinuxSeccompOperator::ScmpCmpEq,
            }],
            _ => &[Cond {
                index: 0,
                value: 0xffff_ffff,
                op: LinuxSeccompOperator::ScmpCmpEq,
            }],
        },
        ..allow(&["personality"])
    }
}

/// Syscalls every container may make (Docker's unconditional allow list).
const ALWAYS: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// The whole profile, in Docker's order.
const RULES: &[Rule] = &[
    allow(ALWAYS),
    // Docker gates these on kernel >= 4.8 (ptrace could bypass seccomp before); every kernel
    // berth supports is newer.
    allow(&["process_vm_readv", "process_vm_writev", "ptrace"]),
    // Any socket family except AF_VSOCK (40).
    Rule {
        args: &[Cond {
            index: 0,
            value: 40,
            op: LinuxSeccompOperator::ScmpCmpNe,
        }],
        ..allow(&["socket"])
    },
    // PER_LINUX, UNAME26, PER_LINUX32, UNAME26|PER_LINUX32, and the query value 0xffffffff.
    personality(0),
    personality(0x8),
    personality(0x20000),
    personality(0x20008),
    personality(0xffff_ffff),
    allow_on(&["sync_file_range2", "swapcontext"], &["ppc64le"]),
    allow_on(
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        &["arm", "arm64"],
    ),
    allow_on(&["arch_prctl"], &["amd64", "x32"]),
    allow_on(&["modify_ldt"], &["amd64", "x32", "x86"]),
    allow_on(
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        &["s390", "s390x"],
    ),
    allow_on(&["riscv_flush_icache"], &["riscv64"]),
    allow_with(&["open_by_handle_at"], &[Capability::DacReadSearch]),
    allow_with(
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        &[Capability::SysAdmin],
    ),
    // Without CAP_SYS_ADMIN, clone only when it creates no namespace (flags are argument 0,
    // argument 1 on s390).
    Rule {
        args: &[Cond {
            index: 0,
            value: CLONE_NAMESPACE_FLAGS,
            op: LinuxSeccompOperator::ScmpCmpMaskedEq,
        }],
        without_caps: &[Capability::SysAdmin],
        not_arches: &["s390", "s390x"],
        ..allow(&["clone"])
    },
    Rule {
        args: &[Cond {
            index: 1,
            value: CLONE_NAMESPACE_FLAGS,
            op: LinuxSeccompOperator::ScmpCmpMaskedEq,
        }],
        without_caps: &[Capability::SysAdmin],
        arches: &["s390", "s390x"],
        ..allow(&["clone"])
    },
    // clone3's flags live in memory seccomp cannot inspect: ENOSYS makes libc fall back to clone.
    Rule {
        act: Act::Errno(libc::ENOSYS as u32),
        without_caps: &[Capability::SysAdmin],
        ..allow(&["clone3"])
    },
    allow_with(&["reboot"], &[Capability::SysBoot]),
    allow_with(&["chroot"], &[Capability::SysChroot]),
    allow_with(
        &["delete_module", "init_module", "finit_module"],
        &[Capability::SysModule],
    ),
    allow_with(&["acct"], &[Capability::SysPacct]),
    allow_with(
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        &[Capability::SysPtrace],
    ),
    allow_with(&["iopl", "ioperm"], &[Capability::SysRawio]),
    allow_with(
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        &[Capability::SysTime],
    ),
    allow_with(&["vhangup"], &[Capability::SysTtyConfig]),
    allow_with(
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        &[Capability::SysNice],
    ),
    allow_with(&["syslog"], &[Capability::Syslog]),
    allow_with(&["bpf"], &[Capability::Bpf]),
    allow_with(&["perf_event_open"], &[Capability::Perfmon]),
];

/// The Go `GOARCH` name of the architecture berth was built for (what the profile's
/// `arches` filters compare against, as Docker compares `runtime.GOARCH`).
fn native_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else if cfg!(target_arch = "x86") {
        "x86"
    } else if cfg!(target_arch = "arm") {
        "arm"
    } else if cfg!(target_arch = "s390x") {
        "s390x"
    } else if cfg!(target_arch = "riscv64") {
        "riscv64"
    } else if cfg!(target_arch = "powerpc64") {
        "ppc64le"
    } else {
        "unknown"
    }
}

/// The seccomp architectures a filter must cover: the native one and its compat ABIs.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else if cfg!(target_arch = "s390x") {
        vec![Arch::ScmpArchS390x, Arch::ScmpArchS390]
    } else if cfg!(target_arch = "riscv64") {
        vec![Arch::ScmpArchRiscv64]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

impl Rule {
    fn applies(&self, caps: &[Capability], arch: &str) -> bool {
        self.with_caps.iter().all(|c| caps.contains(c))
            && !self.without_caps.iter().any(|c| caps.contains(c))
            && (self.arches.is_empty() || self.arches.contains(&arch))
            && !self.not_arches.contains(&arch)
    }

    fn to_oci(&self) -> LinuxSyscall {
        let mut sc = LinuxSyscall::default();
        sc.set_names(self.names.iter().map(|s| s.to_string()).collect());
        match self.act {
            Act::Allow => {
                sc.set_action(LinuxSeccompAction::ScmpActAllow);
            }
            Act::Errno(e) => {
                sc.set_action(LinuxSeccompAction::ScmpActErrno);
                sc.set_errno_ret(Some(e));
            }
        }
        if !self.args.is_empty() {
            sc.set_args(Some(self.args.iter().map(|c| c.to_oci()).collect()));
        }
        sc
    }
}

impl Cond {
    fn to_oci(self) -> LinuxSeccompArg {
        let b = LinuxSeccompArgBuilder::default()
            .index(self.index)
            .op(self.op);
        let b = if self.op == LinuxSeccompOperator::ScmpCmpMaskedEq {
            let (value, value_two) = masked_eq_encoding(self.value);
            b.value(value).value_two(value_two)
        } else {
            b.value(self.value)
        };
        b.build().expect("every field of a seccomp argument is set")
    }
}

/// The `(value, valueTwo)` pair for "(arg & mask) == 0" as libcontainer 0.7 reads it.
///
/// The OCI convention (Docker's JSON, runc, crun) is `value` = mask, `valueTwo` = expected.
/// libcontainer 0.7 hands libseccomp `valueTwo` as the mask and `value` as the datum, and
/// libseccomp masks the datum too, so Docker's encoding becomes `(arg & 0) == 0`: clone with
/// any namespace flag allowed. berth runs containers with libcontainer, so it writes the pair
/// swapped; `clone_filter_under_libcontainer` checks the result. Under runc this pair would
/// degrade the same way (clone always allowed), never deny a plain fork.
fn masked_eq_encoding(mask: u64) -> (u64, u64) {
    (0, mask)
}

/// Docker's default seccomp profile for a container with effective capabilities `caps`:
/// deny with EPERM by default, allow Docker's list, and open the capability-gated groups only
/// for the capabilities the container holds.
pub fn default_profile(caps: &[Capability]) -> LinuxSeccomp {
    let arch = native_arch();
    let syscalls: Vec<LinuxSyscall> = RULES
        .iter()
        .filter(|r| r.applies(caps, arch))
        .map(Rule::to_oci)
        .collect();
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(DEFAULT_ERRNO));
    profile.set_architectures(Some(architectures()));
    profile.set_syscalls(Some(syscalls));
    profile
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::{all_caps, default_caps};

    /// Every syscall name the profile allows unconditionally (no argument filter).
    fn allowed(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .iter()
            .flatten()
            .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect()
    }

    fn mentioned(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn default_action_and_arches() {
        let p = default_profile(&default_caps());
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
    }

    #[test]
    fn syscall_sets_per_caps() {
        let with = |extra: &[Capability]| {
            let mut c = default_caps();
            c.extend_from_slice(extra);
            allowed(&default_profile(&c))
        };
        let has = |list: &Vec<String>, n: &str| list.iter().any(|s| s == n);
        // (syscall, extra caps, expected allowed)
        let cases: &[(&str, &[Capability], bool)] = &[
            ("read", &[], true),
            ("write", &[], true),
            ("execve", &[], true),
            ("ptrace", &[], true),
            ("chroot", &[], true), // CAP_SYS_CHROOT is a default cap
            ("reboot", &[], false),
            ("reboot", &[Capability::SysBoot], true),
            ("mount", &[], false),
            ("mount", &[Capability::SysAdmin], true),
            ("unshare", &[], false),
            ("unshare", &[Capability::SysAdmin], true),
            ("clone", &[Capability::SysAdmin], true),
            ("clone3", &[Capability::SysAdmin], true),
            ("settimeofday", &[], false),
            ("settimeofday", &[Capability::SysTime], true),
            ("init_module", &[Capability::SysModule], true),
            ("bpf", &[], false),
            ("bpf", &[Capability::Bpf], true),
            ("perf_event_open", &[Capability::Perfmon], true),
            ("syslog", &[Capability::Syslog], true),
            ("kcmp", &[Capability::SysPtrace], true),
            ("iopl", &[Capability::SysRawio], true),
            ("vhangup", &[Capability::SysTtyConfig], true),
            ("mbind", &[Capability::SysNice], true),
            ("acct", &[Capability::SysPacct], true),
            ("open_by_handle_at", &[], false),
            ("open_by_handle_at", &[Capability::DacReadSearch], true),
            ("kexec_load", &[], false),
        ];
        for (name, extra, want) in cases {
            assert_eq!(has(&with(extra), name), *want, "{name} with {extra:?}");
        }
        #[cfg(target_arch = "x86_64")]
        {
            assert!(has(&with(&[]), "arch_prctl"));
            assert!(!has(&with(&[]), "set_tls"));
        }
    }

    #[test]
    fn clone_rules() {
        let p = default_profile(&default_caps());
        let clones: Vec<&LinuxSyscall> = p
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names().iter().any(|n| n == "clone" || n == "clone3"))
            .collect();
        assert_eq!(clones.len(), 2, "one masked clone rule and clone3 ENOSYS");
        let clone = clones.iter().find(|s| s.names() == &["clone"]).unwrap();
        let arg = clone.args().as_ref().unwrap()[0];
        assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(arg.index(), 0);
        let clone3 = clones.iter().find(|s| s.names() == &["clone3"]).unwrap();
        assert_eq!(clone3.action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3.errno_ret(), Some(38));

        // With CAP_SYS_ADMIN neither conditional rule is there.
        let mut caps = default_caps();
        caps.push(Capability::SysAdmin);
        let p = default_profile(&caps);
        for s in p.syscalls().iter().flatten() {
            if s.names().iter().any(|n| n == "clone" || n == "clone3") {
                assert_eq!(s.action(), LinuxSeccompAction::ScmpActAllow);
                assert!(s.args().is_none());
            }
        }
    }

    #[test]
    fn personality_rules() {
        let p = default_profile(&default_caps());
        let mut values: Vec<u64> = p
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names() == &["personality"])
            .map(|s| s.args().as_ref().unwrap()[0].value())
            .collect();
        values.sort_unstable();
        assert_eq!(values, vec![0, 0x8, 0x20000, 0x20008, 0xffff_ffff]);
    }

    /// Names the installed libseccomp (2.5.4 on Debian bookworm) may not know yet. libcontainer
    /// skips them; any other unresolvable name is a typo and fails the test.
    const NEWER_THAN_LIBSECCOMP: &[&str] = &[
        "epoll_pwait2",
        "futex_waitv",
        "landlock_add_rule",
        "landlock_create_ruleset",
        "landlock_restrict_self",
        "memfd_secret",
        "mount_setattr",
        "process_mrelease",
        "quotactl_fd",
        "set_mempolicy_home_node",
        "close_range",
        "faccessat2",
        "openat2",
        "pidfd_getfd",
        "process_madvise",
        "clone3",
    ];

    #[test]
    fn names_resolve_with_libseccomp() {
        let p = default_profile(&all_caps());
        let mut unknown = Vec::new();
        for name in mentioned(&p) {
            if libseccomp::ScmpSyscall::from_name(&name).is_err() {
                unknown.push(name);
            }
        }
        for n in &unknown {
            assert!(
                NEWER_THAN_LIBSECCOMP.contains(&n.as_str()),
                "syscall {n} unknown to libseccomp and not a known newer syscall"
            );
        }
    }

    #[test]
    fn compiles_with_libseccomp() {
        use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
        for caps in [default_caps(), all_caps(), vec![]] {
            let p = default_profile(&caps);
            let mut ctx = ScmpFilterContext::new(ScmpAction::Errno(1)).unwrap();
            for a in p.architectures().iter().flatten() {
                let arch = match a {
                    Arch::ScmpArchX86_64 => libseccomp::ScmpArch::X8664,
                    Arch::ScmpArchX86 => libseccomp::ScmpArch::X86,
                    Arch::ScmpArchX32 => libseccomp::ScmpArch::X32,
                    Arch::ScmpArchAarch64 => libseccomp::ScmpArch::Aarch64,
                    Arch::ScmpArchArm => libseccomp::ScmpArch::Arm,
                    _ => libseccomp::ScmpArch::Native,
                };
                ctx.add_arch(arch).unwrap();
            }
            for s in p.syscalls().iter().flatten() {
                let action = match s.action() {
                    LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
                    _ => ScmpAction::Errno(s.errno_ret().unwrap_or(1) as i32),
                };
                for name in s.names() {
                    let Ok(sc) = libseccomp::ScmpSyscall::from_name(name) else {
                        continue;
                    };
                    let conds: Vec<ScmpArgCompare> = s
                        .args()
                        .iter()
                        .flatten()
                        .map(|a| {
                            // libcontainer's translation: valueTwo is the mask, value the datum.
                            let op = match a.op() {
                                LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                                LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
                                LinuxSeccompOperator::ScmpCmpMaskedEq => {
                                    ScmpCompareOp::MaskedEqual(a.value_two().unwrap_or(0))
                                }
                                other => panic!("unexpected op {other:?}"),
                            };
                            ScmpArgCompare::new(a.index() as u32, op, a.value())
                        })
                        .collect();
                    ctx.add_rule_conditional(action, sc, &conds)
                        .unwrap_or_else(|e| panic!("rule for {name}: {e}"));
                }
            }
            // Generating the BPF program proves libseccomp accepted the whole filter.
            let sink = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .unwrap();
            ctx.export_bpf(&sink).unwrap();
        }
    }

    /// Loads the profile with libcontainer's own code in a forked child and checks it behaves:
    /// fork works, a namespace-creating clone is refused with EPERM, clone3 gets ENOSYS, reboot
    /// EPERM.
    #[test]
    fn clone_filter_under_libcontainer() {
        let p = default_profile(&default_caps());
        // SAFETY: the child only makes syscalls and allocates before _exit; the test harness's
        // other threads do not hold the allocator lock at fork in practice (glibc resets it).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = (|| {
                // SAFETY: plain prctl.
                if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                    return 10;
                }
                if libcontainer::seccomp::initialize_seccomp(&p).is_err() {
                    return 11;
                }
                // A plain fork (clone with SIGCHLD only) must be allowed.
                // SAFETY: raw clone without a new stack behaves like fork.
                let child = unsafe {
                    libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0)
                };
                if child == 0 {
                    // SAFETY: leave the grandchild at once.
                    unsafe { libc::_exit(0) };
                }
                if child < 0 {
                    return 12;
                }
                let mut st = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(child as libc::pid_t, &mut st, 0) };
                // A clone asking for a new network namespace must be refused.
                // SAFETY: as above; it must fail before creating anything.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_clone,
                        (libc::SIGCHLD | libc::CLONE_NEWNET) as libc::c_long,
                        0,
                        0,
                        0,
                        0,
                    )
                };
                if r == 0 {
                    // SAFETY: leave the grandchild at once.
                    unsafe { libc::_exit(0) };
                }
                if r > 0 {
                    return 13;
                }
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
                    return 14;
                }
                // clone3 answers ENOSYS so libc falls back to clone.
                // SAFETY: a null args pointer; the filter answers before the kernel reads it.
                let r = unsafe { libc::syscall(libc::SYS_clone3, 0usize, 0usize) };
                if r != -1 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
                    return 15;
                }
                // reboot is filtered without CAP_SYS_BOOT: EPERM, where the kernel alone would
                // say EINVAL to these bad magic numbers (and never reboot).
                // SAFETY: invalid magic, so the kernel cannot act on it.
                let r = unsafe { libc::syscall(libc::SYS_reboot, 0, 0, 0, 0usize) };
                if r != -1 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
                    return 16;
                }
                0
            })();
            // SAFETY: leave the forked test child without running the harness.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child we forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "child died: {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "see the codes in the child");
    }
}
