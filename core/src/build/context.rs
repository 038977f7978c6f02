//! The trees COPY and ADD read from — the build context with .dockerignore
//! applied, or another stage's or image's root filesystem — and the sources a
//! COPY names in them, resolved, walked and digested for the layer cache.

use std::fmt;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::Digest;

use crate::image::digest::HashingWriter;

/// Symbolic links followed while resolving one source before giving up, as
/// the kernel's limit.
const MAX_LINK_HOPS: u32 = 40;

/// What .dockerignore says about paths of the build context; implemented by
/// any `Fn(rel, is_dir) -> excluded` and by the parsed .dockerignore.
pub trait Exclusions: Send + Sync {
    /// Whether `rel` (relative to the context root, `/`-separated) is left out.
    fn excludes(&self, rel: &str, is_dir: bool) -> bool;
    /// Whether something under the excluded directory `rel_dir` may be taken
    /// back by a `!` exception, so the walk must still look inside it. A
    /// plain predicate knows no exceptions: what it excludes stays out whole.
    fn may_reinclude_under(&self, _rel_dir: &str) -> bool {
        false
    }
}

impl Exclusions for super::ignore::Ignore {
    fn excludes(&self, rel: &str, is_dir: bool) -> bool {
        super::ignore::Ignore::excludes(self, rel, is_dir)
    }

    fn may_reinclude_under(&self, rel_dir: &str) -> bool {
        super::ignore::Ignore::may_reinclude_under(self, rel_dir)
    }
}

impl<F: Fn(&str, bool) -> bool + Send + Sync> Exclusions for F {
    fn excludes(&self, rel: &str, is_dir: bool) -> bool {
        self(rel, is_dir)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("source {pattern:?} is outside {place}: {why}")]
    Outside {
        pattern: String,
        place: &'static str,
        why: &'static str,
    },
    #[error("source {pattern:?} is a symbolic link to {target:?}, which points outside {place}: copy what it points to into {place} instead")]
    LinkOutside {
        pattern: String,
        target: String,
        place: &'static str,
    },
    #[error("source {pattern:?} is excluded by .dockerignore: remove the pattern that excludes it or add a `!` exception")]
    Excluded { pattern: String },
    #[error("source {pattern:?}: file not found in {place} ({root}); paths are relative to it")]
    NotFound {
        pattern: String,
        place: &'static str,
        root: PathBuf,
    },
    #[error("source {pattern:?} matches no files in {place} (files excluded by .dockerignore do not count): no source files were specified")]
    NoMatch {
        pattern: String,
        place: &'static str,
    },
    #[error("source pattern {pattern:?} is malformed: {why}")]
    BadPattern { pattern: String, why: &'static str },
    #[error("source {pattern:?}: too many levels of symbolic links")]
    Loop { pattern: String },
    #[error("reading {path} failed")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How a tree treats paths that lead out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The build context: leaving it is an error, as docker refuses it.
    Context,
    /// A root filesystem: paths and links are read as a process chrooted
    /// there reads them, so they can never leave it.
    Filesystem,
}

/// A tree files are copied from: the build context (with .dockerignore
/// applied), or another stage's / image's root filesystem (COPY --from;
/// nothing excluded).
#[derive(Clone)]
pub struct Tree {
    pub root: PathBuf,
    kind: Kind,
    exclusions: Option<Arc<dyn Exclusions>>,
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree")
            .field("root", &self.root)
            .field("kind", &self.kind)
            .field("excludes", &self.exclusions.is_some())
            .finish()
    }
}

/// One source of a COPY/ADD, resolved.
#[derive(Clone)]
pub struct Source {
    /// The path in the tree as matched, e.g. "src/main.c" (`.` for the root).
    pub rel: String,
    /// Where it is on the host, top-level symlinks followed.
    pub path: PathBuf,
    pub is_dir: bool,
    /// `path` relative to the tree root, what .dockerignore is asked about.
    real_rel: String,
    exclusions: Option<Arc<dyn Exclusions>>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("rel", &self.rel)
            .field("path", &self.path)
            .field("is_dir", &self.is_dir)
            .finish()
    }
}

/// One thing a source copies, in walk order (parents before children, names
/// sorted bytewise).
#[derive(Debug)]
pub struct Entry {
    /// Relative to the source: empty for the source itself.
    pub rel: String,
    pub path: PathBuf,
    /// Not followed: a symlink is described as a symlink.
    pub meta: Metadata,
}

