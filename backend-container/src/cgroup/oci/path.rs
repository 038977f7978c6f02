//! config.json's `linux.cgroupsPath` made into path components below each
//! hierarchy's root, refusing what could climb out or is not a cgroupfs path.

use super::OciError;
use crate::cgroup::DEFAULT_PARENT;

/// The components of `path` below a hierarchy's root. Absolute paths are
/// taken from the root, as containerd passes them ("/default/c1"); relative
/// ones under isola's own parent, as runc takes them under its own cgroup.
pub(super) fn parse(path: &str) -> Result<Vec<String>, OciError> {
    let refuse = |why: &'static str| OciError::Path {
        path: path.to_owned(),
        why,
    };
    if path.trim().is_empty() {
        return Err(refuse(
            "is empty; name the cgroup, such as /default/<container id>",
        ));
    }
    // runc's systemd driver takes "slice:prefix:name"; a cgroupfs path
    // with exactly two colons is that, given to the wrong manager.
    if path.split(':').count() == 3 {
        return Err(refuse(
            "is systemd's slice:prefix:name form, but isola manages cgroupfs paths; \
             give a path such as /default/c1 (with containerd, set SystemdCgroup = false)",
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(refuse("holds a control character"));
    }
    let mut components = Vec::new();
    if !path.starts_with('/') {
        components.push(DEFAULT_PARENT.to_owned());
    }
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(refuse(
                    "has a '..' component, which could climb out of the hierarchy",
                ))
            }
            name => components.push(name.to_owned()),
        }
    }
    if components.is_empty() {
        return Err(refuse(
            "is the root cgroup, which holds the host's own processes; name one below it",
        ));
    }
    Ok(components)
}

/// The path as isola reports and records it: absolute, normalised, so that
/// `parse` of it gives the same components again.
pub(super) fn display(components: &[String]) -> String {
    format!("/{}", components.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(path: &str) -> String {
        display(&parse(path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
    }

    #[test]
    fn absolute_paths_are_taken_from_the_root() {
        assert_eq!(parsed("/default/c1"), "/default/c1");
        assert_eq!(
            parsed("/kubepods/burstable/pod1/abc"),
            "/kubepods/burstable/pod1/abc"
        );
        assert_eq!(parsed("//a/./b/"), "/a/b");
    }

    #[test]
    fn relative_paths_go_under_isolas_parent() {
        assert_eq!(parsed("c1"), "/isola/c1");
        assert_eq!(parsed("ns/c1"), "/isola/ns/c1");
        // The normalised form parses to itself.
        assert_eq!(parsed(&parsed("c1")), "/isola/c1");
    }

    #[test]
    fn climbing_out_is_refused() {
        for bad in ["/a/../../etc", "..", "a/..", "/../x"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("'..'"), "{bad}: {err}");
            assert!(err.starts_with("config.json's linux.cgroupsPath"), "{err}");
        }
    }

    #[test]
    fn systemd_form_is_refused_with_a_sentence() {
        let err = parse("system.slice:docker:abc").unwrap_err().to_string();
        assert!(err.contains("slice:prefix:name"), "{err}");
        assert!(err.contains("cgroupfs"), "{err}");
        // One colon is an ordinary (if odd) cgroupfs name.
        assert_eq!(parsed("/a:b"), "/a:b");
    }

    #[test]
    fn empty_root_and_control_characters_are_refused() {
        for bad in ["", "  ", "/", "//", "/./", "/a\nb", "/a\0b"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
