//! Registry references as docker spells them: `registry[:port]/repo[:tag]`
//! or `...@sha256:HEX`; a name without a registry means Docker Hub
//! (`alpine` → `docker.io/library/alpine:latest`).

use std::fmt;

use oci_spec::image::Digest;

use crate::image::digest;
use crate::image::reference::{Reference, DEFAULT_TAG};

pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API really answers.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// `host[:port]` as the user names it (`docker.io` for Docker Hub).
    pub registry: String,
    /// The repository path inside the registry (`library/alpine`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {given:?}: {why}")]
pub struct RemoteRefError {
    pub given: String,
    pub why: String,
}

impl RemoteRef {
    pub fn parse(s: &str) -> Result<RemoteRef, RemoteRefError> {
        let bad = |why: String| RemoteRefError {
            given: s.to_string(),
            why,
        };
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(digest::parse(d).map_err(|e| bad(e.to_string()))?)),
            None => (s, None),
        };
        let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (path, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        let (registry, repository) = match path.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), path.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        // The local name rules are the registry's too: check them there.
        let whole = format!("{registry}/{repository}:{}", tag.unwrap_or(DEFAULT_TAG));
        Reference::parse(&whole).map_err(|e| bad(e.why.to_string()))?;
        Ok(RemoteRef {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// `host[:port]` to connect to.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What the manifest URL names: the digest when there is one, else the
    /// tag (`latest` when none was given).
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The repository as people write it: Docker Hub's prefix dropped, as
    /// docker shows it (`docker.io/library/alpine` → `alpine`).
    pub fn familiar_repository(&self) -> String {
        if self.registry != DOCKER_HUB {
            return format!("{}/{}", self.registry, self.repository);
        }
        self.repository
            .strip_prefix("library/")
            .unwrap_or(&self.repository)
            .to_string()
    }

    /// The name a pulled image is stored under: `repo:tag`, or
    /// `repo@sha256:...` for a pull by digest alone.
    pub fn store_name(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{}:{t}", self.familiar_repository()),
            (None, Some(d)) => format!("{}@{d}", self.familiar_repository()),
            (None, None) => format!("{}:{DEFAULT_TAG}", self.familiar_repository()),
        }
    }

    /// The same reference with another tag and no digest (a push target).
    pub fn with_tag(&self, tag: &str) -> RemoteRef {
        RemoteRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for RemoteRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// A registry host as given to `login`/`logout`: a bare `host[:port]`, or
/// a URL of one (`https://host/`, as docker accepts); Docker Hub's aliases
/// are one registry.
pub fn normalise_registry(given: &str) -> String {
    let s = given
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

/// Hosts where plain HTTP is allowed without being asked for: this machine.
pub fn is_local(host_port: &str) -> bool {
    let host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host_port
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(host_port),
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifies_as_docker_does() {
        let r = RemoteRef::parse("alpine").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/alpine");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.store_name(), "alpine:latest");
        assert_eq!(r.manifest_ref(), "latest");
        let r = RemoteRef::parse("team/app:v1").unwrap();
        assert_eq!(r.to_string(), "docker.io/team/app:v1");
        assert_eq!(r.store_name(), "team/app:v1");
        let r = RemoteRef::parse("127.0.0.1:5000/a/b:t").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("127.0.0.1:5000", "a/b")
        );
        assert_eq!(r.store_name(), "127.0.0.1:5000/a/b:t");
        let hex = "a".repeat(64);
        let r = RemoteRef::parse(&format!("localhost/x@sha256:{hex}")).unwrap();
        assert_eq!(r.manifest_ref(), format!("sha256:{hex}"));
        assert_eq!(r.store_name(), format!("localhost/x@sha256:{hex}"));
        for bad in ["", "A", "x@sha256:12", "a//b", "h:1/x:", "x@md5:00"] {
            assert!(RemoteRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn local_hosts() {
        assert!(is_local("127.0.0.1:5000"));
        assert!(is_local("localhost"));
        assert!(is_local("[::1]:5000"));
        assert!(!is_local("example.com:5000"));
        assert!(!is_local("docker.io"));
        assert_eq!(
            normalise_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalise_registry("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
