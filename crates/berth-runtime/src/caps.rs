//! Linux capabilities as Docker handles them: the default set, `--cap-add`/`--cap-drop`
//! (including `ALL`), and the host's bounding set, which caps what a container may be given.

use oci_spec::runtime::Capability;

use crate::spec::SpecError;

/// Every capability oci-spec knows, with its kernel number and canonical `CAP_` name.
const CAPS: &[(Capability, u32, &str)] = &[
    (Capability::Chown, 0, "CAP_CHOWN"),
    (Capability::DacOverride, 1, "CAP_DAC_OVERRIDE"),
    (Capability::DacReadSearch, 2, "CAP_DAC_READ_SEARCH"),
    (Capability::Fowner, 3, "CAP_FOWNER"),
    (Capability::Fsetid, 4, "CAP_FSETID"),
    (Capability::Kill, 5, "CAP_KILL"),
    (Capability::Setgid, 6, "CAP_SETGID"),
    (Capability::Setuid, 7, "CAP_SETUID"),
    (Capability::Setpcap, 8, "CAP_SETPCAP"),
    (Capability::LinuxImmutable, 9, "CAP_LINUX_IMMUTABLE"),
    (Capability::NetBindService, 10, "CAP_NET_BIND_SERVICE"),
    (Capability::NetBroadcast, 11, "CAP_NET_BROADCAST"),
    (Capability::NetAdmin, 12, "CAP_NET_ADMIN"),
    (Capability::NetRaw, 13, "CAP_NET_RAW"),
    (Capability::IpcLock, 14, "CAP_IPC_LOCK"),
    (Capability::IpcOwner, 15, "CAP_IPC_OWNER"),
    (Capability::SysModule, 16, "CAP_SYS_MODULE"),
    (Capability::SysRawio, 17, "CAP_SYS_RAWIO"),
    (Capability::SysChroot, 18, "CAP_SYS_CHROOT"),
    (Capability::SysPtrace, 19, "CAP_SYS_PTRACE"),
    (Capability::SysPacct, 20, "CAP_SYS_PACCT"),
    (Capability::SysAdmin, 21, "CAP_SYS_ADMIN"),
    (Capability::SysBoot, 22, "CAP_SYS_BOOT"),
    (Capability::SysNice, 23, "CAP_SYS_NICE"),
    (Capability::SysResource, 24, "CAP_SYS_RESOURCE"),
    (Capability::SysTime, 25, "CAP_SYS_TIME"),
    (Capability::SysTtyConfig, 26, "CAP_SYS_TTY_CONFIG"),
    (Capability::Mknod, 27, "CAP_MKNOD"),
    (Capability::Lease, 28, "CAP_LEASE"),
    (Capability::AuditWrite, 29, "CAP_AUDIT_WRITE"),
    (Capability::AuditControl, 30, "CAP_AUDIT_CONTROL"),
    (Capability::Setfcap, 31, "CAP_SETFCAP"),
    (Capability::MacOverride, 32, "CAP_MAC_OVERRIDE"),
    (Capability::MacAdmin, 33, "CAP_MAC_ADMIN"),
    (Capability::Syslog, 34, "CAP_SYSLOG"),
    (Capability::WakeAlarm, 35, "CAP_WAKE_ALARM"),
    (Capability::BlockSuspend, 36, "CAP_BLOCK_SUSPEND"),
    (Capability::AuditRead, 37, "CAP_AUDIT_READ"),
    (Capability::Perfmon, 38, "CAP_PERFMON"),
    (Capability::Bpf, 39, "CAP_BPF"),
    (Capability::CheckpointRestore, 40, "CAP_CHECKPOINT_RESTORE"),
];

/// Docker's default capability set (moby `oci.DefaultCapabilities`), in kernel-number order.
const DEFAULT: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::NetRaw,
    Capability::SysChroot,
    Capability::Mknod,
    Capability::AuditWrite,
    Capability::Setfcap,
];

/// Parses `net_admin`, `NET_ADMIN` or `CAP_NET_ADMIN` (any case) into a capability.
pub fn parse_cap(name: &str) -> Result<Capability, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    CAPS.iter()
        .find(|(_, _, n)| *n == full)
        .map(|(c, _, _)| *c)
        .ok_or(SpecError::InvalidCapability(full))
}

/// The canonical `CAP_…` name of a capability.
pub fn cap_name(cap: Capability) -> &'static str {
    CAPS.iter()
        .find(|(c, _, _)| *c == cap)
        .map(|(_, _, n)| *n)
        .unwrap_or("CAP_UNKNOWN")
}

/// The kernel's number for a capability (bit position in `CapEff` and friends).
pub fn cap_number(cap: Capability) -> u32 {
    CAPS.iter()
        .find(|(c, _, _)| *c == cap)
        .map(|(_, n, _)| *n)
        .unwrap_or(u32::MAX)
}

