//! `-u user[:group]` resolved the way Docker does: against the image's own
//! /etc/passwd and /etc/group (read from its layers, top first), numeric ids
//! taken as they are.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::image::unpack::OPAQUE_XATTR;
use crate::spec::User;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0:?}: no matching entry in the image's /etc/passwd")]
    NoUser(String),
    #[error("unable to find group {0:?}: no matching entry in the image's /etc/group")]
    NoGroup(String),
}

/// Resolve `spec` (`""` means root) for the image made of `layers` (bottom first).
pub fn resolve(spec: &str, layers: &[PathBuf]) -> Result<User, UserError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_from_layers(layers, "etc/passwd").unwrap_or_default();
    let groups = read_from_layers(layers, "etc/group").unwrap_or_default();
    let entries = parse(&passwd);
    let (uid, mut gid, name) = if user.is_empty() {
        (0, 0, Some("root".to_string()))
    } else if let Some(e) = entries.iter().find(|e| e[0] == user) {
        (num(e, 2), num(e, 3), Some(user.to_string()))
    } else if let Ok(uid) = user.parse::<u32>() {
        match entries
            .iter()
            .find(|e| e.get(2).and_then(|v| v.parse().ok()) == Some(uid))
        {
            Some(e) => (uid, num(e, 3), Some(e[0].to_string())),
            None => (uid, 0, None),
        }
    } else {
        return Err(UserError::NoUser(user.to_string()));
    };
    let group_entries = parse(&groups);
    if let Some(g) = group {
        gid = match group_entries.iter().find(|e| e[0] == g) {
            Some(e) => num(e, 2),
            None => g.parse().map_err(|_| UserError::NoGroup(g.to_string()))?,
        };
    }
    // Supplementary groups: those that list the user as a member.
    let mut supplementary: Vec<u32> = match &name {
        Some(n) if group.is_none() => group_entries
            .iter()
            .filter(|e| e.get(3).is_some_and(|m| m.split(',').any(|m| m == n)))
            .map(|e| num(e, 2))
            .filter(|g| *g != gid)
            .collect(),
        _ => Vec::new(),
    };
    supplementary.sort_unstable();
    supplementary.dedup();
    Ok(User {
        uid,
        gid,
        groups: supplementary,
    })
}

fn parse(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|e| e.len() >= 3)
        .collect()
}

fn num(entry: &[&str], i: usize) -> u32 {
    entry.get(i).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The file at `rel` as the stacked layers show it, without mounting them:
/// the top-most layer that has it wins; a whiteout or an opaque directory on
/// the way hides the layers below.
pub fn read_from_layers(layers: &[PathBuf], rel: &str) -> Option<String> {
    for layer in layers.iter().rev() {
        let path = layer.join(rel);
        if let Ok(m) = fs::symlink_metadata(&path) {
            if m.file_type().is_char_device() && m.rdev() == 0 {
                return None;
            }
            return if m.is_file() {
                fs::read_to_string(&path).ok()
            } else {
                None
            };
        }
        if hides_below(layer, rel) {
            return None;
        }
    }
    None
}

/// Whether a parent of `rel` in `layer` is a whiteout or an opaque directory.
fn hides_below(layer: &Path, rel: &str) -> bool {
    let mut dir = layer.to_path_buf();
    let parents: Vec<&str> = rel.split('/').collect();
    for part in &parents[..parents.len().saturating_sub(1)] {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_char_device() && m.rdev() == 0 => return true,
            Ok(m) if m.is_dir() => {
                if matches!(xattr::get(&dir, OPAQUE_XATTR), Ok(Some(v)) if v == b"y") {
                    return true;
                }
            }
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(passwd: &str, group: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("etc")).unwrap();
        fs::write(t.path().join("etc/passwd"), passwd).unwrap();
        fs::write(t.path().join("etc/group"), group).unwrap();
        let layers = vec![t.path().to_path_buf()];
        (t, layers)
    }

    #[test]
    fn resolves_like_docker() {
        let (_t, l) = layer(
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            "root:x:0:\napp:x:1000:\nwheel:x:10:app,root\naudio:x:29:app\n",
        );
        assert_eq!(
            resolve("", &l).unwrap(),
            User {
                uid: 0,
                gid: 0,
                groups: vec![10]
            }
        );
        assert_eq!(
            resolve("app", &l).unwrap(),
            User {
                uid: 1000,
                gid: 1000,
                groups: vec![10, 29]
            }
        );
        assert_eq!(resolve("1000", &l).unwrap().gid, 1000);
        assert_eq!(
            resolve("4242", &l).unwrap(),
            User {
                uid: 4242,
                gid: 0,
                groups: vec![]
            }
        );
        assert_eq!(
            resolve("app:audio", &l).unwrap(),
            User {
                uid: 1000,
                gid: 29,
                groups: vec![]
            }
        );
        assert_eq!(resolve("app:77", &l).unwrap().gid, 77);
        assert!(matches!(resolve("nobody", &l), Err(UserError::NoUser(_))));
        assert!(matches!(
            resolve("app:nogroup", &l),
            Err(UserError::NoGroup(_))
        ));
    }
}
