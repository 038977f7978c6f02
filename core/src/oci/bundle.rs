//! An OCI bundle as containerd hands it over: config.json, parsed with
//! oci-spec's runtime types and refused if it holds a field isola does not
//! know (runc ignores those; a setting silently ignored is a sandbox that
//! is not what its owner asked for), and the root filesystem it names.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

/// The largest config.json read: containerd's are a few KiB.
const MAX_CONFIG: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle {} has no config.json; give the directory that holds it with --bundle", .0.display())]
    NoConfig(PathBuf),
    #[error("reading {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than 4 MiB; that is no container's configuration", .0.display())]
    TooLarge(PathBuf),
    #[error("config.json is not a valid OCI runtime configuration: {0}")]
    Invalid(String),
    #[error("config.json has a field isola does not know: {0}; remove it, or use a runtime that supports it")]
    UnknownField(String),
    #[error("config.json has no {0}; an OCI runtime needs it")]
    Missing(&'static str),
    #[error("the root filesystem {} does not exist or is not a directory; config.json's root.path must name the bundle's rootfs", .0.display())]
    NoRootfs(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    pub config: Spec,
    /// `root.path`, made absolute against the bundle.
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Reads and checks `dir/config.json` and its root filesystem.
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let dir = std::path::absolute(dir).map_err(|source| BundleError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("config.json");
        let bytes = read_config(&path)?;
        let config = parse_config(&bytes)?;
        let root = config.root().as_ref().ok_or(BundleError::Missing("root"))?;
        let rootfs = dir.join(root.path());
        if !rootfs.is_dir() {
            return Err(BundleError::NoRootfs(rootfs));
        }
        Ok(Bundle {
            dir,
            config,
            rootfs,
        })
    }

    /// config.json's `linux.resources`.
    pub fn resources(&self) -> Option<&oci_spec::runtime::LinuxResources> {
        self.config
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
    }

    /// config.json's annotations, sorted.
    pub fn annotations(&self) -> std::collections::BTreeMap<String, String> {
        self.config
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.config
            .annotations()
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }
}

fn read_config(path: &Path) -> Result<Vec<u8>, BundleError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BundleError::NoConfig(
                path.parent().unwrap_or(path).to_path_buf(),
            ))
        }
        Err(source) => {
            return Err(BundleError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| BundleError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_CONFIG {
        return Err(BundleError::TooLarge(path.to_path_buf()));
    }
    Ok(bytes)
}

/// `exec --process`'s file: config.json's `process` object alone, held to
/// the same rules (no unknown field).
pub fn parse_process(bytes: &[u8]) -> Result<oci_spec::runtime::Process, BundleError> {
    let (process, unknown) = deserialize_strict::<oci_spec::runtime::Process>(bytes)?;
    if let Some(field) = unknown {
        return Err(BundleError::UnknownField(format!("process.{field}")));
    }
    Ok(process)
}

/// `T` from JSON bytes, with the first field serde skipped.
fn deserialize_strict<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, Option<String>), BundleError> {
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // serde_ignored writes an Option's `Some` as `?`: dropped from the name.
    let value: T = serde_ignored::deserialize(&mut de, |path| {
        unknown.push(path.to_string().replace(".?", "").replace("?.", ""))
    })
    .map_err(|e| BundleError::Invalid(e.to_string()))?;
    de.end().map_err(|e| BundleError::Invalid(e.to_string()))?;
    Ok((value, unknown.into_iter().next()))
}

/// config.json's bytes as a spec: valid JSON of the OCI runtime spec's
/// shape, with no field oci-spec does not know, and with a process.
/// Untrusted input: fuzzed below.
pub fn parse_config(bytes: &[u8]) -> Result<Spec, BundleError> {
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // serde_ignored writes an Option's `Some` as `?`: dropped from the name.
    let spec: Spec = serde_ignored::deserialize(&mut de, |path| {
        unknown.push(path.to_string().replace(".?", ""))
    })
    .map_err(|e| BundleError::Invalid(e.to_string()))?;
    de.end().map_err(|e| BundleError::Invalid(e.to_string()))?;
    if let Some(field) = unknown.into_iter().next() {
        return Err(BundleError::UnknownField(field));
    }
    if spec.version().is_empty() {
        return Err(BundleError::Missing("ociVersion"));
    }
    if spec.process().is_none() {
        return Err(BundleError::Missing("process"));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "process":{"cwd":"/","args":["true"],"user":{"uid":0,"gid":0}}}"#;

    #[test]
    fn a_minimal_config_parses() {
        let spec = parse_config(MINIMAL.as_bytes()).unwrap();
        assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("rootfs"));
    }

    #[test]
    fn an_unknown_field_is_named_with_its_path() {
        let text = MINIMAL.replace(r#""cwd":"/","#, r#""cwd":"/","frobnicate":1,"#);
        let err = parse_config(text.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.json has a field isola does not know: process.frobnicate; remove it, or use a runtime that supports it"
        );
    }

    #[test]
    fn bad_json_and_missing_parts_are_refused() {
        assert!(matches!(
            parse_config(b"{not json"),
            Err(BundleError::Invalid(_))
        ));
        assert!(matches!(
            parse_config(br#"{"ociVersion":"1.0.2"}"#),
            Err(BundleError::Missing("process"))
        ));
        assert!(matches!(
            parse_config(format!("{MINIMAL} trailing").as_bytes()),
            Err(BundleError::Invalid(_))
        ));
    }

    #[test]
    fn a_bundle_without_config_or_rootfs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Bundle::load(dir.path()),
            Err(BundleError::NoConfig(_))
        ));
        std::fs::write(dir.path().join("config.json"), MINIMAL).unwrap();
        assert!(matches!(
            Bundle::load(dir.path()),
            Err(BundleError::NoRootfs(_))
        ));
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let bundle = Bundle::load(dir.path()).unwrap();
        assert_eq!(bundle.rootfs, dir.path().join("rootfs"));
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the parser.
        #[test]
        fn parse_config_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_config(&bytes);
        }

        /// Nor does `exec --process`'s parser.
        #[test]
        fn parse_process_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse_process(&bytes);
        }

        /// Nor does valid JSON of any shape, placed where config fields go.
        #[test]
        fn parse_config_never_panics_on_json(key in "[a-zA-Z]{1,12}", value in json_value()) {
            let text = MINIMAL.replacen('{', &format!("{{\"{key}\":{value},"), 1);
            let _ = parse_config(text.as_bytes());
            let linux = MINIMAL.replacen('{', &format!("{{\"linux\":{{\"{key}\":{value}}},"), 1);
            let _ = parse_config(linux.as_bytes());
            let process = format!("{{\"cwd\":\"/\",\"user\":{{\"uid\":0,\"gid\":0}},\"{key}\":{value}}}");
            let _ = parse_process(process.as_bytes());
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[a-z/]{0,8}".prop_map(|s| format!("{s:?}")),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec(("[a-zA-Z]{1,8}", inner), 0..4).prop_map(|v| {
                    let fields: Vec<String> =
                        v.into_iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
    }
}