/// The capability with kernel number `n`, if oci-spec knows it.
pub fn cap_from_number(n: u32) -> Option<Capability> {
    CAPS.iter().find(|(_, k, _)| *k == n).map(|(c, _, _)| *c)
}

/// Every capability known here, in kernel-number order (what `ALL` expands to).
pub fn all_caps() -> Vec<Capability> {
    CAPS.iter().map(|(c, _, _)| *c).collect()
}

/// Docker's default capability set.
pub fn default_caps() -> Vec<Capability> {
    DEFAULT.to_vec()
}

/// The bitmask the kernel shows for a set in `/proc/<pid>/status` (`CapEff: 00000000a80425fb`).
pub fn cap_mask(caps: &[Capability]) -> u64 {
    caps.iter()
        .map(|c| cap_number(*c))
        .filter(|n| *n < 64)
        .fold(0u64, |m, n| m | (1u64 << n))
}

/// The capabilities whose bits are set in `mask`, in kernel-number order.
pub fn caps_from_mask(mask: u64) -> Vec<Capability> {
    CAPS.iter()
        .filter(|(_, n, _)| mask & (1u64 << n) != 0)
        .map(|(c, _, _)| *c)
        .collect()
}

/// Keeps the capabilities of `caps` that are also in `allowed`, without duplicates, in order.
pub fn intersect(caps: &[Capability], allowed: &[Capability]) -> Vec<Capability> {
    let mut out: Vec<Capability> = Vec::with_capacity(caps.len());
    for c in caps {
        if allowed.contains(c) && !out.contains(c) {
            out.push(*c);
        }
    }
    out
}

/// An add/drop list entry after normalisation: `ALL` or one capability.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tweak {
    All,
    One(Capability),
}

fn normalize(list: &[String]) -> Result<Vec<Tweak>, SpecError> {
    list.iter()
        .map(|s| {
            if s.trim().eq_ignore_ascii_case("ALL") {
                Ok(Tweak::All)
            } else {
                parse_cap(s).map(Tweak::One)
            }
        })
        .collect()
}

/// Applies `--cap-add`/`--cap-drop` to `base` with Docker's rules (moby
/// `caps.TweakCapabilities`): `add ALL` gives every capability except those dropped;
/// otherwise `drop ALL` gives exactly the added ones; otherwise drop from `base`, then add.
/// Names are validated even when the other list makes them moot, as Docker does.
pub fn tweak_caps(
    base: &[Capability],
    add: &[String],
    drop: &[String],
) -> Result<Vec<Capability>, SpecError> {
    if add.is_empty() && drop.is_empty() {
        return Ok(dedup(base.iter().copied()));
    }
    let drops = normalize(drop)?;
    let adds = normalize(add)?;
    let dropped = |c: &Capability| drops.contains(&Tweak::One(*c));
    let added = adds.iter().filter_map(|t| match t {
        Tweak::One(c) => Some(*c),
        Tweak::All => None,
    });
    let caps: Vec<Capability> = if adds.contains(&Tweak::All) {
        all_caps().into_iter().filter(|c| !dropped(c)).collect()
    } else if drops.contains(&Tweak::All) {
        added.collect()
    } else {
        base.iter()
            .copied()
            .filter(|c| !dropped(c))
            .chain(added)
            .collect()
    };
    Ok(dedup(caps.into_iter()))
}

