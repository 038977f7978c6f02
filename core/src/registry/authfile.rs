//! Registry credentials where docker and podman keep them: a JSON file with
//! `{"auths": {"HOST": {"auth": base64("user:pass")}}}`, mode 0600, so a
//! `docker login` or `podman login` already done works for isola too, and
//! the other way round. Credential helpers (`credsStore`, `credHelpers`)
//! are asked through their `docker-credential-NAME get` protocol.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::reference::normalise_registry;
use super::RegistryError;
use crate::fsutil::atomic_write;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <hidden>)", self.username)
    }
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            BASE64.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// The files credentials are read from, in order, and the first is the one
/// `login` writes: `--authfile`, `$REGISTRY_AUTH_FILE`, podman's
/// `$XDG_RUNTIME_DIR/containers/auth.json` (read only), then docker's
/// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
#[derive(Debug, Clone)]
pub struct AuthFiles {
    pub write_to: PathBuf,
    pub read_from: Vec<PathBuf>,
}

impl AuthFiles {
    pub fn locate(explicit: Option<&Path>) -> AuthFiles {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let docker = match env("DOCKER_CONFIG") {
            Some(dir) => dir.join("config.json"),
            None => env("HOME")
                .unwrap_or_else(|| PathBuf::from("/root"))
                .join(".docker/config.json"),
        };
        let mut read_from = Vec::new();
        if let Some(p) = explicit {
            read_from.push(p.to_path_buf());
        } else {
            read_from.extend(env("REGISTRY_AUTH_FILE"));
            if let Some(run) = env("XDG_RUNTIME_DIR") {
                read_from.push(run.join("containers/auth.json"));
            }
            read_from.push(docker.clone());
        }
        let write_to = match explicit {
            Some(p) => p.to_path_buf(),
            None => env("REGISTRY_AUTH_FILE").unwrap_or(docker),
        };
        AuthFiles {
            write_to,
            read_from,
        }
    }

    /// The credentials stored for `registry`, from the first file that has
    /// some. A file that cannot be read or parsed is an error: a login
    /// silently ignored would show up later as a puzzling 401.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        let registry = normalise_registry(registry);
        for path in &self.read_from {
            let Some(doc) = load(path)? else { continue };
            if let Some(c) = from_doc(&doc, &registry, path)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Store credentials for `registry` in the file `login` writes, keeping
    /// everything else in it.
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<PathBuf, RegistryError> {
        let path = &self.write_to;
        let mut doc = load(path)?.unwrap_or_else(|| Value::Object(Map::new()));
        let auths = auths_mut(&mut doc, path)?;
        let registry = normalise_registry(registry);
        auths.retain(|k, _| normalise_registry(k) != registry);
        let key = if registry == super::reference::DOCKER_HUB {
            // The key docker itself writes for Docker Hub.
            "https://index.docker.io/v1/".to_string()
        } else {
            registry
        };
        let mut entry = Map::new();
        entry.insert(
            "auth".into(),
            Value::String(BASE64.encode(format!("{}:{}", creds.username, creds.password))),
        );
        auths.insert(key, Value::Object(entry));
        save(path, &doc)?;
        Ok(path.clone())
    }

    /// Remove `registry`'s credentials (all when `None`) from the file
    /// `login` writes. Returns whether there were any.
    pub fn remove(&self, registry: Option<&str>) -> Result<bool, RegistryError> {
        let path = &self.write_to;
        let Some(mut doc) = load(path)? else {
            return Ok(false);
        };
        let auths = auths_mut(&mut doc, path)?;
        let before = auths.len();
        match registry {
            Some(r) => {
                let r = normalise_registry(r);
                auths.retain(|k, _| normalise_registry(k) != r);
            }
            None => auths.clear(),
        }
        let removed = auths.len() != before;
        if removed {
            save(path, &doc)?;
        }
        Ok(removed)
    }
}

fn bad(path: &Path, why: impl Into<String>) -> RegistryError {
    RegistryError::AuthFile {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

fn load(path: &Path) -> Result<Option<Value>, RegistryError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| bad(path, format!("not valid JSON ({e}); fix or remove it"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(bad(path, format!("cannot be read: {e}"))),
    }
}

fn save(path: &Path, doc: &Value) -> Result<(), RegistryError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| bad(path, format!("cannot create its directory: {e}")))?;
    }
    let json = serde_json::to_vec_pretty(doc).expect("JSON serialises");
    // atomic_write's temporary file is created 0600, and so the file is.
    atomic_write(path, &json).map_err(|e| bad(path, format!("cannot be written: {e}")))
}

