//! `--explain`: one line before and after each step of building a sandbox,
//! saying what is done, why, and how long it took — for people learning how
//! containers and VMs work. Silent unless enabled. Steps of two processes
//! (isola and the sandbox's first process) run at once and their lines
//! interleave, so the line after a step names it again.

use std::io::Write;
use std::time::Instant;

#[derive(Debug, Clone, Copy, Default)]
pub struct Explain {
    pub enabled: bool,
}

impl Explain {
    /// Run `step`, announcing `what` and `why` before it and its duration after.
    pub fn step<T>(&self, what: &str, why: &str, step: impl FnOnce() -> T) -> T {
        if !self.enabled {
            return step();
        }
        line(&format!("explain: {what} — {why}\n"));
        let t = Instant::now();
        let out = step();
        line(&format!(
            "explain:   done in {:.3} ms: {what}\n",
            t.elapsed().as_secs_f64() * 1e3
        ));
        out
    }

    /// A line with no step of its own.
    pub fn say(&self, text: &str) {
        if self.enabled {
            line(&format!("explain: {text}\n"));
        }
    }
}

/// One line in one write(2): stderr is unbuffered, and a line formatted
/// straight into it is several writes, between which the other process's
/// line may land.
fn line(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}
