//! Device rules: config.json's `linux.resources.devices` in the kernel's
//! "c 1:3 rwm" syntax, and the devices every container gets, as runc 1.1 gives them.

use std::fmt;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::fields::Fields;
use super::OciError;

/// One rule as the devices controller (and the v2 device program) takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rule {
    pub allow: bool,
    /// 'a' (every device), 'b' or 'c'.
    pub kind: char,
    /// `None` is '*': any.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

/// Read, write, mknod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Access {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl Access {
    pub const NONE: Access = Access {
        read: false,
        write: false,
        mknod: false,
    };
    const ALL: Access = Access {
        read: true,
        write: true,
        mknod: true,
    };
    const MKNOD: Access = Access {
        read: false,
        write: false,
        mknod: true,
    };
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [(self.read, 'r'), (self.write, 'w'), (self.mknod, 'm')] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = |n: Option<u32>| n.map_or("*".to_owned(), |n| n.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind,
            number(self.major),
            number(self.minor),
            self.access
        )
    }
}

const fn allow(kind: char, major: Option<u32>, minor: Option<u32>, access: Access) -> Rule {
    Rule {
        allow: true,
        kind,
        major,
        minor,
        access,
    }
}

/// runc 1.1's AllowedDevices (libcontainer/specconv), appended after the
/// config's own rules so a container always has them, whatever it denies:
/// mknod of any node, the /dev basics, ptys and tun. (runc 1.2 dropped
/// tun, then restored it; there is no /dev/console rule: a container's
/// console is a pty, 136:N.)
pub(super) const DEFAULTS: [Rule; 11] = [
    allow('c', None, None, Access::MKNOD),
    allow('b', None, None, Access::MKNOD),
    allow('c', Some(1), Some(3), Access::ALL),    // null
    allow('c', Some(1), Some(8), Access::ALL),    // random
    allow('c', Some(1), Some(7), Access::ALL),    // full
    allow('c', Some(5), Some(0), Access::ALL),    // tty
    allow('c', Some(1), Some(5), Access::ALL),    // zero
    allow('c', Some(1), Some(9), Access::ALL),    // urandom
    allow('c', Some(136), None, Access::ALL),     // /dev/pts/*
    allow('c', Some(5), Some(2), Access::ALL),    // ptmx
    allow('c', Some(10), Some(200), Access::ALL), // /dev/net/tun
];

/// The config's rules in order, each checked, then [`DEFAULTS`].
pub(super) fn rules(
    devices: Option<&Vec<LinuxDeviceCgroup>>,
    fields: Fields,
) -> Result<Vec<Rule>, OciError> {
    let mut out = Vec::new();
    for (i, d) in devices.into_iter().flatten().enumerate() {
        out.push(rule(d, &fields.at(format!("devices[{i}]")))?);
    }
    out.extend(DEFAULTS);
    Ok(out)
}

fn rule(d: &LinuxDeviceCgroup, field: &str) -> Result<Rule, OciError> {
    let refuse = |why: String| OciError::Refused {
        field: field.to_owned(),
        why,
    };
    let kind = match d.typ() {
        None | Some(LinuxDeviceType::A) => 'a',
        Some(LinuxDeviceType::B) => 'b',
        // An unbuffered character device is a character device.
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::P) => {
            return Err(refuse(
                "has type \"p\", a FIFO, which the device cgroup does not control; \
                 use \"a\", \"b\" or \"c\""
                    .into(),
            ))
        }
    };
    // -1 is runc's own spelling of the wildcard.
    let number = |n: Option<i64>, what: &str| match n {
        None | Some(-1) => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| {
            refuse(format!(
                "has {what} {n}; give a device number, or leave it out for any"
            ))
        }),
    };
    let major = number(d.major(), "major")?;
    let minor = number(d.minor(), "minor")?;
    let access = match d.access().as_deref() {
        // The spec gives no default; every runtime reads none as all three.
        None | Some("") => Access::ALL,
        Some(text) => parse_access(text).ok_or_else(|| {
            refuse(format!(
                "has access {text:?}; use a combination of r (read), w (write) and m (mknod)"
            ))
        })?,
    };
    Ok(Rule {
        allow: d.allow(),
        kind,
        major,
        minor,
        access,
    })
}

fn parse_access(text: &str) -> Option<Access> {
    let mut access = Access::NONE;
    for c in text.chars() {
        let bit = match c {
            'r' => &mut access.read,
            'w' => &mut access.write,
            'm' => &mut access.mknod,
            _ => return None,
        };
        if *bit {
            return None;
        }
        *bit = true;
    }
    Some(access)
}

/// What to write, in order, to a v1 devices cgroup: deny everything, then
/// each rule to devices.allow or devices.deny.
pub(super) fn v1_writes(rules: &[Rule]) -> Vec<(&'static str, String)> {
    let mut out = vec![("devices.deny", "a".to_owned())];
    for rule in rules {
        let file = if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        out.push((file, rule.to_string()));
    }
    out
}

/// What a list of rules comes to, applied in order as v1's devices
/// controller applies them: a default, and exceptions to it (merged by
/// device, as the kernel merges them). The v2 program enforces this, so a
/// container meets the same rules on both versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Effective {
    pub default_allow: bool,
    pub exceptions: Vec<Rule>,
}

