//! runc's view of a container, as `runc state` prints it and go-runc reads
//! it: the status comes from the init process and the start fifo.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being made (only hooks see it).
    Creating,
    /// Made, its init waiting for `start`.
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// `runc state`'s JSON, field for field and in runc's order.
#[derive(Debug, Clone, Serialize)]
pub struct State {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    /// 0 once stopped, as runc says.
    pub pid: i32,
    pub status: Status,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub owner: String,
}

impl State {
    /// What hooks are told of a container of `bundle` at `status`.
    pub fn of_bundle(bundle: &super::Bundle, id: &str, pid: i32, status: Status) -> State {
        State {
            oci_version: bundle.config.version().clone(),
            id: id.to_string(),
            pid,
            status,
            bundle: bundle.dir.display().to_string(),
            rootfs: bundle.rootfs.display().to_string(),
            created: String::new(),
            annotations: bundle.annotations(),
            owner: String::new(),
        }
    }

    /// Indented with two spaces, as runc prints it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The state the OCI spec hands hooks on their stdin (its own field
    /// names: `ociVersion, id, status, pid, bundle, annotations`).
    pub fn for_hooks(&self) -> String {
        let mut hook = serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": self.status,
            "bundle": self.bundle,
            "annotations": self.annotations,
        });
        if self.pid > 0 {
            hook["pid"] = self.pid.into();
        }
        hook.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_has_runcs_fields_in_runcs_order() {
        let s = State {
            oci_version: "1.0.2".into(),
            id: "c1".into(),
            pid: 42,
            status: Status::Created,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-12-07T13:00:00.000000001Z".into(),
            annotations: BTreeMap::new(),
            owner: String::new(),
        };
        let json = s.to_json();
        let keys: Vec<&str> = json
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
            .collect();
        assert_eq!(
            keys,
            [
                "ociVersion",
                "id",
                "pid",
                "status",
                "bundle",
                "rootfs",
                "created",
                "owner"
            ]
        );
        assert!(json.contains("\"status\": \"created\""));
        assert!(s.for_hooks().contains("\"pid\":42"));
    }
}
