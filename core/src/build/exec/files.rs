//! The steps that write files from the host side: COPY and ADD (from the
//! context, another stage or image, a URL, or a heredoc) and WORKDIR, each
//! through a writable overlay of the layers so far.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{Builder, StageState};
use crate::build::cache;
use crate::build::context::{Source, Tree};
use crate::build::copy::{copy_into, write_file, CopyOptions};
use crate::build::dockerfile::CopySpec;
use crate::build::error::{io_ctx, BuildError};
use crate::build::mount::Overlay;
use crate::build::plan::{self, Base};
use crate::build::settings::expander;
use crate::fsutil::try_secure_join;

impl Builder<'_> {
    /// A writable overlay of the stage's layers for a step that changes
    /// files from the host side (COPY, ADD, WORKDIR): `work` gets the
    /// changes in `upper`.
    fn through_overlay(
        &mut self,
        state: &mut StageState,
        at: &str,
        key: &str,
        created_by: &str,
        work: &dyn Fn(&Path) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        let dir = self.next_dir("overlay")?;
        let (upper, workdir, merged, empty) = (
            dir.join("upper"),
            dir.join("work"),
            dir.join("merged"),
            dir.join("empty"),
        );
        for d in [&upper, &workdir, &merged] {
            fs::create_dir_all(d).map_err(io_ctx("making the step's overlay"))?;
        }
        let layers = self.layer_dirs(&state.layers);
        {
            let overlay = Overlay::mount(&layers, Some((&upper, &workdir)), &empty, &merged)
                .map_err(|e| BuildError::StepCaused {
                    at: at.to_string(),
                    what: "the image's layers could not be mounted".into(),
                    source: Box::new(e),
                })?;
            work(overlay.path())?;
        }
        self.commit_step(state, at, key, created_by, &upper, &|_, _| false)?;
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    pub(super) fn workdir(
        &mut self,
        state: &mut StageState,
        at: &str,
        raw: &str,
    ) -> Result<(), BuildError> {
        let dir = {
            let lookup = Self::lookup(state);
            let expanded = expander(self.df.escape, &lookup)(raw);
            expanded.map_err(|what| BuildError::Step {
                at: at.to_string(),
                what,
            })?
        };
        let current = state.image.config.working_dir.clone().unwrap_or_default();
        let dir = if dir.starts_with('/') {
            dir
        } else {
            format!("{}/{dir}", current.trim_end_matches('/'))
        };
        let dir = normalise(&dir);
        state.image.config.working_dir = Some(dir.clone());
        let created_by = format!("WORKDIR {dir}");
        let key = cache::chain(&state.key, &[&created_by]);
        if self.reuse_cached(state, &key, &created_by) {
            return Ok(());
        }
        // As docker: WORKDIR makes the directory when the image lacks it.
        let make = |root: &Path| {
            let path = try_secure_join(root, &dir)
                .map_err(io_ctx(format!("WORKDIR {dir}: resolving it")))?;
            fs::create_dir_all(&path).map_err(io_ctx(format!("WORKDIR {dir}: making it")))
        };
        self.through_overlay(state, at, &key, &created_by, &make)
    }

    pub(super) fn copy(
        &mut self,
        state: &mut StageState,
        at: &str,
        spec: &CopySpec,
        add: bool,
    ) -> Result<(), BuildError> {
        let verb = if add { "ADD" } else { "COPY" };
        let step_err = |what: String| BuildError::Step {
            at: at.to_string(),
            what: format!("{verb}: {what}"),
        };
        let (sources, dest, from, chown, chmod) = {
            let lookup = Self::lookup(state);
            let expand = expander(self.df.escape, &lookup);
            let sources = spec
                .sources
                .iter()
                .map(|s| expand(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(step_err)?;
            let dest = expand(&spec.dest).map_err(step_err)?;
            let from = spec
                .from
                .as_deref()
                .map(&expand)
                .transpose()
                .map_err(step_err)?;
            let chown = spec
                .chown
                .as_deref()
                .map(&expand)
                .transpose()
                .map_err(step_err)?;
            let chmod = spec
                .chmod
                .as_deref()
                .map(&expand)
                .transpose()
                .map_err(step_err)?;
            (sources, dest, from, chown, chmod)
        };
        let layers = self.layer_dirs(&state.layers);
        let owner = match &chown {
            None => None,
            Some(c) => {
                let user = crate::user::resolve(c, &layers)
                    .map_err(|e| step_err(format!("--chown={c}: {e}")))?;
                // docker: a user without a group gets the same number as gid.
                let gid = if c.contains(':') { user.gid } else { user.uid };
                Some((user.uid, gid))
            }
        };
        let mode = match &chmod {
            None => None,
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        step_err(format!("--chmod={m}: give an octal mode such as 0755"))
                    })?,
            ),
        };
        let urls: Vec<&String> = sources
            .iter()
            .filter(|s| s.starts_with("http://") || s.starts_with("https://"))
            .collect();
        if !urls.is_empty() && (!add || urls.len() != sources.len()) {
            return Err(step_err(if add {
                "a URL and local files in one ADD; give them in two ADDs".into()
            } else {
                "COPY takes no URLs; use ADD to fetch one".into()
            }));
        }

        // Where the sources come from, mounted if they are another
        // stage's or image's files.
        let mut _from_mount = None;
        let tree = if !urls.is_empty() {
            let dir = self.next_dir("download")?;
            for url in &urls {
                let name = url_file_name(url);
                let file = dir.join(&name);
                self.driver.fetch(url, &file)?;
                // docker gives a download mode 0600.
                fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
                    .map_err(io_ctx(format!("ADD {url}")))?;
            }
            Tree::filesystem(dir)
        } else if let Some(f) = &from {
            let from_layers = match plan::copy_source(&self.df, f, usize::MAX) {
                Base::Stage(i) => {
                    let s = self.built.get(&i).ok_or_else(|| {
                        step_err(format!(
                            "--from={f}: that stage was not built before this one"
                        ))
                    })?;
                    s.layers.clone()
                }
                Base::Image(name) => self.read_image(&name, at)?.2,
                Base::Scratch => Vec::new(),
            };
            let dir = self.next_dir("from")?;
            let (target, empty) = (dir.join("root"), dir.join("empty"));
            fs::create_dir_all(&target).map_err(io_ctx("making a mount point"))?;
            let overlay = Overlay::mount(&self.layer_dirs(&from_layers), None, &empty, &target)
                .map_err(|e| BuildError::StepCaused {
                    at: at.to_string(),
                    what: format!("{verb} --from={f}: its files could not be mounted"),
                    source: Box::new(e),
                })?;
            _from_mount = Some(overlay);
            Tree::filesystem(target)
        } else {
            Tree::context(self.opts.context.clone(), self.ignore.clone())
        };
        let patterns: Vec<String> = if urls.is_empty() {
            sources.clone()
        } else {
            urls.iter().map(|u| url_file_name(u)).collect()
        };
        let resolved: Vec<Source> = if patterns.is_empty() {
            Vec::new()
        } else {
            tree.resolve(&patterns)
                .map_err(|e| step_err(e.to_string()))?
        };
        let files = if resolved.is_empty() {
            String::new()
        } else {
            tree.digest(&resolved)
                .map_err(|e| step_err(e.to_string()))?
                .to_string()
        };
        let heredocs: Vec<(String, String)> = {
            let lookup = Self::lookup(state);
            let expand = expander(self.df.escape, &lookup);
            spec.heredocs
                .iter()
                .map(|h| {
                    let body = if h.expand {
                        expand_body(&h.body, &expand)
                    } else {
                        Ok(h.body.clone())
                    };
                    body.map(|b| (h.delimiter.clone(), b))
                })
                .collect::<Result<_, _>>()
                .map_err(step_err)?
        };
        let mut created_by = format!("{verb} ");
        if let Some(f) = &from {
            created_by.push_str(&format!("--from={f} "));
        }
        if let Some(c) = &chown {
            created_by.push_str(&format!("--chown={c} "));
        }
        if let Some(m) = &chmod {
            created_by.push_str(&format!("--chmod={m} "));
        }
        for s in &sources {
            created_by.push_str(s);
            created_by.push(' ');
        }
        for (name, _) in &heredocs {
            created_by.push_str(&format!("<<{name} "));
        }
        created_by.push_str(&dest);
        let bodies: Vec<&str> = heredocs.iter().map(|(_, b)| b.as_str()).collect();
        let key = cache::chain(&state.key, &[&created_by, &files, &bodies.join("\0")]);
        if self.reuse_cached(state, &key, &created_by) {
            return Ok(());
        }
        let workdir = state
            .image
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".into());
        let opts = CopyOptions {
            owner,
            chmod: mode,
            add,
            keep_owners: from.is_some(),
        };
        let do_copy = |root: &Path| -> Result<(), BuildError> {
            if !resolved.is_empty() {
                copy_into(root, &resolved, &dest, &workdir, &opts)
                    .map_err(|e| step_err(e.to_string()))?;
            }
            for (name, body) in &heredocs {
                write_file(root, &dest, &workdir, name, body.as_bytes(), &opts)
                    .map_err(|e| step_err(e.to_string()))?;
            }
            Ok(())
        };
        self.through_overlay(state, at, &key, &created_by, &do_copy)
    }
}

