//! The run spec as it reaches a VM guest: a JSON file at [`PATH`] in the
//! small per-run initramfs, written by isola and read by isola-init. Shared
//! by both so the two sides cannot drift; plain data, no host paths.
//!
//! Format (version 1), one JSON object:
//!
//! ```json
//! {"version":1,"args":["sh","-c","echo hi"],"env":["PATH=/bin"],"cwd":"/",
//!  "uid":0,"gid":0,"groups":[],"hostname":"f3a1c2d4e5b6","read_only":false,
//!  "pids_limit":null,"stdin":false,"tty":false}
//! ```
//!
//! With `"tty":true`, `"tty_size":[ROWS,COLS]` gives the caller's window
//! size when it has one. With `"park":true` isola-init sets everything up,
//! writes the `Parked` mark and waits for the go-ahead on COM2 before it
//! starts the workload (`isola create`); left out when false, so that an
//! older isola-init reads the spec of a run that does not park.
//!
//! `"root_disk":SERIAL` names the read-only disk that holds the image, and
//! `"volumes":[{"serial":S,"target":"/data","read_only":false}]` the disks
//! of named volumes; both are left out when there are none.
//!
//! `"stdio_ports":true` says the monitor offers the virtio-serial ports
//! named [`ports::STDOUT_PORT_NAME`] and [`ports::STDERR_PORT_NAME`]:
//! isola-init makes them the workload's stdout and stderr (not with `tty`)
//! instead of COM1 and COM2; left out when false. With `"stdio_end":M`
//! too, isola-init writes M on both ports once the workload and what it
//! left are gone and waits for [`wire::STDIO_DRAINED`] on COM2 before it
//! reports the status (QEMU: see `GuestSpec::stdio_end`).
//!
//! `"net":{"ip":"10.89.0.2","prefix":24,"gateway":"10.89.0.1","mtu":1500,
//! "hosts":"...","resolv":"..."}` configures `eth0` (the virtio-net
//! device) and the name files; left out without a network.
//!
//! Unknown fields are refused, so a newer isola with an older init fails
//! clearly instead of silently dropping a setting.

pub mod agent;
pub mod ports;
pub mod wire;

use serde::{Deserialize, Serialize};

/// Where the spec is in the guest's root filesystem.
pub const PATH: &str = "/.isola/spec.json";

/// The version this crate writes and reads.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSpec {
    pub version: u32,
    /// The workload's argv; `args[0]` is looked up in PATH as Docker does.
    pub args: Vec<String>,
    /// `KEY=VALUE`, in order (later wins).
    pub env: Vec<String>,
    /// Absolute working directory, created if missing.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub hostname: String,
    /// Make the root filesystem read-only before the workload starts.
    pub read_only: bool,
    /// Most tasks the workload may have at once (`--pids-limit`).
    pub pids_limit: Option<u64>,
    /// Forward the caller's stdin (COM1 input) to the workload.
    pub stdin: bool,
    /// Give the workload a terminal.
    pub tty: bool,
    /// With `tty`: the caller's window size, rows and columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty_size: Option<[u16; 2]>,
    /// Wait for [`wire::GO_AHEAD`] on COM2 before starting the workload,
    /// after the [`ports::Mark::Parked`] mark.
    #[serde(default, skip_serializing_if = "is_false")]
    pub park: bool,
    /// The serial of the read-only virtio-blk disk holding the image
    /// (erofs): isola-init mounts it under an overlay with a tmpfs upper
    /// and moves into it. Absent: the root is the initramfs itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_disk: Option<String>,
    /// Named volumes, each an ext4 virtio-blk disk mounted at its target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeDisk>,
    /// The workload's stdout and stderr go to the virtio-serial ports
    /// [`ports::STDOUT_PORT_NAME`] and [`ports::STDERR_PORT_NAME`], which
    /// the monitor offers, rather than to COM1 and COM2 (a UART moves
    /// well under a MiB/s).
    #[serde(default, skip_serializing_if = "is_false")]
    pub stdio_ports: bool,
    /// With `stdio_ports`: a marker isola-init writes last on both ports,
    /// then waits (a while, at most) for [`wire::STDIO_DRAINED`] on COM2,
    /// for a monitor that may still hold output when the guest reports its
    /// status (QEMU exits at the exit port, dropping buffers its FIFOs had
    /// no room for): the host strips the marker, which reaches it after
    /// every byte before it, and answers. Random per run, so that a
    /// workload's output does not end with it by chance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio_end: Option<String>,
    /// The guest's `eth0` on a bridge network (virtio-net); left out
    /// without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<GuestNet>,
}

