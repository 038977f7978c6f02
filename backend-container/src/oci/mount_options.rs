//! A config.json mount's `options` as mount(2) takes them: flags, the
//! propagation to set after, and what goes to the filesystem as data.

use nix::mount::MsFlags;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Flags a bind mount only gets by a remount (ro, nosuid...).
    pub clear: MsFlags,
    /// MS_PRIVATE, MS_SHARED... (with MS_REC for the `r` forms).
    pub propagation: Vec<MsFlags>,
    /// The filesystem's own options, comma-joined (`mode=755,size=65536k`).
    pub data: String,
    pub bind: bool,
}

impl Default for MountOptions {
    fn default() -> MountOptions {
        MountOptions {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: Vec::new(),
            data: String::new(),
            bind: false,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the mount option {0:?} is not supported")]
pub struct UnknownOption(pub String);

/// Parses `options` as runc does: known flags set or clear bits, the
/// propagation names are kept for after, anything else with an `=` (or a
/// filesystem's flag-like option such as `newinstance`) is data.
pub fn parse(options: &[String]) -> Result<MountOptions, UnknownOption> {
    let mut out = MountOptions::default();
    let mut data = Vec::new();
    for opt in options {
        let set = |f: MsFlags| (f, false);
        let clr = |f: MsFlags| (f, true);
        let flag = match opt.as_str() {
            "defaults" | "rw" => Some(clr(MsFlags::MS_RDONLY)),
            "ro" => Some(set(MsFlags::MS_RDONLY)),
            "nosuid" => Some(set(MsFlags::MS_NOSUID)),
            "suid" => Some(clr(MsFlags::MS_NOSUID)),
            "nodev" => Some(set(MsFlags::MS_NODEV)),
            "dev" => Some(clr(MsFlags::MS_NODEV)),
            "noexec" => Some(set(MsFlags::MS_NOEXEC)),
            "exec" => Some(clr(MsFlags::MS_NOEXEC)),
            "sync" => Some(set(MsFlags::MS_SYNCHRONOUS)),
            "async" => Some(clr(MsFlags::MS_SYNCHRONOUS)),
            "dirsync" => Some(set(MsFlags::MS_DIRSYNC)),
            "remount" => Some(set(MsFlags::MS_REMOUNT)),
            "mand" => Some(set(MsFlags::MS_MANDLOCK)),
            "nomand" => Some(clr(MsFlags::MS_MANDLOCK)),
            "atime" => Some(clr(MsFlags::MS_NOATIME)),
            "noatime" => Some(set(MsFlags::MS_NOATIME)),
            "diratime" => Some(clr(MsFlags::MS_NODIRATIME)),
            "nodiratime" => Some(set(MsFlags::MS_NODIRATIME)),
            "relatime" => Some(set(MsFlags::MS_RELATIME)),
            "norelatime" => Some(clr(MsFlags::MS_RELATIME)),
            "strictatime" => Some(set(MsFlags::MS_STRICTATIME)),
            "nostrictatime" => Some(clr(MsFlags::MS_STRICTATIME)),
            "bind" => {
                out.bind = true;
                Some(set(MsFlags::MS_BIND))
            }
            "rbind" => {
                out.bind = true;
                Some(set(MsFlags::MS_BIND | MsFlags::MS_REC))
            }
            _ => None,
        };
        if let Some((f, clear)) = flag {
            if clear {
                out.flags.remove(f);
                out.clear.insert(f);
            } else {
                out.flags.insert(f);
                out.clear.remove(f);
            }
            continue;
        }
        let propagation = match opt.as_str() {
            "private" => Some(MsFlags::MS_PRIVATE),
            "rprivate" => Some(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
            "shared" => Some(MsFlags::MS_SHARED),
            "rshared" => Some(MsFlags::MS_SHARED | MsFlags::MS_REC),
            "slave" => Some(MsFlags::MS_SLAVE),
            "rslave" => Some(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            "unbindable" => Some(MsFlags::MS_UNBINDABLE),
            "runbindable" => Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
            _ => None,
        };
        if let Some(p) = propagation {
            out.propagation.push(p);
            continue;
        }
        // Options that change how runc itself mounts (idmapped mounts,
        // tmpfs copy-up, recursive read-only): not done by isola.
        if matches!(
            opt.as_str(),
            "idmap" | "ridmap" | "tmpcopyup" | "rro" | "rrw" | "rnosuid" | "rnodev" | "rnoexec"
        ) || opt.starts_with("x-")
        {
            return Err(UnknownOption(opt.clone()));
        }
        if opt.contains(',') {
            return Err(UnknownOption(opt.clone()));
        }
        data.push(opt.as_str());
    }
    out.data = data.join(",");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> MountOptions {
        parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn containerds_dev_mount() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(!o.bind);
    }

    #[test]
    fn a_read_only_rbind_with_propagation() {
        let o = opts(&["rbind", "ro", "rprivate", "nosuid"]);
        assert!(o.bind);
        assert!(o.flags.contains(
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        ));
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert!(o.data.is_empty());
    }

    #[test]
    fn the_last_of_two_opposites_wins() {
        assert!(!opts(&["ro", "rw"]).flags.contains(MsFlags::MS_RDONLY));
        assert!(opts(&["rw", "ro"]).flags.contains(MsFlags::MS_RDONLY));
        assert!(opts(&["ro", "rw"]).clear.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn what_isola_does_not_do_is_named() {
        for bad in ["idmap", "tmpcopyup", "rro", "x-foo", "a,b"] {
            assert_eq!(
                parse(&[bad.to_string()]),
                Err(UnknownOption(bad.to_string()))
            );
        }
        // A filesystem's own flag-like option is data.
        assert_eq!(opts(&["newinstance", "gid=5"]).data, "newinstance,gid=5");
    }
}