impl Tree {
    /// The build context at `root`, leaving out what `exclusions` excludes.
    pub fn context(root: impl Into<PathBuf>, exclusions: impl Exclusions + 'static) -> Tree {
        Tree {
            root: root.into(),
            kind: Kind::Context,
            exclusions: Some(Arc::new(exclusions)),
        }
    }

    /// A root filesystem (a stage's or an image's) for COPY --from.
    pub fn filesystem(root: impl Into<PathBuf>) -> Tree {
        Tree {
            root: root.into(),
            kind: Kind::Filesystem,
            exclusions: None,
        }
    }

    fn place(&self) -> &'static str {
        match self.kind {
            Kind::Context => "the build context",
            Kind::Filesystem => "the source filesystem",
        }
    }

    /// Resolve COPY/ADD source patterns: Go filepath.Match wildcards (`*`,
    /// `?`, `[a-z]`, `\` escapes) per path component; a pattern that matches
    /// nothing is an error naming it.
    ///
    /// In the build context an absolute path is refused as outside it, though
    /// docker reads `/x` as `<context>/x`: a Dockerfile that means the
    /// context should say so with a relative path. In a root filesystem
    /// absolute paths are the norm and `..` stops at the root.
    pub fn resolve(&self, patterns: &[String]) -> Result<Vec<Source>, ContextError> {
        let mut sources = Vec::new();
        for pattern in patterns {
            let components = self.clean(pattern)?;
            if components.iter().any(|c| has_wildcard(c)) {
                let found = self.expand(pattern, &components)?;
                if found.is_empty() {
                    return Err(ContextError::NoMatch {
                        pattern: pattern.clone(),
                        place: self.place(),
                    });
                }
                sources.extend(found);
            } else {
                sources.push(self.literal(pattern, &components)?);
            }
        }
        Ok(sources)
    }

    /// A digest of everything these sources would copy: for each file
    /// (walked in sorted order, excluded ones skipped), its path relative to
    /// the source, type, mode, uid, gid, and content (sha256) or link target
    /// — never mtime. The layer cache uses it.
    pub fn digest(&self, sources: &[Source]) -> Result<Digest, ContextError> {
        let mut record = HashingWriter::new(io::sink());
        for source in sources {
            push_field(&mut record, b"source");
            push_field(&mut record, source.rel.as_bytes());
            let mut first_link: std::collections::HashMap<(u64, u64), String> =
                std::collections::HashMap::new();
            for entry in source.entries()? {
                describe(&mut record, &entry, &mut first_link)?;
            }
        }
        Ok(record.finish().1)
    }

    /// The pattern as components inside the tree, `.` and `..` applied.
    fn clean(&self, pattern: &str) -> Result<Vec<String>, ContextError> {
        let outside = |why| ContextError::Outside {
            pattern: pattern.to_string(),
            place: self.place(),
            why,
        };
        if self.kind == Kind::Context && pattern.starts_with('/') {
            return Err(outside(
                "an absolute path names a file on the host; write it relative to the context directory",
            ));
        }
        let mut out: Vec<String> = Vec::new();
        for c in pattern.split('/') {
            match c {
                "" | "." => {}
                ".." if out.pop().is_none() && self.kind == Kind::Context => {
                    return Err(outside(
                        "'..' leads above the context directory; move the file into the context",
                    ))
                }
                ".." => {}
                c => out.push(c.to_string()),
            }
        }
        Ok(out)
    }

    fn literal(&self, pattern: &str, components: &[String]) -> Result<Source, ContextError> {
        let rel = if components.is_empty() {
            ".".to_string()
        } else {
            components.join("/")
        };
        let real_rel = self.follow(pattern, components)?;
        let path = self.root.join(&real_rel);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ContextError::NotFound {
                    pattern: pattern.to_string(),
                    place: self.place(),
                    root: self.root.clone(),
                })
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let source = self.source(rel, real_rel, path, meta.is_dir());
        if self.hides(&source) {
            return Err(ContextError::Excluded {
                pattern: pattern.to_string(),
            });
        }
        Ok(source)
    }

    fn source(&self, rel: String, real_rel: String, path: PathBuf, is_dir: bool) -> Source {
        Source {
            rel,
            path,
            is_dir,
            real_rel,
            exclusions: self.exclusions.clone(),
        }
    }

    /// Whether .dockerignore leaves this source out, under the name it was
    /// given or the one its links lead to. An excluded directory still
    /// counts when an exception may take back something inside it.
    fn hides(&self, source: &Source) -> bool {
        let Some(ex) = &self.exclusions else {
            return false;
        };
        [&source.rel, &source.real_rel]
            .into_iter()
            .filter(|rel| rel.as_str() != ".")
            .any(|rel| ex.excludes(rel, source.is_dir))
            && !(source.is_dir && ex.may_reinclude_under(&source.real_rel))
    }

    /// Every path the wildcard pattern matches, component by component.
    fn expand(&self, pattern: &str, components: &[String]) -> Result<Vec<Source>, ContextError> {
        let mut matched: Vec<Vec<String>> = vec![Vec::new()];
        for component in components {
            let mut next = Vec::new();
            for prefix in &matched {
                if !has_wildcard(component) {
                    let mut path = prefix.clone();
                    path.push(component.clone());
                    next.push(path);
                    continue;
                }
                let names = self.list_dir(pattern, prefix)?;
                for name in names {
                    if wildcard_match(component, &name).map_err(|why| ContextError::BadPattern {
                        pattern: pattern.to_string(),
                        why,
                    })? {
                        let mut path = prefix.clone();
                        path.push(name);
                        next.push(path);
                    }
                }
            }
            matched = next;
        }
        let mut sources = Vec::new();
        for path in matched {
            let real_rel = self.follow(pattern, &path)?;
            let host = self.root.join(&real_rel);
            let Ok(meta) = fs::metadata(&host) else {
                continue; // a literal component after a wildcard that is not there
            };
            let source = self.source(path.join("/"), real_rel, host, meta.is_dir());
            if !self.hides(&source) {
                sources.push(source);
            }
        }
        Ok(sources)
    }

    /// Names in the directory `prefix` (links followed), sorted; nothing if
    /// it is not a directory.
    fn list_dir(&self, pattern: &str, prefix: &[String]) -> Result<Vec<String>, ContextError> {
        let dir = self.root.join(self.follow(pattern, prefix)?);
        let read = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::ENOENT | nix::libc::ENOTDIR)
                ) =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut names = Vec::new();
        for entry in read {
            let entry = entry.map_err(io_err(&dir))?;
            // A name that is not UTF-8 cannot be spelled in a Dockerfile.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// `components` with every symlink on the way followed, as a path
    /// relative to the root. In the context a link leading out of it is an
    /// error; in a root filesystem it restarts at the root.
    fn follow(&self, pattern: &str, components: &[String]) -> Result<String, ContextError> {
        let mut pending: Vec<String> = components.iter().rev().cloned().collect();
        let mut out: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    // Only link targets bring '..' here; clean() removed the rest.
                    if out.pop().is_none() && self.kind == Kind::Context {
                        return Err(self.link_outside(pattern, components));
                    }
                    continue;
                }
                _ => {}
            }
            out.push(c);
            let here = self.root.join(out.join("/"));
            let target = match fs::read_link(&here) {
                Ok(t) => t,
                Err(_) => continue, // not a link (or not there: the caller's stat says so)
            };
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Err(ContextError::Loop {
                    pattern: pattern.to_string(),
                });
            }
            out.pop();
            let target = target.to_string_lossy().into_owned();
            if target.starts_with('/') {
                if self.kind == Kind::Context {
                    return Err(self.link_outside(pattern, components));
                }
                out.clear();
            }
            pending.extend(target.split('/').rev().map(str::to_string));
        }
        Ok(out.join("/"))
    }

    fn link_outside(&self, pattern: &str, components: &[String]) -> ContextError {
        let link = self.root.join(components.join("/"));
        ContextError::LinkOutside {
            pattern: pattern.to_string(),
            target: fs::read_link(&link)
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "a path on the way".to_string()),
            place: self.place(),
        }
    }
}