fn dedup(caps: impl Iterator<Item = Capability>) -> Vec<Capability> {
    let mut out = Vec::new();
    for c in caps {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Parses the hex mask of a `CapBnd:` line from `/proc/<pid>/status`.
pub fn parse_cap_bnd(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// The capabilities in this process's bounding set: the most a container may be given.
/// Falls back to every known capability if `/proc/self/status` cannot be read.
pub fn host_bounding_caps() -> Vec<Capability> {
    match std::fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(parse_cap_bnd)
    {
        Some(mask) => caps_from_mask(mask),
        None => {
            tracing::warn!("cannot read CapBnd from /proc/self/status; assuming all capabilities");
            all_caps()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(caps: &[Capability]) -> Vec<&'static str> {
        let mut v: Vec<_> = caps.iter().map(|c| cap_name(*c)).collect();
        v.sort_unstable();
        v
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn table_is_consistent() {
        for (i, (c, n, name)) in CAPS.iter().enumerate() {
            assert_eq!(*n as usize, i, "{name}");
            assert_eq!(parse_cap(name).unwrap(), *c);
            // oci-spec serialises the same name we use.
            assert_eq!(serde_json::to_string(c).unwrap(), format!("\"{name}\""));
        }
    }

    #[test]
    fn default_mask_matches_docker() {
        assert_eq!(cap_mask(&default_caps()), 0xa80425fb);
        assert_eq!(
            format!("{:016x}", cap_mask(&default_caps())),
            "00000000a80425fb"
        );
    }

    #[test]
    fn cap_mask_cases() {
        let cases: &[(&[Capability], u64)] = &[
            (&[], 0),
            (&[Capability::Chown], 1),
            (&[Capability::SysAdmin], 1 << 21),
            (
                &[Capability::CheckpointRestore, Capability::Chown],
                (1 << 40) | 1,
            ),
            (&[Capability::Kill, Capability::Kill], 1 << 5),
        ];
        for (caps, want) in cases {
            assert_eq!(cap_mask(caps), *want, "{caps:?}");
        }
        assert_eq!(caps_from_mask(0xa80425fb), default_caps());
        assert_eq!(cap_mask(&all_caps()), 0x1ff_ffff_ffff);
    }

    #[test]
    fn parse_cap_cases() {
        let ok: &[(&str, Capability)] = &[
            ("net_admin", Capability::NetAdmin),
            ("NET_ADMIN", Capability::NetAdmin),
            ("CAP_NET_ADMIN", Capability::NetAdmin),
            ("cap_sys_admin", Capability::SysAdmin),
            ("Syslog", Capability::Syslog),
        ];
        for (s, want) in ok {
            assert_eq!(parse_cap(s).unwrap(), *want, "{s}");
        }
        for bad in ["foo", "CAP_FOO", "", "ALL"] {
            assert!(parse_cap(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_cap("foo").unwrap_err().to_string(),
            "unknown capability: \"CAP_FOO\""
        );
    }

    #[test]
    fn tweak_cases() {
        let base = default_caps();
        let all = names(&all_caps());
        struct Case {
            add: &'static [&'static str],
            drop: &'static [&'static str],
            want: Vec<&'static str>,
        }
        let mut default_plus_admin = names(&base);
        default_plus_admin.push("CAP_NET_ADMIN");
        default_plus_admin.sort_unstable();
        let default_minus = names(&base)
            .into_iter()
            .filter(|n| *n != "CAP_NET_RAW" && *n != "CAP_MKNOD")
            .collect::<Vec<_>>();
        let all_but_admin = all
            .iter()
            .copied()
            .filter(|n| *n != "CAP_SYS_ADMIN")
            .collect::<Vec<_>>();
        let cases = vec![
            Case {
                add: &[],
                drop: &[],
                want: names(&base),
            },
            Case {
                add: &["net_admin"],
                drop: &[],
                want: default_plus_admin.clone(),
            },
            Case {
                add: &["CAP_NET_ADMIN", "NET_ADMIN"],
                drop: &[],
                want: default_plus_admin,
            },
            Case {
                add: &[],
                drop: &["net_raw", "CAP_MKNOD"],
                want: default_minus,
            },
            Case {
                add: &["ALL"],
                drop: &[],
                want: all.clone(),
            },
            Case {
                add: &["all"],
                drop: &["sys_admin"],
                want: all_but_admin,
            },
            Case {
                add: &["chown", "kill"],
                drop: &["ALL"],
                want: vec!["CAP_CHOWN", "CAP_KILL"],
            },
            Case {
                add: &[],
                drop: &["all"],
                want: vec![],
            },
            // add ALL wins over drop ALL, as in Docker.
            Case {
                add: &["ALL"],
                drop: &["ALL"],
                want: all.clone(),
            },
            // A cap both added and dropped (no ALL) ends up added.
            Case {
                add: &["net_raw"],
                drop: &["net_raw"],
                want: names(&base),
            },
        ];
        for c in cases {
            let got = tweak_caps(&base, &strs(c.add), &strs(c.drop)).unwrap();
            assert_eq!(names(&got), c.want, "add {:?} drop {:?}", c.add, c.drop);
        }
    }

    #[test]
    fn tweak_rejects_unknown() {
        let base = default_caps();
        for (add, drop) in [
            (vec!["foo"], vec![]),
            (vec![], vec!["bar"]),
            (vec!["ALL"], vec!["baz"]),
        ] {
            let err = tweak_caps(&base, &strs(&add), &strs(&drop)).unwrap_err();
            assert!(matches!(err, SpecError::InvalidCapability(_)), "{err}");
        }
    }

    #[test]
    fn parses_cap_bnd() {
        let status = "Name:\tcat\nCapInh:\t0000000000000000\nCapBnd:\t000001fffeffffff\n";
        let mask = parse_cap_bnd(status).unwrap();
        let caps = caps_from_mask(mask);
        assert!(!caps.contains(&Capability::SysResource));
        assert!(caps.contains(&Capability::SysAdmin));
        assert_eq!(parse_cap_bnd("Name: x\n"), None);
        assert!(!host_bounding_caps().is_empty());
    }

    #[test]
    fn intersect_keeps_order() {
        let got = intersect(
            &[Capability::Kill, Capability::SysResource, Capability::Chown],
            &[Capability::Chown, Capability::Kill],
        );
        assert_eq!(got, vec![Capability::Kill, Capability::Chown]);
    }
}
