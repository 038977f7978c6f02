//! Image names as people type them (`busybox`, `isola/busybox:latest`,
//! `registry:5000/team/app:v1`), validated and normalised to `name:tag`.

use std::fmt;

pub const DEFAULT_TAG: &str = "latest";

/// An image name refused, and why in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image name {given:?}: {why}")]
pub struct ReferenceError {
    pub given: String,
    pub why: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    pub name: String,
    pub tag: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl Reference {
    /// Parse `name[:tag]`; the tag defaults to `latest`. The error says what
    /// is wrong in words.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let bad = |why: &'static str| ReferenceError {
            given: s.to_string(),
            why,
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.contains('@') {
            return Err(bad("digest references (name@sha256:...) are not supported here; use the name or the image ID"));
        }
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        let last_slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match s[last_slash..].rfind(':') {
            Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
            None => (s, DEFAULT_TAG),
        };
        validate_tag(tag).map_err(&bad)?;
        validate_name(name).map_err(bad)?;
        Ok(Reference {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }
}

fn validate_tag(tag: &str) -> Result<(), &'static str> {
    let mut chars = tag.chars();
    match chars.next() {
        None => return Err("the tag after ':' is empty"),
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        Some(_) => return Err("a tag must start with a letter, digit or '_'"),
    }
    if tag.len() > 128 {
        return Err("a tag is at most 128 characters");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err("a tag may hold only letters, digits, '_', '.' and '-'");
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.len() > 255 {
        return Err("a name is at most 255 characters");
    }
    let mut parts = name.split('/').peekable();
    let mut first = true;
    while let Some(part) = parts.next() {
        let is_host = first
            && parts.peek().is_some()
            && (part.contains('.') || part.contains(':') || part == "localhost");
        first = false;
        if is_host {
            let (host, port) = part.split_once(':').unwrap_or((part, "0"));
            let host_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
            if !host_ok || port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
                return Err("the registry host is not a valid host[:port]");
            }
            continue;
        }
        if part.is_empty() {
            return Err("a name component is empty (check the '/' separators)");
        }
        if !part
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        {
            return Err("a name may hold only lowercase letters, digits, '.', '_', '-' and '/'");
        }
        let edge = |c: char| matches!(c, '.' | '_' | '-');
        if part.starts_with(edge) || part.ends_with(edge) {
            return Err("a name component must start and end with a letter or digit");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_validates() {
        assert_eq!(
            Reference::parse("busybox").unwrap().to_string(),
            "busybox:latest"
        );
        assert_eq!(
            Reference::parse("isola/busybox:1.36").unwrap().to_string(),
            "isola/busybox:1.36"
        );
        let r = Reference::parse("localhost:5000/team/app").unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_str()),
            ("localhost:5000/team/app", "latest")
        );
        for bad in [
            "",
            "Busybox",
            "a:",
            "a::b",
            "/a",
            "a//b",
            "-a",
            "a@sha256:00",
            "a:-x",
            "a b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
