//! The benchmark's progress on stderr: which dimension, how far, what it
//! does now; redrawn in place on a terminal, a line per dimension elsewhere.

use std::io::Write;

use isola_bench::suite;

/// The progress bar, told by the suite where it is.
#[derive(Default)]
pub(super) struct Bar {
    /// Redrawn in place on a terminal; a line per dimension elsewhere.
    tty: bool,
    dimension: String,
    done: usize,
    total: usize,
}

impl suite::Progress for Bar {
    fn step(&mut self, what: &str, done: usize, total: usize) {
        self.dimension = what.to_string();
        self.done = done;
        self.total = total;
        if self.tty {
            self.draw("");
        } else if done < total {
            eprintln!("[{}/{total}] {what}", done + 1);
        }
    }

    fn detail(&mut self, what: &str) {
        if self.tty {
            self.draw(what);
        }
    }
}

impl Bar {
    /// Drawn in place when stderr is a terminal.
    pub(super) fn new() -> Bar {
        Bar {
            tty: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ..Bar::default()
        }
    }

    fn draw(&self, detail: &str) {
        const WIDTH: usize = 24;
        let filled = (self.done * WIDTH).checked_div(self.total).unwrap_or(0);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K[{}{}] {}/{} {} {detail}",
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            self.done,
            self.total,
            self.dimension
        );
        let _ = err.flush();
    }

    pub(super) fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
