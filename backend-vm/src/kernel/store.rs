//! The kernel store: guest kernels copied under the state directory as
//! `kernels/<name>`, and `kernels/default` naming the one to boot.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use isola_core::fsutil::{atomic_write, Lock};
use isola_core::Root;

use super::format as kernel_format;

/// The file in `kernels/` that holds the default's name; so never a kernel's.
const DEFAULT_FILE: &str = "default";
const MAX_NAME_LEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum KernelStoreError {
    #[error("invalid kernel name {name:?}: {why}")]
    BadName { name: String, why: String },
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("{} is not a kernel isola can boot (neither an ELF vmlinux nor a bzImage)", .0.display())]
    NotAKernel(PathBuf),
    #[error("kernel {0} exists with other contents; add this one under another name with --name")]
    Exists(Name),
    #[error("kernel {0} not found (`isola kernel ls` lists kernels; `isola kernel add PATH --name {0}` adds one)")]
    NotFound(String),
    #[error("the store's default kernel, {0}, is missing; choose another with `isola kernel default NAME`")]
    DefaultMissing(Name),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> KernelStoreError {
    let context = context.into();
    move |source| KernelStoreError::Io { context, source }
}

/// A kernel's name in the store: a safe single path component, never hidden.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Letters, digits, '.', '_' and '-', not starting with '.', and not
    /// `default` (the file naming the default).
    pub fn new(name: &str) -> Result<Name, KernelStoreError> {
        let bad = |why: &str| {
            Err(KernelStoreError::BadName {
                name: name.to_string(),
                why: why.to_string(),
            })
        };
        if name.is_empty() {
            return bad("it is empty");
        }
        if name.len() > MAX_NAME_LEN {
            return bad(&format!("it is longer than {MAX_NAME_LEN} characters"));
        }
        if name.starts_with('.') {
            return bad("it must not start with '.'");
        }
        if name == DEFAULT_FILE {
            return bad("it is reserved for the file naming the default kernel");
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return bad(&format!(
                "{c:?} is not allowed (use letters, digits, '.', '_' and '-')"
            ));
        }
        Ok(Name(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One stored kernel, as `isola kernel ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Name,
    pub path: PathBuf,
    pub size: u64,
    pub is_default: bool,
}

/// Copy the kernel at `path` into the store as `name` (default: its file
/// name). Adding the same bytes again under the same name is not an error.
/// The first kernel added becomes the default.
pub fn add(state_dir: &Path, path: &Path, name: Option<&str>) -> Result<Name, KernelStoreError> {
    let name = match name {
        Some(n) => Name::new(n)?,
        None => Name::new(&path.file_name().unwrap_or_default().to_string_lossy())?,
    };
    let mut source = File::open(path).map_err(io_ctx(format!("opening {}", path.display())))?;
    let meta = source
        .metadata()
        .map_err(io_ctx(format!("reading {}", path.display())))?;
    if !meta.is_file() {
        return Err(KernelStoreError::NotAFile(path.to_path_buf()));
    }
    // Refuse before creating anything, so a wrong file leaves no trace.
    let format = kernel_format::read_format(&mut source)
        .map_err(io_ctx(format!("reading {}", path.display())))?;
    if format.is_none() {
        return Err(KernelStoreError::NotAKernel(path.to_path_buf()));
    }
    source
        .rewind()
        .map_err(io_ctx(format!("reading {}", path.display())))?;

    let root = Root::new(state_dir);
    let dir = root.kernels();
    fs::create_dir_all(&dir).map_err(io_ctx(format!("creating {}", dir.display())))?;
    let _lock =
        Lock::exclusive(&root.kernels_lock()).map_err(io_ctx("locking the kernel store"))?;

    // Staged beside its final place, so it lands whole by rename.
    let staging =
        |e: io::Error| io_ctx(format!("copying {} into {}", path.display(), dir.display()))(e);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(&dir)
        .map_err(staging)?;
    io::copy(&mut source, tmp.as_file_mut()).map_err(staging)?;
    tmp.as_file().sync_all().map_err(staging)?;
    // Readable like /boot's kernels: a peer monitor may run as another user.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644)).map_err(staging)?;
    let target = dir.join(name.as_str());
    if target.exists() {
        if !same_contents(tmp.path(), &target).map_err(staging)? {
            return Err(KernelStoreError::Exists(name));
        }
    } else {
        tmp.persist_noclobber(&target)
            .map_err(|e| staging(e.error))?;
    }
    if read_default(&dir)?.is_none() {
        write_default(&dir, &name)?;
    }
    Ok(name)
}

/// The stored kernels, by name.
pub fn list(state_dir: &Path) -> Result<Vec<Entry>, KernelStoreError> {
    let dir = Root::new(state_dir).kernels();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_ctx(format!("reading {}", dir.display()))(e)),
    };
    let default = read_default(&dir)?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_ctx(format!("reading {}", dir.display())))?;
        // Staging files, the default's file and strays are not kernels.
        let Ok(name) = Name::new(&entry.file_name().to_string_lossy()) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        out.push(Entry {
            is_default: default.as_ref() == Some(&name),
            path: entry.path(),
            size: meta.len(),
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Make the stored kernel `name` the default.
pub fn set_default(state_dir: &Path, name: &str) -> Result<Name, KernelStoreError> {
    let root = Root::new(state_dir);
    let dir = root.kernels();
    let name = Name::new(name)?;
    if !dir.join(name.as_str()).is_file() {
        return Err(KernelStoreError::NotFound(name.0));
    }
    let _lock =
        Lock::exclusive(&root.kernels_lock()).map_err(io_ctx("locking the kernel store"))?;
    write_default(&dir, &name)?;
    Ok(name)
}

/// The default kernel's name, if the store has a default.
pub fn default_name(state_dir: &Path) -> Result<Option<Name>, KernelStoreError> {
    read_default(&Root::new(state_dir).kernels())
}

/// The default kernel's file, if the store has a default.
pub fn default_path(state_dir: &Path) -> Result<Option<PathBuf>, KernelStoreError> {
    let dir = Root::new(state_dir).kernels();
    let Some(name) = read_default(&dir)? else {
        return Ok(None);
    };
    let path = dir.join(name.as_str());
    if !path.is_file() {
        return Err(KernelStoreError::DefaultMissing(name));
    }
    Ok(Some(path))
}

fn read_default(dir: &Path) -> Result<Option<Name>, KernelStoreError> {
    let file = dir.join(DEFAULT_FILE);
    match fs::read_to_string(&file) {
        Ok(s) => Name::new(s.trim()).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_ctx(format!("reading {}", file.display()))(e)),
    }
}

fn write_default(dir: &Path, name: &Name) -> Result<(), KernelStoreError> {
    let file = dir.join(DEFAULT_FILE);
    atomic_write(&file, format!("{name}\n").as_bytes())
        .map_err(io_ctx(format!("writing {}", file.display())))
}

fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    if fs::metadata(a)?.len() != fs::metadata(b)?.len() {
        return Ok(false);
    }
    let (mut a, mut b) = (File::open(a)?, File::open(b)?);
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(true);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(dir: &Path, file: &str, fill: u8) -> PathBuf {
        let p = dir.join(file);
        let mut bytes = b"\x7fELF".to_vec();
        bytes.resize(4096, fill);
        fs::write(&p, bytes).unwrap();
        p
    }

    fn bzimage(dir: &Path, file: &str) -> PathBuf {
        let p = dir.join(file);
        let mut bytes = vec![0u8; 0x1000];
        bytes[0x202..0x206].copy_from_slice(b"HdrS");
        fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn names_are_single_visible_path_components() {
        for ok in [
            "vmlinuz-6.1.0-56-cloud-amd64",
            "bzImage",
            "a",
            "v_1.2",
            "-x",
        ] {
            assert!(Name::new(ok).is_ok(), "{ok:?} should be valid");
        }
        for bad in [
            "",
            ".hidden",
            "..",
            "a/b",
            "../x",
            "a b",
            "é",
            "default",
            &"x".repeat(129),
        ] {
            let err = Name::new(bad).expect_err(bad).to_string();
            assert!(
                err.starts_with(&format!("invalid kernel name {bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn the_first_kernel_added_is_the_default_until_another_is_chosen() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        assert_eq!(list(&state).unwrap(), []);
        assert_eq!(default_path(&state).unwrap(), None);

        let first = add(&state, &elf(t.path(), "vmlinuz-6.1", 1), None).unwrap();
        assert_eq!(first.as_str(), "vmlinuz-6.1");
        let second = add(&state, &bzimage(t.path(), "bzImage"), Some("custom")).unwrap();
        assert_eq!(second.as_str(), "custom");
        let kernels = state.join("kernels");
        assert_eq!(
            default_path(&state).unwrap(),
            Some(kernels.join("vmlinuz-6.1"))
        );
        assert_eq!(
            fs::read_to_string(kernels.join("default")).unwrap(),
            "vmlinuz-6.1\n"
        );

        let listed = list(&state).unwrap();
        let names: Vec<(&str, u64, bool)> = listed
            .iter()
            .map(|e| (e.name.as_str(), e.size, e.is_default))
            .collect();
        assert_eq!(
            names,
            [("custom", 0x1000, false), ("vmlinuz-6.1", 4096, true)]
        );

        set_default(&state, "custom").unwrap();
        assert_eq!(default_path(&state).unwrap(), Some(kernels.join("custom")));
        let err = set_default(&state, "nope").unwrap_err().to_string();
        assert!(err.starts_with("kernel nope not found"), "{err}");
        assert_eq!(default_path(&state).unwrap(), Some(kernels.join("custom")));
    }

    #[test]
    fn a_name_is_taken_again_only_by_the_same_bytes() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        add(&state, &elf(t.path(), "k", 1), None).unwrap();
        add(&state, &elf(t.path(), "k", 1), None).unwrap();
        let err = add(&state, &elf(t.path(), "k", 2), None).unwrap_err();
        assert!(matches!(err, KernelStoreError::Exists(_)), "{err}");
        assert_eq!(fs::read(state.join("kernels/k")).unwrap()[4], 1);
        // No staging file is left behind either way.
        let names: Vec<_> = fs::read_dir(state.join("kernels"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_file_that_is_not_a_kernel_is_refused_with_nothing_stored() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let script = t.path().join("notes.txt");
        fs::write(&script, "not a kernel").unwrap();
        let err = add(&state, &script, None).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{} is not a kernel isola can boot (neither an ELF vmlinux nor a bzImage)",
                script.display()
            )
        );
        assert!(!state.exists());
        let err = add(&state, t.path(), Some("dir")).unwrap_err();
        assert!(matches!(err, KernelStoreError::NotAFile(_)), "{err}");
        assert!(!state.exists());
    }

    #[test]
    fn a_default_whose_kernel_is_gone_is_reported() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        add(&state, &elf(t.path(), "k", 1), None).unwrap();
        fs::remove_file(state.join("kernels/k")).unwrap();
        let err = default_path(&state).unwrap_err().to_string();
        assert!(err.contains("default kernel, k, is missing"), "{err}");
    }
}
