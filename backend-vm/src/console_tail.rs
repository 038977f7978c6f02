//! The guest kernel's console before isola-init runs: held back, its last
//! lines kept, so that a boot that fails shows them and one that works
//! shows nothing of the kernel (isola -v shows it all, live).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How many of the last console lines a failed boot shows.
pub const LINES: usize = 20;
/// A line longer than this is cut: the console is the guest's, not ours.
const LINE_MAX: usize = 1024;

#[derive(Debug, Default)]
pub struct Tail {
    lines: VecDeque<Vec<u8>>,
    partial: Vec<u8>,
}

impl Tail {
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' => {
                    if self.lines.len() == LINES {
                        self.lines.pop_front();
                    }
                    self.lines.push_back(std::mem::take(&mut self.partial));
                }
                b'\r' => {}
                _ if self.partial.len() < LINE_MAX => self.partial.push(b),
                _ => {}
            }
        }
    }

    /// The last [`LINES`] lines (an unfinished one counts), each indented
    /// by two spaces, or `None` when the console said nothing.
    pub fn text(&self) -> Option<String> {
        let mut lines: Vec<&[u8]> = self.lines.iter().map(Vec::as_slice).collect();
        if !self.partial.is_empty() {
            lines.push(&self.partial);
        }
        let skip = lines.len().saturating_sub(LINES);
        let text: Vec<String> = lines[skip..]
            .iter()
            .map(|l| format!("  {}", String::from_utf8_lossy(l)))
            .collect();
        (!text.is_empty()).then(|| text.join("\n"))
    }
}

/// COM2's writer on isola's own monitor: into a [`Tail`] until `released`
/// is set (by isola-init's first boot-timer mark), then straight to `out`.
pub struct HeldWriter {
    pub out: Box<dyn Write + Send>,
    pub released: Arc<AtomicBool>,
    pub tail: Arc<Mutex<Tail>>,
}

impl Write for HeldWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.released.load(Ordering::SeqCst) {
            return self.out.write(buf);
        }
        if let Ok(mut tail) = self.tail.lock() {
            tail.push(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_cut_and_indented() {
        let mut t = Tail::default();
        assert_eq!(t.text(), None);
        for i in 0..30 {
            t.push(format!("line {i}\r\n").as_bytes());
        }
        t.push(b"unfinished");
        let text = t.text().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), LINES);
        assert_eq!(lines[0], "  line 11");
        assert_eq!(lines[LINES - 1], "  unfinished");
        t.push(&vec![b'x'; 5000]);
        assert!(t.text().unwrap().lines().all(|l| l.len() <= LINE_MAX + 2));
    }

    #[test]
    fn a_held_writer_holds_until_released_then_passes_through() {
        #[derive(Clone, Default)]
        struct Out(Arc<Mutex<Vec<u8>>>);
        impl Write for Out {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Out::default();
        let mut w = HeldWriter {
            out: Box::new(out.clone()),
            released: Arc::default(),
            tail: Arc::default(),
        };
        w.write_all(b"[    0.1] kernel says\n").unwrap();
        assert!(out.0.lock().unwrap().is_empty());
        w.released.store(true, Ordering::SeqCst);
        w.write_all(b"workload's stderr\n").unwrap();
        assert_eq!(out.0.lock().unwrap().as_slice(), b"workload's stderr\n");
        assert_eq!(
            w.tail.lock().unwrap().text().as_deref(),
            Some("  [    0.1] kernel says")
        );
    }
}