impl Source {
    /// What this source copies, in order: the source itself (rel ""), then,
    /// for a directory, everything under it not excluded by .dockerignore.
    /// Links below the top are not followed.
    pub fn entries(&self) -> Result<Vec<Entry>, ContextError> {
        let meta = fs::metadata(&self.path).map_err(io_err(&self.path))?;
        let mut out = vec![Entry {
            rel: String::new(),
            path: self.path.clone(),
            meta,
        }];
        if self.is_dir {
            self.walk(&self.path, "", &mut out)?;
        }
        Ok(out)
    }

    fn walk(&self, dir: &Path, rel_dir: &str, out: &mut Vec<Entry>) -> Result<(), ContextError> {
        let mut children = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            children.push(entry.map_err(io_err(dir))?.file_name());
        }
        children.sort();
        for name in children {
            let path = dir.join(&name);
            let rel = if rel_dir.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel_dir}/{}", name.to_string_lossy())
            };
            let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            let is_dir = meta.is_dir();
            if self.excluded(&rel, is_dir) {
                if is_dir && self.may_reinclude(&rel) {
                    // Kept only if an exception takes back something inside.
                    let at = out.len();
                    self.walk(&path, &rel, out)?;
                    if out.len() > at {
                        out.insert(at, Entry { rel, path, meta });
                    }
                }
                continue;
            }
            out.push(Entry {
                rel: rel.clone(),
                path: path.clone(),
                meta,
            });
            if is_dir {
                self.walk(&path, &rel, out)?;
            }
        }
        Ok(())
    }

    /// The path .dockerignore is asked about for `rel` inside this source.
    fn context_rel(&self, rel: &str) -> String {
        if self.real_rel.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.real_rel)
        }
    }

    fn excluded(&self, rel: &str, is_dir: bool) -> bool {
        self.exclusions
            .as_ref()
            .is_some_and(|ex| ex.excludes(&self.context_rel(rel), is_dir))
    }

    fn may_reinclude(&self, rel: &str) -> bool {
        self.exclusions
            .as_ref()
            .is_some_and(|ex| ex.may_reinclude_under(&self.context_rel(rel)))
    }
}