fn auths_mut<'a>(
    doc: &'a mut Value,
    path: &Path,
) -> Result<&'a mut Map<String, Value>, RegistryError> {
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| bad(path, "it is not a JSON object"))?;
    obj.entry("auths")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| bad(path, "its \"auths\" is not an object"))
}

fn from_doc(
    doc: &Value,
    registry: &str,
    path: &Path,
) -> Result<Option<Credentials>, RegistryError> {
    let helper = doc
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|h| h.iter().find(|(k, _)| normalise_registry(k) == registry))
        .and_then(|(_, v)| v.as_str())
        .or_else(|| doc.get("credsStore").and_then(Value::as_str));
    if let Some(entry) = doc
        .get("auths")
        .and_then(Value::as_object)
        .and_then(|a| a.iter().find(|(k, _)| normalise_registry(k) == registry))
        .map(|(_, v)| v)
    {
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let decoded = BASE64
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    bad(
                        path,
                        format!("the \"auth\" of {registry} is not base64 of user:password"),
                    )
                })?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| {
                bad(
                    path,
                    format!("the \"auth\" of {registry} is not user:password"),
                )
            })?;
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
    }
    match helper {
        Some(name) => ask_helper(name, registry),
        None => Ok(None),
    }
}

/// `docker-credential-NAME get`, the registry on stdin, JSON out.
fn ask_helper(name: &str, registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let program = format!("docker-credential-{name}");
    let helper_err = |why: String| RegistryError::Auth {
        registry: registry.to_string(),
        why: format!("credential helper {program}: {why}"),
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            helper_err(format!(
                "cannot run it ({e}); install it or remove it from the auth file"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| helper_err(e.to_string()))?;
    if !out.status.success() {
        // "credentials not found" is how helpers say they have none.
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| helper_err(format!("its answer is not JSON ({e})")))?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(Some(Credentials {
        username: field("Username"),
        password: field("Secret"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_other_entries_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"auths":{"other:1":{"auth":"eDp5"}},"psFormat":"x"}"#,
        )
        .unwrap();
        let files = AuthFiles::locate(Some(&path));
        let c = Credentials {
            username: "u".into(),
            password: "p:w".into(),
        };
        files.store("https://127.0.0.1:5000/", &c).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(files.lookup("127.0.0.1:5000").unwrap(), Some(c));
        let other = files.lookup("other:1").unwrap().unwrap();
        assert_eq!(
            (other.username.as_str(), other.password.as_str()),
            ("x", "y")
        );
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["psFormat"], "x");
        assert_eq!(
            doc["auths"]["127.0.0.1:5000"]["auth"],
            BASE64.encode("u:p:w")
        );
        assert!(files.remove(Some("127.0.0.1:5000")).unwrap());
        assert_eq!(files.lookup("127.0.0.1:5000").unwrap(), None);
        assert!(!files.remove(Some("127.0.0.1:5000")).unwrap());
    }

    #[test]
    fn docker_hub_keys_match_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
                BASE64.encode("a:b")
            ),
        )
        .unwrap();
        let files = AuthFiles::locate(Some(&path));
        assert!(files.lookup("docker.io").unwrap().is_some());
        std::fs::write(&path, "{not json").unwrap();
        assert!(files.lookup("docker.io").is_err());
    }
}
