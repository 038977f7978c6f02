//! Whether a path can be opened and read, told apart from being absent or
//! refused: "masked" is how a container hides /proc/kcore (an empty file
//! bound over it).

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// Opened and a byte read (or, for a device, opened).
    Readable,
    /// Opened, but nothing in it: masked.
    Empty,
    /// Not there.
    Absent,
    /// There, but open or read refused.
    Denied,
}

/// Open `path` read-only and read one byte.
pub fn read_one(path: &Path) -> Reach {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) => return from_error(e.kind()),
    };
    let mut b = [0u8; 1];
    match f.read(&mut b) {
        Ok(0) => Reach::Empty,
        Ok(_) => Reach::Readable,
        Err(e) => from_error(e.kind()),
    }
}

/// Open a device node read-write, as a program using it would.
pub fn open_device(path: &Path) -> Reach {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(_) => Reach::Readable,
        Err(e) => from_error(e.kind()),
    }
}

fn from_error(kind: ErrorKind) -> Reach {
    match kind {
        ErrorKind::NotFound => Reach::Absent,
        _ => Reach::Denied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_told_apart_by_what_reading_gives() {
        let t = std::env::temp_dir().join(format!("isola-probe-reach-{}", std::process::id()));
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("full"), "x").unwrap();
        std::fs::write(t.join("empty"), "").unwrap();
        assert_eq!(read_one(&t.join("full")), Reach::Readable);
        assert_eq!(read_one(&t.join("empty")), Reach::Empty);
        assert_eq!(read_one(&t.join("none")), Reach::Absent);
        // A directory opens but cannot be read.
        assert_eq!(read_one(&t), Reach::Denied);
        std::fs::remove_dir_all(&t).unwrap();
    }
}