/// A NUL-terminated field of the digest record: names hold no NUL, so no
/// two different records write the same bytes.
fn push_field(record: &mut HashingWriter<io::Sink>, data: &[u8]) {
    use io::Write;
    // Writing to a sink cannot fail.
    let _ = record.write_all(data);
    let _ = record.write_all(b"\0");
}

/// One entry's part of the digest: name, type, mode, owner, and content,
/// link target, device number or first hard-link name.
fn describe(
    record: &mut HashingWriter<io::Sink>,
    entry: &Entry,
    first_link: &mut std::collections::HashMap<(u64, u64), String>,
) -> Result<(), ContextError> {
    let meta = &entry.meta;
    let kind = meta.file_type();
    push_field(record, entry.rel.as_bytes());
    let mode = format!("{:o} {} {}", meta.mode() & 0o7777, meta.uid(), meta.gid());
    if kind.is_symlink() {
        push_field(record, b"symlink");
        push_field(record, mode.as_bytes());
        let target = fs::read_link(&entry.path).map_err(io_err(&entry.path))?;
        push_field(record, target.as_os_str().as_encoded_bytes());
    } else if kind.is_dir() {
        push_field(record, b"dir");
        push_field(record, mode.as_bytes());
    } else if kind.is_file() {
        push_field(record, b"file");
        push_field(record, mode.as_bytes());
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = first_link.get(&key) {
                push_field(record, b"hardlink");
                push_field(record, first.as_bytes());
                return Ok(());
            }
            first_link.insert(key, entry.rel.clone());
        }
        let mut file = File::open(&entry.path).map_err(io_err(&entry.path))?;
        let mut content = HashingWriter::new(io::sink());
        io::copy(&mut file, &mut content).map_err(io_err(&entry.path))?;
        push_field(record, content.finish().1.digest().as_bytes());
    } else {
        let what: &[u8] = if kind.is_fifo() {
            b"fifo"
        } else if kind.is_char_device() {
            b"char"
        } else if kind.is_block_device() {
            b"block"
        } else {
            b"socket"
        };
        push_field(record, what);
        push_field(record, mode.as_bytes());
        push_field(record, meta.rdev().to_string().as_bytes());
    }
    Ok(())
}

fn has_wildcard(component: &str) -> bool {
    component.contains(['*', '?', '[', '\\'])
}