pub(super) fn effective(rules: &[Rule]) -> Effective {
    let mut out = Effective {
        default_allow: true,
        exceptions: Vec::new(),
    };
    for rule in rules {
        if rule.kind == 'a' {
            // "a" sets the default and drops every exception.
            out.default_allow = rule.allow;
            out.exceptions.clear();
            continue;
        }
        let same = |ex: &Rule| (ex.kind, ex.major, ex.minor) == (rule.kind, rule.major, rule.minor);
        if rule.allow == out.default_allow {
            // A rule that agrees with the default takes its access away
            // from the exception for exactly that device, if any.
            for ex in out.exceptions.iter_mut().filter(|ex| same(ex)) {
                ex.access.read &= !rule.access.read;
                ex.access.write &= !rule.access.write;
                ex.access.mknod &= !rule.access.mknod;
            }
            out.exceptions.retain(|ex| ex.access != Access::NONE);
        } else if let Some(ex) = out.exceptions.iter_mut().find(|ex| same(ex)) {
            ex.access.read |= rule.access.read;
            ex.access.write |= rule.access.write;
            ex.access.mknod |= rule.access.mknod;
        } else {
            out.exceptions.push(*rule);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    use super::super::fields::CONFIG;
    use super::*;

    fn device(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        major: Option<i64>,
        minor: Option<i64>,
        access: Option<&str>,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default().allow(allow);
        if let Some(t) = typ {
            b = b.typ(t);
        }
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        if let Some(a) = access {
            b = b.access(a);
        }
        b.build().unwrap()
    }

    #[test]
    fn rules_use_the_kernels_syntax() {
        let config = vec![
            device(false, None, None, None, Some("rwm")),
            device(true, Some(LinuxDeviceType::C), Some(1), Some(3), Some("rw")),
            device(true, Some(LinuxDeviceType::B), Some(8), None, Some("r")),
            device(false, Some(LinuxDeviceType::U), Some(4), Some(-1), None),
        ];
        let rules = rules(Some(&config), CONFIG).unwrap();
        let text: Vec<String> = rules.iter().map(Rule::to_string).collect();
        assert_eq!(text[..4], ["a *:* rwm", "c 1:3 rw", "b 8:* r", "c 4:* rwm"]);
        assert_eq!(
            text[4..],
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:8 rwm",
                "c 1:7 rwm",
                "c 5:0 rwm",
                "c 1:5 rwm",
                "c 1:9 rwm",
                "c 136:* rwm",
                "c 5:2 rwm",
                "c 10:200 rwm"
            ]
        );
        let writes = v1_writes(&rules);
        assert_eq!(writes[0], ("devices.deny", "a".to_owned()));
        assert_eq!(writes[1], ("devices.deny", "a *:* rwm".to_owned()));
        assert_eq!(writes[2], ("devices.allow", "c 1:3 rw".to_owned()));
        assert_eq!(writes[4], ("devices.deny", "c 4:* rwm".to_owned()));
        assert_eq!(writes.len(), 1 + 4 + DEFAULTS.len());
    }

    #[test]
    fn rules_come_to_a_default_and_merged_exceptions() {
        let config = vec![
            device(false, None, None, None, Some("rwm")),
            device(true, Some(LinuxDeviceType::C), Some(4), Some(1), Some("r")),
            device(true, Some(LinuxDeviceType::C), Some(4), Some(1), Some("w")),
            device(true, Some(LinuxDeviceType::B), Some(8), None, Some("rw")),
            // Agrees with the default: takes write away from exactly 8:*.
            device(false, Some(LinuxDeviceType::B), Some(8), None, Some("w")),
            // No exception for exactly 8:0: nothing to take away.
            device(false, Some(LinuxDeviceType::B), Some(8), Some(0), Some("r")),
        ];
        let e = effective(&rules(Some(&config), CONFIG).unwrap());
        assert!(!e.default_allow);
        let text: Vec<String> = e.exceptions.iter().map(Rule::to_string).collect();
        assert_eq!(text[..2], ["c 4:1 rw", "b 8:* r"]);
        // The defaults follow, "c 1:3 rwm" once.
        assert_eq!(e.exceptions.len(), 2 + DEFAULTS.len());

        // A privileged container: everything, minus what it denies after.
        let privileged = vec![
            device(true, None, None, None, Some("rwm")),
            device(
                false,
                Some(LinuxDeviceType::C),
                Some(10),
                Some(200),
                Some("rwm"),
            ),
        ];
        let e = effective(&rules(Some(&privileged), CONFIG).unwrap());
        assert!(e.default_allow);
        // The defaults allow tun again: the deny is gone; only mknod-all
        // and the others, which agree with the default, changed nothing.
        assert!(e.exceptions.is_empty(), "{:?}", e.exceptions);
    }

    #[test]
    fn bad_rules_are_refused_naming_the_rule() {
        let fifo = vec![
            device(true, None, None, None, None),
            device(true, Some(LinuxDeviceType::P), None, None, None),
        ];
        let err = rules(Some(&fifo), CONFIG).unwrap_err().to_string();
        assert!(
            err.starts_with("config.json's linux.resources.devices[1] has type \"p\""),
            "{err}"
        );
        for access in ["rx", "rr", "R"] {
            let bad = vec![device(true, None, None, None, Some(access))];
            let err = rules(Some(&bad), CONFIG).unwrap_err().to_string();
            assert!(err.contains("devices[0] has access"), "{err}");
        }
        let negative = vec![device(
            true,
            Some(LinuxDeviceType::C),
            Some(-5),
            Some(0),
            None,
        )];
        assert!(rules(Some(&negative), CONFIG).is_err());
    }
}
