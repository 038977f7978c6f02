//! `isola logs`: a detached sandbox's output from its CRI log, stdout's
//! lines to stdout and stderr's to stderr, as `docker logs` does; `-f`
//! follows it, across rotations, until the sandbox ends.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use isola_core::instance;
use isola_core::logs::{self, Entry, Follower, Stream};
use isola_core::Root;

use crate::cli::LogsArgs;

pub fn logs(root: &Root, args: &LogsArgs) -> Result<i32> {
    let state = instance::find(root, &args.id)?;
    let dir = root.dir().join("instances").join(&state.id);
    let path = crate::shim::log_path(&dir);
    if !path.exists() && !dir.join("config.json").exists() {
        bail!(
            "sandbox {} ran in the foreground: its output went to its terminal, and isola keeps no log of it (run it with -d)",
            state.id
        );
    }
    let since = args
        .since
        .as_deref()
        .map(|s| logs::parse_since(s, SystemTime::now()))
        .transpose()?;
    let tail = match args.tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .with_context(|| format!("--tail {n}: give a number of lines, or all"))?,
        ),
    };
    let mut printer = Printer {
        timestamps: args.timestamps,
        at_line_start: [true, true],
    };
    if !args.follow {
        let entries = logs::select(logs::read_all(&path)?, since, tail);
        printer.print(&entries);
        return Ok(0);
    }
    let mut follower = Follower::open(&path)?;
    let first = follower.next_batch(Duration::ZERO)?;
    printer.print(&logs::select(first, since, tail));
    loop {
        // Once its isola has let go of the directory, nothing more comes:
        // one last read, then done.
        let over = !instance::is_live(&dir);
        let batch = follower.next_batch(Duration::from_millis(if over { 0 } else { 200 }))?;
        let batch: Vec<Entry> = match since {
            Some(t) => batch.into_iter().filter(|e| e.time >= t).collect(),
            None => batch,
        };
        printer.print(&batch);
        if over {
            return Ok(0);
        }
    }
}

struct Printer {
    timestamps: bool,
    /// Per stream: whether the next bytes begin a line (where -t puts the
    /// time).
    at_line_start: [bool; 2],
}

impl Printer {
    fn print(&mut self, entries: &[Entry]) {
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        for e in entries {
            let (to, start): (&mut dyn Write, &mut bool) = match e.stream {
                Stream::Stdout => (&mut out, &mut self.at_line_start[0]),
                Stream::Stderr => (&mut err, &mut self.at_line_start[1]),
            };
            if self.timestamps && *start {
                let _ = write!(to, "{} ", logs::format_time(e.time));
            }
            let _ = e.write_to(to);
            *start = !e.partial;
        }
        let _ = out.flush();
        let _ = err.flush();
    }
}
