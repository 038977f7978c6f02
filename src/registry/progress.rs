//! Progress of a pull or push on stderr: a bar per layer on a terminal
//! (indicatif), a plain line per layer and state otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use isola_core::image::digest;
use isola_core::registry::Progress;
use oci_spec::image::Digest;

use crate::output;

pub struct Report {
    /// "Pulling" or "Pushing": the verb of a layer in progress.
    verb: &'static str,
    /// What a layer that needs no transfer is called.
    kept: &'static str,
    quiet: bool,
    bars: Option<MultiProgress>,
    active: Mutex<HashMap<usize, ProgressBar>>,
}

impl Report {
    pub fn new(verb: &'static str, kept: &'static str, quiet: bool) -> Report {
        let tty = std::io::stderr().is_terminal();
        Report {
            verb,
            kept,
            quiet,
            bars: (tty && !quiet).then(MultiProgress::new),
            active: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, s: String) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some(mp) => {
                let _ = mp.println(s);
            }
            None => eprintln!("{s}"),
        }
    }

    pub fn finish(&self) {
        if let Some(mp) = &self.bars {
            let _ = mp.clear();
        }
    }
}

impl Progress for Report {
    fn resolved(&self, layers: usize, to_fetch: usize) {
        tracing::debug!(layers, to_fetch, "layers resolved");
    }

    fn layer_reused(&self, _index: usize, d: &Digest) {
        self.line(format!("{}: {}", digest::short(d), self.kept));
    }

    fn layer_started(&self, index: usize, d: &Digest, size: u64, resumed_from: u64) {
        let Some(mp) = &self.bars else {
            let resumed = if resumed_from > 0 {
                format!(", resuming at {}", output::size(resumed_from))
            } else {
                String::new()
            };
            self.line(format!(
                "{}: {} {}{resumed}",
                digest::short(d),
                self.verb.to_lowercase(),
                output::size(size)
            ));
            return;
        };
        let bar = mp.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix}: {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(digest::short(d).to_string());
        bar.set_message(self.verb);
        bar.set_position(resumed_from);
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(index, bar);
    }

    fn layer_bytes(&self, index: usize, bytes: u64) {
        if let Some(bar) = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&index)
        {
            bar.inc(bytes);
        }
    }

    fn layer_done(&self, index: usize, d: &Digest) {
        if let Some(bar) = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&index)
        {
            bar.finish_and_clear();
        }
        self.line(format!("{}: done", digest::short(d)));
    }
}