/// Go's filepath.Match for one path component: `*` any run, `?` one
/// character, `[a-z]`/`[^a-z]` classes, `\` escapes. A malformed pattern is
/// an error even where an earlier mismatch would let Go skip the check.
pub(crate) fn wildcard_match(pattern: &str, name: &str) -> Result<bool, &'static str> {
    let tokens = tokenize(pattern)?;
    let name: Vec<char> = name.chars().collect();
    Ok(match_tokens(&tokens, &name))
}

#[derive(Debug, PartialEq)]
enum Token {
    Star,
    AnyOne,
    Literal(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, &'static str> {
    let mut chars = pattern.chars().peekable();
    let mut tokens = Vec::new();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' => Token::Star,
            '?' => Token::AnyOne,
            '\\' => Token::Literal(chars.next().ok_or("it ends with a lone '\\'")?),
            '[' => class(&mut chars)?,
            c => Token::Literal(c),
        });
    }
    Ok(tokens)
}

fn class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Token, &'static str> {
    let negated = chars.next_if_eq(&'^').is_some();
    let mut ranges = Vec::new();
    loop {
        if chars.next_if_eq(&']').is_some() {
            if ranges.is_empty() {
                return Err("a character class is empty");
            }
            return Ok(Token::Class { negated, ranges });
        }
        let lo = class_char(chars)?;
        let hi = if chars.next_if_eq(&'-').is_some() {
            class_char(chars)?
        } else {
            lo
        };
        ranges.push((lo, hi));
    }
}

fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, &'static str> {
    match chars.next() {
        None => Err("a character class has no closing ']'"),
        Some('-') | Some(']') => Err("a character class has a misplaced '-' or ']'"),
        Some('\\') => chars.next().ok_or("it ends with a lone '\\'"),
        Some(c) => Ok(c),
    }
}

