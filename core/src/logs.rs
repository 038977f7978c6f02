//! A sandbox's stdout and stderr on disk in the CRI log format that kubelet
//! reads and conmon writes (`<time> <stream> <F|P> <bytes>`, one entry a
//! line), rotated by size like docker's `max-size`/`max-file`, and read back
//! whole, filtered (`--since`, `--tail`) or followed across rotations (`-f`).

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The most bytes of output one entry carries; a longer line becomes several
/// `P` entries and a final `F`, so no reader ever needs more than this (plus
/// the header) to hold one entry.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024;

/// A line this long without a newline was not written by a CRI writer: a
/// reader drops it rather than buffer a corrupt file without bound.
const MAX_LINE: usize = 1 << 20;

/// How often a [`Follower`] looks for new entries.
const POLL: Duration = Duration::from_millis(100);

/// The last second `format_time` can write (9999-12-31T23:59:59Z).
const LAST_SECOND: u64 = 253_402_300_799;

const EXPECTED_LINE: &str = "expected `<RFC 3339 time> <stdout|stderr> <F|P> <bytes>`";

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("opening log {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing log {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("rotating log {}", path.display())]
    Rotate {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading log {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("bad log line: {reason}; {EXPECTED_LINE}")]
    BadLine { reason: &'static str },
    #[error(
        "bad --since {0:?}: expected an RFC 3339 time (2026-12-07T05:20:33Z, \
         2026-12-07T05:20:33.5+01:00), a Unix timestamp (1765084833 or \
         1765084833.5) or a duration before now (42s, 10m, 1h30m)"
    )]
    BadSince(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// One line of the log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub time: SystemTime,
    pub stream: Stream,
    /// The bytes end mid-line: no newline follows them in the output.
    pub partial: bool,
    /// Raw output, any byte but `\n`.
    pub bytes: Vec<u8>,
}

impl Entry {
    /// The bytes as the workload wrote them: `bytes` and a newline unless
    /// partial.
    pub fn output(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + 1);
        out.extend_from_slice(&self.bytes);
        if !self.partial {
            out.push(b'\n');
        }
        out
    }

    /// [`Entry::output`] written to `w` without a copy.
    pub fn write_to<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(&self.bytes)?;
        if !self.partial {
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

fn encode(buf: &mut Vec<u8>, stamp: &str, stream: Stream, partial: bool, bytes: &[u8]) {
    buf.extend_from_slice(stamp.as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(stream.as_str().as_bytes());
    buf.extend_from_slice(if partial { b" P " } else { b" F " });
    buf.extend_from_slice(bytes);
    buf.push(b'\n');
}

fn encoded_len(stamp: &str, stream: Stream, bytes: &[u8]) -> u64 {
    (stamp.len() + 1 + stream.as_str().len() + 3 + bytes.len() + 1) as u64
}

/// `time` in RFC 3339 UTC with nanoseconds, as each entry carries it (and
/// `logs -t` prints it): `2026-12-07T05:20:33.123456789Z`.
pub fn format_time(time: SystemTime) -> String {
    // humantime panics on a time it cannot write (before 1970, after 9999);
    // a log line must never take the process down, so such a time is
    // written as the nearest one it can.
    let since_epoch = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .min(Duration::new(LAST_SECOND, 999_999_999));
    humantime::format_rfc3339_nanos(UNIX_EPOCH + since_epoch).to_string()
}

/// Parse one line of a log file (without its `\n`). Reads what other CRI
/// writers produce too: any fraction of a second up to nanoseconds, a
/// `±HH:MM` offset instead of `Z` (conmon writes local time), and tags such
/// as `P:more` (kubelet reads only the first of `:`-separated tags).
pub fn parse_line(line: &[u8]) -> Result<Entry, LogError> {
    let bad = |reason| LogError::BadLine { reason };
    let (time, rest) = split_field(line).ok_or(bad("no space after the time"))?;
    let time = std::str::from_utf8(time)
        .ok()
        .and_then(parse_time)
        .ok_or(bad("the time is not RFC 3339"))?;
    let (stream, rest) = split_field(rest).ok_or(bad("no space after the stream"))?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(bad("the stream is neither stdout nor stderr")),
    };
    // An empty full line written without the space after its tag is still
    // an empty line.
    let (tags, bytes) = split_field(rest).unwrap_or((rest, &[]));
    let partial = match tags.split(|&b| b == b':').next() {
        Some(b"F") => false,
        Some(b"P") => true,
        _ => return Err(bad("the tag is neither F nor P")),
    };
    if bytes.contains(&b'\n') {
        return Err(bad("a newline inside the line"));
    }
    Ok(Entry {
        time,
        stream,
        partial,
        bytes: bytes.to_vec(),
    })
}

fn split_field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = line.iter().position(|&b| b == b' ')?;
    Some((&line[..space], &line[space + 1..]))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn parse_time(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let n = b.len();
    let (end, offset) = if b.last() == Some(&b'Z') {
        (n - 1, 0)
    } else if n > 6 && matches!(b[n - 6], b'+' | b'-') && b[n - 3] == b':' {
        let hours = two_digits(b[n - 5], b[n - 4])?;
        let minutes = two_digits(b[n - 2], b[n - 1])?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        let secs = i64::from(hours * 3600 + minutes * 60);
        (n - 6, if b[n - 6] == b'-' { -secs } else { secs })
    } else {
        return None;
    };
    // humantime lets some junk through after the seconds (`…:07ZZ`), so the
    // shape past them is checked here; it checks the date and time.
    let base = &b[..end];
    if base.len() < 19 {
        return None;
    }
    match base.get(19) {
        None => {}
        Some(b'.') => {
            let fraction = &base[20..];
            if fraction.is_empty() || fraction.len() > 9 {
                return None;
            }
            if !fraction.iter().all(u8::is_ascii_digit) {
                return None;
            }
        }
        Some(_) => return None,
    }
    let mut utc = String::with_capacity(end + 1);
    utc.push_str(&s[..end]);
    utc.push('Z');
    let local = humantime::parse_rfc3339(&utc).ok()?;
    let shift = Duration::from_secs(offset.unsigned_abs());
    if offset >= 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

fn two_digits(a: u8, b: u8) -> Option<u32> {
    let digit = |c: u8| c.is_ascii_digit().then(|| u32::from(c - b'0'));
    Some(digit(a)? * 10 + digit(b)?)
}

/// When to rotate, with docker's `max-size`/`max-file` meaning: `max_files`
/// counts the current file, so at most `max_size * max_files` bytes (plus
/// one entry) are on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: u64,
    /// 0 is taken as 1: the current file only, started over when full.
    pub max_files: u32,
}

impl Default for Rotation {
    fn default() -> Rotation {
        Rotation {
            max_size: 10 << 20,
            max_files: 2,
        }
    }
}

/// `path.n`, the n-th newest rotated file.
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Writes one sandbox's output to its log, rotating it by size.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    /// Bytes in `file`, counted here rather than asked for on every entry.
    size: u64,
    rotation: Rotation,
    /// Entries built but not yet written, all bound for `file`.
    buf: Vec<u8>,
}

impl LogWriter {
    /// Open the log at `path`, appending to what is there: a restarted
    /// sandbox keeps its log.
    pub fn open(path: &Path, rotation: Rotation) -> Result<LogWriter, LogError> {
        let file = create(path)?;
        let size = file
            .metadata()
            .map_err(|source| LogError::Open {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
            buf: Vec::new(),
        })
    }

    /// Log what one read of the workload's `stream` returned: each full line
    /// an `F` entry, a trailing piece without newline a `P` entry written at
    /// once (never held back for the rest of its line: `logs -f` must show a
    /// prompt), lines longer than [`MAX_ENTRY_BYTES`] split into `P` entries.
    ///
    /// The entries go to the file in one write(2) (one per file when a
    /// rotation falls among them), so a reader polling the file sees each
    /// entry whole or not at all, and a large read costs one system call,
    /// not one per line.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<(), LogError> {
        let stamp = format_time(SystemTime::now());
        let mut rest = data;
        while !rest.is_empty() {
            let (line, full) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let line = &rest[..i];
                    rest = &rest[i + 1..];
                    (line, true)
                }
                None => (std::mem::take(&mut rest), false),
            };
            if line.is_empty() {
                self.push(&stamp, stream, false, line)?;
                continue;
            }
            let mut chunks = line.chunks(MAX_ENTRY_BYTES).peekable();
            while let Some(chunk) = chunks.next() {
                let partial = !full || chunks.peek().is_some();
                self.push(&stamp, stream, partial, chunk)?;
            }
        }
        self.flush()
    }

    fn push(
        &mut self,
        stamp: &str,
        stream: Stream,
        partial: bool,
        bytes: &[u8],
    ) -> Result<(), LogError> {
        let held = self.size + self.buf.len() as u64;
        if held > 0 && held + encoded_len(stamp, stream, bytes) > self.rotation.max_size {
            self.flush()?;
            self.rotate()?;
        }
        encode(&mut self.buf, stamp, stream, partial, bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LogError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(&self.buf);
        let len = self.buf.len() as u64;
        self.buf.clear();
        match written {
            Ok(()) => {
                self.size += len;
                Ok(())
            }
            Err(source) => {
                // A short write (a full disk) left an unknown part behind.
                self.size = self.file.metadata().map_or(self.size, |m| m.len());
                Err(LogError::Write {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }

    /// Shift `path.n` to `path.n+1` (the oldest falls off), `path` to
    /// `path.1`, and start a new `path`. A follower holding the old file
    /// sees `path` name another inode and finishes the old one first, which
    /// is why the old file is renamed (or removed), never truncated.
    fn rotate(&mut self) -> Result<(), LogError> {
        let path = self.path.clone();
        let failed = |source| LogError::Rotate {
            path: path.clone(),
            source,
        };
        let gone_ok = |r: io::Result<()>| match r {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        if self.rotation.max_files <= 1 {
            gone_ok(fs::remove_file(&path)).map_err(failed)?;
        } else {
            let kept = self.rotation.max_files - 1;
            for n in (1..kept).rev() {
                gone_ok(fs::rename(rotated(&path, n), rotated(&path, n + 1))).map_err(failed)?;
            }
            gone_ok(fs::rename(&path, rotated(&path, 1))).map_err(failed)?;
        }
        self.file = create(&path)?;
        self.size = 0;
        Ok(())
    }
}

fn create(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// A file's identity, which a rename keeps and a new file does not share.
type FileId = (u64, u64);

/// An open log file, read from where it was left, and the start of its last
/// line while that line is incomplete.
struct Source {
    file: File,
    path: PathBuf,
    id: FileId,
    pending: Vec<u8>,
    /// Dropping the rest of an overlong line.
    discarding: bool,
}

impl Source {
    fn open(path: &Path) -> Result<Option<Source>, LogError> {
        let opened = File::open(path).and_then(|f| {
            let meta = f.metadata()?;
            Ok((f, (meta.dev(), meta.ino())))
        });
        match opened {
            Ok((file, id)) => Ok(Some(Source {
                file,
                path: path.to_path_buf(),
                id,
                pending: Vec::new(),
                discarding: false,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LogError::Open {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Every complete entry written since the last call. An incomplete last
    /// line is kept for the next call: its writer may not be done with it.
    fn read(&mut self, out: &mut Vec<Entry>, skipped: &mut u64) -> Result<(), LogError> {
        let mut chunk = vec![0; 64 * 1024];
        loop {
            let n = match self.file.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(LogError::Read {
                        path: self.path.clone(),
                        source,
                    })
                }
            };
            self.pending.extend_from_slice(&chunk[..n]);
            self.take_lines(out, skipped);
        }
    }

    /// [`Source::read`] for a file its writer has left: an incomplete last
    /// line will never be completed (the writer died mid-write).
    fn finish(mut self, out: &mut Vec<Entry>, skipped: &mut u64) -> Result<(), LogError> {
        self.read(out, skipped)?;
        if !self.pending.is_empty() && !self.discarding {
            *skipped += 1;
            tracing::debug!(path = %self.path.display(), "skipping a log file's unfinished last line");
        }
        Ok(())
    }

    fn take_lines(&mut self, out: &mut Vec<Entry>, skipped: &mut u64) {
        let mut start = 0;
        while let Some(i) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let line = &self.pending[start..start + i];
            if self.discarding {
                self.discarding = false;
            } else {
                match parse_line(line) {
                    Ok(entry) => out.push(entry),
                    Err(e) => {
                        *skipped += 1;
                        tracing::debug!(path = %self.path.display(), error = %e, "skipping a log line");
                    }
                }
            }
            start += i + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE {
            if !self.discarding {
                *skipped += 1;
                tracing::debug!(path = %self.path.display(), "skipping an overlong log line");
            }
            self.discarding = true;
            self.pending.clear();
        }
    }
}

/// The files of one log, newest first: `path` (if it exists) and the
/// rotated files after it, up to (not including) `stop`.
struct Chain {
    current: Option<Source>,
    /// Newest first.
    rotated: Vec<Source>,
}

/// Open the log's files newest first, skipping any seen already: a
/// rotation between two opens then shows as the same file twice (dropped)
/// rather than a file missed, and only the oldest can be lost.
fn open_chain(path: &Path, stop: Option<FileId>) -> Result<Chain, LogError> {
    let current = Source::open(path)?;
    let mut seen: HashSet<FileId> = current.iter().map(|s| s.id).collect();
    let mut rotated_files = Vec::new();
    for n in 1.. {
        let Some(source) = Source::open(&rotated(path, n))? else {
            break;
        };
        if Some(source.id) == stop {
            break;
        }
        if seen.insert(source.id) {
            rotated_files.push(source);
        }
    }
    Ok(Chain {
        current,
        rotated: rotated_files,
    })
}

/// Every entry on disk, oldest first (`path.N` … `path.1`, then `path`);
/// none if there is no log yet. Lines that do not parse are skipped (and
/// logged at debug level), as is a last line still being written.
pub fn read_all(path: &Path) -> Result<Vec<Entry>, LogError> {
    let chain = open_chain(path, None)?;
    let mut out = Vec::new();
    let mut skipped = 0;
    for source in chain.rotated.into_iter().rev() {
        source.finish(&mut out, &mut skipped)?;
    }
    if let Some(mut current) = chain.current {
        current.read(&mut out, &mut skipped)?;
    }
    if skipped > 0 {
        tracing::debug!(path = %path.display(), skipped, "log lines skipped");
    }
    Ok(out)
}

/// `logs --since/--tail`: the entries at or after `since`, then of those
/// the last `tail` lines of output. A line is an `F` entry with the `P`
/// entries of its stream before it, or a trailing group of `P` entries, so
/// `--tail 1` of "a\nb\n" is "b\n" and of "a\nprompt> " is "prompt> ".
/// Lines count in the order they end. (Docker tails before it filters by
/// time; for a log in time order the two agree.)
pub fn select(
    mut entries: Vec<Entry>,
    since: Option<SystemTime>,
    tail: Option<usize>,
) -> Vec<Entry> {
    if let Some(since) = since {
        entries.retain(|e| e.time >= since);
    }
    let Some(tail) = tail else {
        return entries;
    };
    if tail == 0 {
        return Vec::new();
    }
    // A stream's P entries continue its own line, whatever the other stream
    // wrote in between.
    let mut open: [Option<usize>; 2] = [None, None];
    let mut line_end: Vec<usize> = Vec::new();
    let mut line_of = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let slot = &mut open[entry.stream.index()];
        let line = *slot.get_or_insert_with(|| {
            line_end.push(i);
            line_end.len() - 1
        });
        line_end[line] = i;
        if !entry.partial {
            *slot = None;
        }
        line_of.push(line);
    }
    if line_end.len() <= tail {
        return entries;
    }
    let mut ends = line_end.clone();
    ends.sort_unstable();
    let first_kept_end = ends[ends.len() - tail];
    entries
        .into_iter()
        .zip(line_of)
        .filter(|(_, line)| line_end[*line] >= first_kept_end)
        .map(|(entry, _)| entry)
        .collect()
}

/// `logs -f`: every entry on disk, then new ones as they are written,
/// across rotations. It keeps the file it reads open; when `path` names
/// another file, the writer has rotated (it renames only after its last
/// write to the old file), so the old file is read to its end, then any
/// rotated files written after it, then the new `path` from its start.
/// Nothing still on disk is lost; only when more than `max_files`
/// rotations fall between two polls can a file be gone before it is read.
pub struct Follower {
    path: PathBuf,
    /// Files the writer has left, oldest first, to read to their end.
    backlog: VecDeque<Source>,
    /// The file `path` named when last looked, read as it grows.
    current: Option<Source>,
    /// The newest file taken so far, where the next look along the rotated
    /// files stops.
    newest: Option<FileId>,
    started: bool,
    skipped: u64,
}

impl Follower {
    /// Start following the log at `path`, which need not exist yet.
    pub fn open(path: &Path) -> Result<Follower, LogError> {
        let mut follower = Follower {
            path: path.to_path_buf(),
            backlog: VecDeque::new(),
            current: None,
            newest: None,
            started: false,
            skipped: 0,
        };
        follower.take(open_chain(path, None)?);
        Ok(follower)
    }

    /// The next entries, oldest first. The first call returns at once with
    /// every entry already on disk (maybe none), so `--tail` can be applied
    /// to it; later calls wait up to `timeout` for new ones and return none
    /// if nothing came.
    pub fn next_batch(&mut self, timeout: Duration) -> Result<Vec<Entry>, LogError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let batch = self.poll()?;
            let first = !self.started;
            self.started = true;
            if !batch.is_empty() || first {
                return Ok(batch);
            }
            let wait = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => POLL,
            };
            if wait.is_zero() {
                return Ok(batch);
            }
            std::thread::sleep(wait.min(POLL));
        }
    }

    /// Lines skipped so far because they did not parse.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn take(&mut self, chain: Chain) {
        if let Some(newest) = chain.current.as_ref().or(chain.rotated.first()) {
            self.newest = Some(newest.id);
        }
        self.backlog.extend(chain.rotated.into_iter().rev());
        self.current = chain.current;
    }

    fn poll(&mut self) -> Result<Vec<Entry>, LogError> {
        let mut out = Vec::new();
        loop {
            while let Some(old) = self.backlog.pop_front() {
                old.finish(&mut out, &mut self.skipped)?;
            }
            if let Some(current) = &mut self.current {
                current.read(&mut out, &mut self.skipped)?;
            }
            let now = match fs::metadata(&self.path) {
                Ok(meta) => (meta.dev(), meta.ino()),
                // Between the writer's rename and its new file, or before
                // its first: look again next time.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                Err(source) => {
                    return Err(LogError::Read {
                        path: self.path.clone(),
                        source,
                    })
                }
            };
            if self.current.as_ref().map(|c| c.id) == Some(now) {
                return Ok(out);
            }
            if let Some(old) = self.current.take() {
                old.finish(&mut out, &mut self.skipped)?;
            }
            self.take(open_chain(&self.path, self.newest)?);
        }
    }
}

/// What `docker logs --since` takes: an RFC 3339 time (`2026-12-07T05:20:33Z`,
/// with or without a fraction, `Z` or `±HH:MM`; a date alone is its
/// midnight), a Unix timestamp (`1765084833`, `1765084833.5`), or a duration
/// before `now` (`42s`, `10m`, `1h30m`). Docker reads a time without a zone
/// as local time; isola reads it as UTC.
pub fn parse_since(text: &str, now: SystemTime) -> Result<SystemTime, LogError> {
    let bad = || LogError::BadSince(text.to_string());
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_unix(t).ok_or_else(bad);
    }
    if t.len() >= 10 && t.as_bytes()[4] == b'-' {
        return parse_wall_time(t).ok_or_else(bad);
    }
    let ago = humantime::parse_duration(t).map_err(|_| bad())?;
    now.checked_sub(ago).ok_or_else(bad)
}

/// `seconds[.fraction]` since the epoch.
fn parse_unix(t: &str) -> Option<SystemTime> {
    let (secs, fraction) = t.split_once('.').unwrap_or((t, ""));
    if secs.is_empty() || (t.contains('.') && fraction.is_empty()) || fraction.len() > 9 {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let nanos = if fraction.is_empty() {
        0
    } else {
        // Digits and dots only (checked by the caller): a second dot fails here.
        let digits: u32 = fraction.parse().ok()?;
        digits * 10u32.pow(9 - fraction.len() as u32)
    };
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn parse_wall_time(t: &str) -> Option<SystemTime> {
    let mut s = t.to_string();
    if s.len() == 10 {
        s.push_str("T00:00:00");
    }
    if s.as_bytes().get(10) == Some(&b' ') {
        s.replace_range(10..11, "T");
    }
    let b = s.as_bytes();
    let n = b.len();
    let zoned =
        b.last() == Some(&b'Z') || (n > 6 && matches!(b[n - 6], b'+' | b'-') && b[n - 3] == b':');
    if !zoned {
        s.push('Z');
    }
    parse_time(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl Entry {
        /// This entry as a line of the file, newline included.
        fn encode_into(&self, buf: &mut Vec<u8>) {
            let stamp = format_time(self.time);
            encode(buf, &stamp, self.stream, self.partial, &self.bytes);
        }
    }

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn entry(secs: u64, stream: Stream, partial: bool, bytes: &[u8]) -> Entry {
        Entry {
            time: at(secs, 0),
            stream,
            partial,
            bytes: bytes.to_vec(),
        }
    }

    fn output(entries: &[Entry], stream: Stream) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries.iter().filter(|e| e.stream == stream) {
            e.write_to(&mut out).unwrap();
        }
        out
    }

    fn all_output(entries: &[Entry]) -> Vec<u8> {
        entries.iter().flat_map(Entry::output).collect()
    }

    /// Deterministic noise for the bulk tests (no rand crate in core).
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// `len` bytes of any value, about one in 60 a newline.
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len)
                .map(|_| match self.next() % 60 {
                    0 => b'\n',
                    _ => (self.next() % 256) as u8,
                })
                .collect()
        }
    }

    fn on_disk(path: &Path) -> Vec<(PathBuf, u64)> {
        let mut files = Vec::new();
        if let Ok(m) = fs::metadata(path) {
            files.push((path.to_path_buf(), m.len()));
        }
        for n in 1..20 {
            if let Ok(m) = fs::metadata(rotated(path, n)) {
                files.push((rotated(path, n), m.len()));
            }
        }
        files
    }

    const MAX_ENTRY_LINE: u64 = 30 + 1 + 6 + 3 + MAX_ENTRY_BYTES as u64 + 1;

    #[test]
    fn round_trip_mixed_streams_and_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::open(&path, Rotation::default()).unwrap();
        w.write(Stream::Stdout, b"hello\nwor").unwrap();
        w.write(Stream::Stderr, b"oops\r\n\n").unwrap();
        w.write(Stream::Stdout, b"ld\n").unwrap();
        w.write(Stream::Stdout, b"prompt> ").unwrap();
        let entries = read_all(&path).unwrap();
        let shape: Vec<_> = entries
            .iter()
            .map(|e| (e.stream, e.partial, e.bytes.as_slice()))
            .collect();
        assert_eq!(
            shape,
            [
                (Stream::Stdout, false, &b"hello"[..]),
                (Stream::Stdout, true, b"wor"),
                (Stream::Stderr, false, b"oops\r"),
                (Stream::Stderr, false, b""),
                (Stream::Stdout, false, b"ld"),
                (Stream::Stdout, true, b"prompt> "),
            ]
        );
        assert_eq!(output(&entries, Stream::Stdout), b"hello\nworld\nprompt> ");
        assert_eq!(output(&entries, Stream::Stderr), b"oops\r\n\n");
        let text = fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.ends_with("Z stdout F hello"), "{first}");
        assert_eq!(
            first.len(),
            "2026-12-07T05:20:33.123456789Z stdout F hello".len()
        );
    }

    #[test]
    fn every_byte_value_survives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let data: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let mut w = LogWriter::open(&path, Rotation::default()).unwrap();
        w.write(Stream::Stderr, &data).unwrap();
        let entries = read_all(&path).unwrap();
        assert_eq!(output(&entries, Stream::Stderr), data);
        assert!(entries.iter().all(|e| !e.bytes.contains(&b'\n')));
    }

    #[test]
    fn a_long_line_is_split_into_partial_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut line = Noise(7).bytes(40 * 1024);
        line.retain(|&b| b != b'\n');
        line.resize(40 * 1024, b'x');
        line.push(b'\n');
        let mut w = LogWriter::open(&path, Rotation::default()).unwrap();
        w.write(Stream::Stdout, &line).unwrap();
        let entries = read_all(&path).unwrap();
        let shape: Vec<_> = entries.iter().map(|e| (e.partial, e.bytes.len())).collect();
        assert_eq!(shape, [(true, 16384), (true, 16384), (false, 8192)]);
        assert_eq!(all_output(&entries), line);
    }

    #[test]
    fn open_appends_and_creates_0640() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        LogWriter::open(&path, Rotation::default())
            .unwrap()
            .write(Stream::Stdout, b"one\n")
            .unwrap();
        LogWriter::open(&path, Rotation::default())
            .unwrap()
            .write(Stream::Stdout, b"two\n")
            .unwrap();
        assert_eq!(all_output(&read_all(&path).unwrap()), b"one\ntwo\n");
        // The umask may take bits away, never add them.
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "{mode:o}");
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
    }

    #[test]
    fn rotation_bounds_the_files_and_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rotation = Rotation {
            max_size: 64 * 1024,
            max_files: 3,
        };
        let mut w = LogWriter::open(&path, rotation).unwrap();
        let mut noise = Noise(42);
        let mut written = Vec::new();
        let mut seen_rotated = 0;
        while written.len() < 2 << 20 {
            let len = (noise.next() % 24_000) as usize;
            let data = noise.bytes(len);
            w.write(Stream::Stdout, &data).unwrap();
            written.extend_from_slice(&data);
            let files = on_disk(&path);
            assert!(files.len() <= 3, "{files:?}");
            seen_rotated = seen_rotated.max(files.len());
            let total: u64 = files.iter().map(|(_, len)| len).sum();
            assert!(total <= rotation.max_size * 3 + MAX_ENTRY_LINE, "{total}");
            for (file, len) in &files {
                assert!(*len <= rotation.max_size, "{} holds {len}", file.display());
            }
        }
        assert_eq!(seen_rotated, 3);
        // What is kept is the end of what was written, from an entry on.
        let kept = all_output(&read_all(&path).unwrap());
        assert!(kept.len() > 64 * 1024, "{}", kept.len());
        assert!(written.ends_with(&kept));
    }

    #[test]
    fn one_file_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rotation = Rotation {
            max_size: 1000,
            max_files: 1,
        };
        let mut w = LogWriter::open(&path, rotation).unwrap();
        for i in 0..100 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let files = on_disk(&path);
        assert_eq!(files.len(), 1);
        assert!(files[0].1 <= 1000);
        let kept = all_output(&read_all(&path).unwrap());
        assert!(kept.ends_with(b"line 98\nline 99\n"));
        assert!(!kept.starts_with(b"line 0\n"));
    }

    #[test]
    fn read_all_skips_lines_that_do_not_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut text = b"garbage\n".to_vec();
        entry(1, Stream::Stdout, false, b"ok").encode_into(&mut text);
        text.extend_from_slice(b"2026-12-07T05:20:33Z stdin F no\n\xff\xfe\n");
        entry(2, Stream::Stderr, false, b"fine").encode_into(&mut text);
        text.extend_from_slice(b"2026-12-07T05:20:33Z stdout F half-writ");
        fs::write(rotated(&path, 1), &text).unwrap();
        fs::write(&path, &text).unwrap();
        let entries = read_all(&path).unwrap();
        assert_eq!(all_output(&entries), b"ok\nfine\nok\nfine\n");
    }

    #[test]
    fn parse_line_reads_other_writers() {
        let e = parse_line(b"2026-12-07T06:20:33.5+01:00 stderr P:more x y").unwrap();
        assert_eq!(
            e.time,
            parse_line(b"2026-12-07T05:20:33.500Z stderr F a")
                .unwrap()
                .time
        );
        assert_eq!(
            (e.stream, e.partial, e.bytes.as_slice()),
            (Stream::Stderr, true, &b"x y"[..])
        );
        let empty = parse_line(b"2026-12-07T05:20:33Z stdout F").unwrap();
        assert_eq!(empty.output(), b"\n");
        for bad in [
            &b""[..],
            b"2026-12-07T05:20:33Z",
            b"2026-12-07T05:20:33ZZ stdout F x",
            b"2026-12-07T05:20:33.Z stdout F x",
            b"2026-12-07T05:20:33.1234567890Z stdout F x",
            b"2026-12-07T05:20:33+25:00 stdout F x",
            b"2026-12-07 05:20:33Z stdout F x",
            b"1969-12-07T05:20:33Z stdout F x",
            b"2026-12-07T05:20:33Z stdin F x",
            b"2026-12-07T05:20:33Z stdout X x",
            b"2026-12-07T05:20:33Z stdout F a\nb",
        ] {
            let err = parse_line(bad).unwrap_err();
            assert!(
                err.to_string().contains("expected `<RFC 3339 time>"),
                "{err}"
            );
        }
    }

    #[test]
    fn tail_counts_lines_of_output() {
        let lines = vec![
            entry(1, Stream::Stdout, false, b"a"),
            entry(2, Stream::Stdout, false, b"b"),
        ];
        assert_eq!(all_output(&select(lines.clone(), None, Some(1))), b"b\n");
        assert_eq!(all_output(&select(lines.clone(), None, Some(5))), b"a\nb\n");
        assert!(select(lines, None, Some(0)).is_empty());

        let prompt = vec![
            entry(1, Stream::Stdout, false, b"a"),
            entry(2, Stream::Stdout, true, b"pro"),
            entry(3, Stream::Stdout, true, b"mpt> "),
        ];
        assert_eq!(
            all_output(&select(prompt.clone(), None, Some(1))),
            b"prompt> "
        );
        assert_eq!(all_output(&select(prompt, None, Some(2))), b"a\nprompt> ");

        // stdout's line started before stderr's and ended after it, so it
        // is the last line.
        let interleaved = vec![
            entry(1, Stream::Stdout, false, b"first"),
            entry(2, Stream::Stdout, true, b"lo"),
            entry(3, Stream::Stderr, false, b"err"),
            entry(4, Stream::Stdout, false, b"ng"),
        ];
        let last = select(interleaved.clone(), None, Some(1));
        assert_eq!(output(&last, Stream::Stdout), b"long\n");
        assert!(output(&last, Stream::Stderr).is_empty());
        let two = select(interleaved, None, Some(2));
        assert_eq!(output(&two, Stream::Stdout), b"long\n");
        assert_eq!(output(&two, Stream::Stderr), b"err\n");
    }

    #[test]
    fn since_then_tail() {
        let entries: Vec<_> = (1..=5)
            .map(|i| entry(i, Stream::Stdout, false, format!("{i}").as_bytes()))
            .collect();
        assert_eq!(
            all_output(&select(entries.clone(), Some(at(3, 0)), None)),
            b"3\n4\n5\n"
        );
        assert_eq!(
            all_output(&select(entries.clone(), Some(at(3, 1)), None)),
            b"4\n5\n"
        );
        assert_eq!(
            all_output(&select(entries.clone(), Some(at(2, 0)), Some(2))),
            b"4\n5\n"
        );
        assert_eq!(
            all_output(&select(entries.clone(), Some(at(4, 0)), Some(3))),
            b"4\n5\n"
        );
        assert_eq!(select(entries, None, None).len(), 5);
    }

    #[test]
    fn follower_reads_what_is_there_then_follows_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rotation = Rotation {
            max_size: 1024,
            max_files: 3,
        };
        let mut w = LogWriter::open(&path, rotation).unwrap();
        let mut expected = Vec::new();
        let mut next = 0;
        let mut write_line = |w: &mut LogWriter, expected: &mut Vec<u8>| {
            let line = format!("line {next:04} {}\n", "x".repeat(40));
            next += 1;
            w.write(Stream::Stdout, line.as_bytes()).unwrap();
            expected.extend_from_slice(line.as_bytes());
        };
        for _ in 0..30 {
            write_line(&mut w, &mut expected);
        }
        let mut follower = Follower::open(&path).unwrap();
        let first = follower.next_batch(Duration::from_secs(5)).unwrap();
        assert_eq!(first, read_all(&path).unwrap());
        let mut got = all_output(&first);
        assert!(expected.ends_with(&got));
        let lost = expected.len() - got.len();

        assert!(follower
            .next_batch(Duration::from_millis(10))
            .unwrap()
            .is_empty());

        // One rotation, then max_files rotations between two polls: the
        // file being read is gone from `path.N` but still open, the rest
        // are on disk.
        for rotations in [1, 3] {
            let ino = |p: &Path| fs::metadata(p).unwrap().ino();
            let mut seen = 0;
            let mut before = ino(&path);
            while seen < rotations {
                write_line(&mut w, &mut expected);
                if ino(&path) != before {
                    seen += 1;
                    before = ino(&path);
                }
            }
            write_line(&mut w, &mut expected);
            got.extend(all_output(
                &follower.next_batch(Duration::from_secs(5)).unwrap(),
            ));
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected[lost..])
            );
        }
        assert_eq!(follower.skipped(), 0);
    }

    #[test]
    fn follower_waits_for_a_half_written_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut follower = Follower::open(&path).unwrap();
        assert!(follower
            .next_batch(Duration::from_secs(5))
            .unwrap()
            .is_empty());
        let mut file = create(&path).unwrap();
        file.write_all(b"2026-12-07T05:20:33.000000001Z stdout P hal")
            .unwrap();
        assert!(follower
            .next_batch(Duration::from_millis(150))
            .unwrap()
            .is_empty());
        file.write_all(b"f\n").unwrap();
        let batch = follower.next_batch(Duration::from_secs(5)).unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].output(), b"half");
    }

    #[test]
    fn follower_keeps_up_with_a_writer_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rotation = Rotation {
            max_size: 8 * 1024,
            max_files: 5,
        };
        let mut w = LogWriter::open(&path, rotation).unwrap();
        let mut follower = Follower::open(&path).unwrap();
        assert!(follower.next_batch(Duration::ZERO).unwrap().is_empty());
        const LINES: usize = 250;
        let writer = std::thread::spawn(move || {
            for i in 0..LINES {
                let stream = if i % 7 == 0 {
                    Stream::Stderr
                } else {
                    Stream::Stdout
                };
                w.write(stream, format!("{i:05} {}\n", "y".repeat(70)).as_bytes())
                    .unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < LINES && Instant::now() < deadline {
            got.extend(follower.next_batch(Duration::from_millis(50)).unwrap());
        }
        writer.join().unwrap();
        let numbers: Vec<usize> = got
            .iter()
            .map(|e| std::str::from_utf8(&e.bytes[..5]).unwrap().parse().unwrap())
            .collect();
        assert_eq!(numbers, (0..LINES).collect::<Vec<_>>());
        for (e, i) in got.iter().zip(numbers) {
            assert_eq!(e.stream == Stream::Stderr, i % 7 == 0, "{i}");
        }
        assert!(
            fs::metadata(rotated(&path, 2)).is_ok(),
            "fewer than two rotations"
        );
    }

    #[test]
    fn since_forms() {
        let now = at(1_765_084_833, 0);
        let rfc = parse_since("2025-12-07T05:20:33Z", now).unwrap();
        assert_eq!(rfc, at(1_765_084_833, 0));
        assert_eq!(
            parse_since("2025-12-07T05:20:33.25Z", now).unwrap(),
            at(1_765_084_833, 250_000_000)
        );
        assert_eq!(parse_since("2025-12-07T07:20:33+02:00", now).unwrap(), rfc);
        assert_eq!(parse_since("2025-12-07T03:20:33-02:00", now).unwrap(), rfc);
        assert_eq!(parse_since("2025-12-07T05:20:33", now).unwrap(), rfc);
        assert_eq!(parse_since("2025-12-07 05:20:33", now).unwrap(), rfc);
        assert_eq!(
            parse_since("2025-12-07", now).unwrap(),
            at(1_765_065_600, 0)
        );
        assert_eq!(parse_since("1765084833", now).unwrap(), rfc);
        assert_eq!(
            parse_since(" 1765084833.5 ", now).unwrap(),
            at(1_765_084_833, 500_000_000)
        );
        assert_eq!(
            parse_since("1765084833.000000001", now).unwrap(),
            at(1_765_084_833, 1)
        );
        assert_eq!(parse_since("10", now).unwrap(), at(10, 0));
        assert_eq!(parse_since("42s", now).unwrap(), at(1_765_084_833 - 42, 0));
        assert_eq!(parse_since("10m", now).unwrap(), at(1_765_084_833 - 600, 0));
        assert_eq!(
            parse_since("1h30m", now).unwrap(),
            at(1_765_084_833 - 5400, 0)
        );
        for bad in [
            "",
            "yesterday",
            "-10m",
            "1.2.3",
            "1765084833.",
            ".5",
            "1765084833.1234567890",
            "2025-13-07T05:20:33Z",
            "2025-12-07T05:20",
        ] {
            match parse_since(bad, now) {
                Err(LogError::BadSince(text)) => assert_eq!(text, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        let message = parse_since("soon", now).unwrap_err().to_string();
        assert!(message.contains("a duration before now"), "{message}");
    }

    #[test]
    fn format_time_is_fixed_width_and_never_panics() {
        assert_eq!(
            format_time(at(1_765_084_833, 123_456_789)),
            "2025-12-07T05:20:33.123456789Z"
        );
        assert_eq!(
            format_time(at(1_765_084_833, 0)),
            "2025-12-07T05:20:33.000000000Z"
        );
        assert_eq!(
            format_time(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            format_time(at(LAST_SECOND * 10, 0)),
            "9999-12-31T23:59:59.999999999Z"
        );
    }

    proptest! {
        #[test]
        fn parse_line_never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_line(&line);
        }

        #[test]
        fn parse_line_never_panics_near_the_format(
            time in "[0-9T:.Z+-]{0,40}",
            stream in "(stdout|stderr|std)",
            tag in "[FP:x]{0,3}",
            bytes in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut line = format!("{time} {stream} {tag} ").into_bytes();
            line.extend_from_slice(&bytes);
            let _ = parse_line(&line);
        }

        #[test]
        fn entries_parse_back_equal(
            secs in 0..=LAST_SECOND,
            nanos in 0..1_000_000_000u32,
            stderr in any::<bool>(),
            partial in any::<bool>(),
            bytes in proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..100),
        ) {
            let e = Entry {
                time: at(secs, nanos),
                stream: if stderr { Stream::Stderr } else { Stream::Stdout },
                partial,
                bytes,
            };
            let mut line = Vec::new();
            e.encode_into(&mut line);
            prop_assert_eq!(line.pop(), Some(b'\n'));
            prop_assert_eq!(parse_line(&line).unwrap(), e);
        }
    }
}