/// How isola-init configures `eth0`: no DHCP, the host leased the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestNet {
    pub ip: std::net::Ipv4Addr,
    pub prefix: u8,
    pub gateway: std::net::Ipv4Addr,
    pub mtu: u32,
    /// /etc/hosts and /etc/resolv.conf, as the host wrote them.
    pub hosts: String,
    pub resolv: String,
}

/// A named volume as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeDisk {
    /// The disk's virtio-blk serial (`/sys/block/vdX/serial`).
    pub serial: String,
    /// Absolute path in the guest.
    pub target: String,
    pub read_only: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

#[derive(Debug)]
pub struct SpecError(pub String);

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

impl GuestSpec {
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<GuestSpec, SpecError> {
        let spec: GuestSpec = serde_json::from_slice(bytes)
            .map_err(|e| SpecError(format!("the run spec at {PATH} is not valid: {e}")))?;
        if spec.version != VERSION {
            return Err(SpecError(format!(
                "the run spec is version {}, this isola-init reads version {VERSION}: rebuild the guest's initramfs with the same isola",
                spec.version
            )));
        }
        if spec.args.is_empty() {
            return Err(SpecError("the run spec has no command to run".into()));
        }
        if let Some(v) = spec.volumes.iter().find(|v| !v.target.starts_with('/')) {
            return Err(SpecError(format!(
                "the volume target {:?} is not absolute",
                v.target
            )));
        }
        if !spec.cwd.starts_with('/') {
            return Err(SpecError(format!(
                "the working directory {:?} is not absolute",
                spec.cwd
            )));
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GuestSpec {
        GuestSpec {
            version: VERSION,
            args: vec!["sh".into(), "-c".into(), "echo \"hi\"\nthere".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 1000,
            gid: 1000,
            groups: vec![10],
            hostname: "box".into(),
            read_only: false,
            pids_limit: Some(20),
            stdin: false,
            tty: false,
            tty_size: None,
            park: false,
            root_disk: Some("isola-root".into()),
            volumes: vec![VolumeDisk {
                serial: "isola-vol0".into(),
                target: "/data".into(),
                read_only: true,
            }],
            stdio_ports: true,
            stdio_end: Some("\u{1b}_isola-end-0123\u{1b}\\".into()),
            net: Some(GuestNet {
                ip: std::net::Ipv4Addr::new(10, 89, 0, 2),
                prefix: 24,
                gateway: std::net::Ipv4Addr::new(10, 89, 0, 1),
                mtu: 1500,
                hosts: "10.89.0.2\tbox\n".into(),
                resolv: String::new(),
            }),
        }
    }

    #[test]
    fn round_trips() {
        let s = spec();
        assert_eq!(GuestSpec::from_json(&s.to_json()).unwrap(), s);
    }

    #[test]
    fn park_is_written_only_when_asked() {
        let mut s = spec();
        assert!(!String::from_utf8(s.to_json()).unwrap().contains("park"));
        s.park = true;
        assert!(String::from_utf8(s.to_json())
            .unwrap()
            .contains(r#""park":true"#));
        assert_eq!(GuestSpec::from_json(&s.to_json()).unwrap(), s);
    }

    #[test]
    fn stdio_ports_are_written_only_when_offered() {
        let mut s = spec();
        assert!(String::from_utf8(s.to_json())
            .unwrap()
            .contains(r#""stdio_ports":true"#));
        s.stdio_ports = false;
        assert!(!String::from_utf8(s.to_json())
            .unwrap()
            .contains("stdio_ports"));
    }

    #[test]
    fn refuses_other_versions_unknown_fields_and_empty_commands() {
        let mut s = spec();
        s.version = 2;
        assert!(GuestSpec::from_json(&s.to_json())
            .unwrap_err()
            .0
            .contains("version 2"));
        let extra = br#"{"version":1,"args":["x"],"env":[],"cwd":"/","uid":0,"gid":0,"groups":[],"hostname":"h","read_only":false,"pids_limit":null,"stdin":false,"tty":false,"frobnicate":[]}"#;
        assert!(GuestSpec::from_json(extra).is_err());
        let mut s = spec();
        s.args.clear();
        assert!(GuestSpec::from_json(&s.to_json()).is_err());
        assert!(GuestSpec::from_json(b"not json").is_err());
    }
}