/// Greedy matching that backtracks only to the last `*`: every other token
/// takes exactly one character, so this is linear per star, never
/// exponential in the number of stars.
fn match_tokens(tokens: &[Token], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(Token::Star) => {
                last_star = Some((t, n));
                t += 1;
            }
            Some(token) if matches_one(token, name[n]) => {
                t += 1;
                n += 1;
            }
            _ => match last_star {
                Some((star, from)) => {
                    last_star = Some((star, from + 1));
                    t = star + 1;
                    n = from + 1;
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|token| *token == Token::Star)
}

fn matches_one(token: &Token, c: char) -> bool {
    match token {
        Token::Star | Token::AnyOne => true,
        Token::Literal(l) => *l == c,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use filetime::FileTime;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn no_ignore() -> impl Exclusions {
        |_: &str, _: bool| false
    }

    /// A context with: a.txt, b.txt, c.md, src/main.c, src/lib/x.c, .hidden
    fn context() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("src/lib")).unwrap();
        for f in [
            "a.txt",
            "b.txt",
            "c.md",
            "src/main.c",
            "src/lib/x.c",
            ".hidden",
        ] {
            fs::write(r.join(f), f).unwrap();
        }
        t
    }

    fn rels(sources: &[Source]) -> Vec<&str> {
        sources.iter().map(|s| s.rel.as_str()).collect()
    }

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn literal_sources_are_found_with_their_kind() {
        let t = context();
        let tree = Tree::context(t.path(), no_ignore());
        let s = tree
            .resolve(&pats(&["a.txt", "./src/", "src/../c.md", "."]))
            .unwrap();
        assert_eq!(rels(&s), ["a.txt", "src", "c.md", "."]);
        assert_eq!(
            s.iter().map(|s| s.is_dir).collect::<Vec<_>>(),
            [false, true, false, true]
        );
        assert_eq!(s[1].path, t.path().join("src"));
    }

    #[test]
    fn wildcards_match_per_component_in_sorted_order() {
        let t = context();
        let tree = Tree::context(t.path(), no_ignore());
        let table: &[(&str, &[&str])] = &[
            ("*.txt", &["a.txt", "b.txt"]),
            ("?.md", &["c.md"]),
            ("[ab].txt", &["a.txt", "b.txt"]),
            ("[^a].txt", &["b.txt"]),
            ("[a-b].t?t", &["a.txt", "b.txt"]),
            ("src/*.c", &["src/main.c"]),
            ("*/lib/*", &["src/lib/x.c"]),
            ("*/*/x.c", &["src/lib/x.c"]),
            ("*hidden", &[".hidden"]),
            ("\\*", &[]),
        ];
        for (pattern, want) in table {
            match tree.resolve(&pats(&[pattern])) {
                Ok(s) => assert_eq!(rels(&s), *want, "{pattern}"),
                Err(ContextError::NoMatch { .. }) => assert!(want.is_empty(), "{pattern}"),
                Err(e) => panic!("{pattern}: {e}"),
            }
        }
    }

    #[test]
    fn wildcard_matching_follows_go() {
        let table: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", ".x", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("*a*a*a*a*a*a*a*b", &"a".repeat(200), false),
            ("\\*x", "*x", true),
            ("\\*x", "ax", false),
            ("[\\]]", "]", true),
            ("[a-c]?", "bz", true),
            ("[^a-c]", "b", false),
        ];
        for (pattern, name, want) in table {
            assert_eq!(wildcard_match(pattern, name), Ok(*want), "{pattern} {name}");
        }
        for bad in ["[", "[]", "[a-", "x\\", "[-a]", "[^]"] {
            assert!(wildcard_match(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_malformed_pattern_is_named() {
        let t = context();
        let tree = Tree::context(t.path(), no_ignore());
        let e = tree.resolve(&pats(&["[a"])).unwrap_err();
        assert!(matches!(e, ContextError::BadPattern { .. }), "{e}");
    }

    #[test]
    fn what_is_not_there_is_an_error_naming_it() {
        let t = context();
        let tree = Tree::context(t.path(), no_ignore());
        let e = tree.resolve(&pats(&["nope.txt"])).unwrap_err();
        assert!(matches!(e, ContextError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("nope.txt"), "{e}");
        let e = tree.resolve(&pats(&["*.rs"])).unwrap_err();
        assert!(matches!(e, ContextError::NoMatch { .. }), "{e}");
        assert!(e.to_string().contains("*.rs"), "{e}");
    }

    #[test]
    fn paths_outside_the_context_are_refused() {
        let t = context();
        let tree = Tree::context(t.path(), no_ignore());
        for p in ["../x", "src/../../x", "/etc/passwd"] {
            let e = tree.resolve(&pats(&[p])).unwrap_err();
            assert!(matches!(e, ContextError::Outside { .. }), "{p}: {e}");
            assert!(e.to_string().contains("outside the build context"), "{e}");
        }
    }

    #[test]
    fn a_top_level_symlink_is_followed_inside_the_context() {
        let t = context();
        symlink("src/main.c", t.path().join("link")).unwrap();
        symlink("src", t.path().join("dirlink")).unwrap();
        let tree = Tree::context(t.path(), no_ignore());
        let s = tree.resolve(&pats(&["link", "dirlink"])).unwrap();
        assert_eq!(s[0].rel, "link");
        assert_eq!(s[0].path, t.path().join("src/main.c"));
        assert!(!s[0].is_dir);
        assert!(s[1].is_dir);
        assert_eq!(s[1].path, t.path().join("src"));
    }

    #[test]
    fn a_symlink_out_of_the_context_is_refused() {
        let t = context();
        symlink("/etc/passwd", t.path().join("abs")).unwrap();
        symlink("../../outside", t.path().join("src/up")).unwrap();
        let tree = Tree::context(t.path(), no_ignore());
        for p in ["abs", "src/up"] {
            let e = tree.resolve(&pats(&[p])).unwrap_err();
            assert!(matches!(e, ContextError::LinkOutside { .. }), "{p}: {e}");
        }
    }

    #[test]
    fn a_link_loop_is_an_error() {
        let t = context();
        symlink("b", t.path().join("loop_a")).unwrap();
        symlink("loop_a", t.path().join("b")).unwrap();
        let tree = Tree::context(t.path(), no_ignore());
        fs::remove_file(t.path().join("b.txt")).unwrap();
        let e = tree.resolve(&pats(&["loop_a"])).unwrap_err();
        assert!(matches!(e, ContextError::Loop { .. }), "{e}");
    }

    #[test]
    fn in_a_root_filesystem_links_and_dotdot_stay_inside() {
        let t = context();
        symlink("/src/main.c", t.path().join("abs")).unwrap();
        let tree = Tree::filesystem(t.path());
        let s = tree.resolve(&pats(&["/abs", "/../../a.txt"])).unwrap();
        assert_eq!(s[0].path, t.path().join("src/main.c"));
        assert_eq!(s[1].path, t.path().join("a.txt"));
    }

    #[test]
    fn excluded_sources_are_refused_and_skipped() {
        let t = context();
        let tree = Tree::context(t.path(), |rel: &str, _: bool| {
            rel == "b.txt" || rel == "src/lib"
        });
        let e = tree.resolve(&pats(&["b.txt"])).unwrap_err();
        assert!(matches!(e, ContextError::Excluded { .. }), "{e}");
        // A wildcard simply does not match what is excluded.
        assert_eq!(rels(&tree.resolve(&pats(&["*.txt"])).unwrap()), ["a.txt"]);
        // Inside a copied directory, excluded entries are not walked.
        let src = tree.resolve(&pats(&["src"])).unwrap();
        let walked: Vec<String> = src[0]
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.rel)
            .collect();
        assert_eq!(walked, ["", "main.c"]);
    }

    struct Reinclude;
    impl Exclusions for Reinclude {
        fn excludes(&self, rel: &str, _: bool) -> bool {
            rel.starts_with("src") && rel != "src/lib/x.c"
        }
        fn may_reinclude_under(&self, rel_dir: &str) -> bool {
            "src/lib/x.c".starts_with(rel_dir)
        }
    }

    #[test]
    fn an_exception_inside_an_excluded_directory_is_kept_with_its_parents() {
        let t = context();
        let tree = Tree::context(t.path(), Reinclude);
        let src = tree.resolve(&pats(&["src"])).unwrap();
        let walked: Vec<String> = src[0]
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.rel)
            .collect();
        assert_eq!(walked, ["", "lib", "lib/x.c"]);
    }

    fn digest_of(root: &Path, pattern: &str) -> Digest {
        let tree = Tree::context(root, no_ignore());
        tree.digest(&tree.resolve(&pats(&[pattern])).unwrap())
            .unwrap()
    }

    type Change = Box<dyn Fn(&Path)>;

    #[test]
    fn the_digest_ignores_mtimes_but_not_content_mode_owner_or_names() {
        let t = context();
        let r = t.path();
        let before = digest_of(r, ".");
        filetime::set_file_mtime(r.join("src/main.c"), FileTime::from_unix_time(12345, 0)).unwrap();
        assert_eq!(digest_of(r, "."), before, "mtime changed the digest");

        let changes: Vec<(&str, Change)> = vec![
            (
                "content",
                Box::new(|r: &Path| fs::write(r.join("a.txt"), "other").unwrap()),
            ),
            (
                "mode",
                Box::new(|r: &Path| {
                    fs::set_permissions(r.join("a.txt"), fs::Permissions::from_mode(0o600)).unwrap()
                }),
            ),
            (
                "owner",
                Box::new(|r: &Path| {
                    std::os::unix::fs::chown(r.join("a.txt"), Some(1000), Some(1000)).unwrap()
                }),
            ),
            (
                "name",
                Box::new(|r: &Path| fs::rename(r.join("a.txt"), r.join("z.txt")).unwrap()),
            ),
            (
                "link",
                Box::new(|r: &Path| symlink("a.txt", r.join("l")).unwrap()),
            ),
        ];
        for (what, change) in changes {
            let t = context();
            let before = digest_of(t.path(), ".");
            change(t.path());
            assert_ne!(
                digest_of(t.path(), "."),
                before,
                "{what} did not change the digest"
            );
        }
    }

    #[test]
    fn the_digest_is_the_same_for_the_same_tree_elsewhere() {
        let (a, b) = (context(), context());
        assert_eq!(digest_of(a.path(), "src"), digest_of(b.path(), "src"));
        assert_ne!(digest_of(a.path(), "src"), digest_of(a.path(), "."));
    }

    #[test]
    fn excluded_files_do_not_count_in_the_digest() {
        let t = context();
        let tree = Tree::context(t.path(), |rel: &str, _: bool| rel == "src/lib/x.c");
        let sources = tree.resolve(&pats(&["src"])).unwrap();
        let before = tree.digest(&sources).unwrap();
        fs::write(t.path().join("src/lib/x.c"), "changed").unwrap();
        assert_eq!(tree.digest(&sources).unwrap(), before);
    }

    proptest::proptest! {
        #[test]
        fn wildcard_match_never_panics(p in ".{0,20}", n in ".{0,40}") {
            let _ = wildcard_match(&p, &n);
        }
    }
}