/// A heredoc body with its variables expanded line by line, whitespace and
/// quotes kept (it is file content, not a word).
fn expand_body(
    body: &str,
    expand: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(body.len());
    for line in body.split_inclusive('\n') {
        let (text, nl) = match line.strip_suffix('\n') {
            Some(t) => (t, "\n"),
            None => (line, ""),
        };
        if text.contains('$') {
            // Quote the line so the word rules keep its spaces and quotes.
            let quoted = format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
            out.push_str(&expand(&quoted)?);
        } else {
            out.push_str(text);
        }
        out.push_str(nl);
    }
    Ok(out)
}

/// The file name ADD gives a download: the URL path's last part.
fn url_file_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => "download".into(),
    }
}

/// `/a/./b/../c/` → `/a/c`.
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names() {
        assert_eq!(normalise("/a/./b/../c/"), "/a/c");
        assert_eq!(normalise("/../x"), "/x");
        assert_eq!(url_file_name("https://h/x/y.tar.gz?x=1"), "y.tar.gz");
        assert_eq!(url_file_name("https://h/"), "download");
    }

    #[test]
    fn heredoc_bodies_expand_and_keep_their_text() {
        let expand = |raw: &str| -> Result<String, String> {
            crate::build::dockerfile::expand_word(raw, '\\', &|n| (n == "V").then(|| "1".into()))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            expand_body("a  \"q\" $V\nplain 'x'\n", &expand).unwrap(),
            "a  \"q\" 1\nplain 'x'\n"
        );
    }
}
