//! Random IDs for sandboxes and scratch directories: 12 hex digits, like a
//! short container ID.

use std::fs;
use std::io;

/// A fresh random ID.
pub fn new_id() -> io::Result<String> {
    let mut b = [0u8; 6];
    fs::File::open("/dev/urandom").and_then(|mut f| io::Read::read_exact(&mut f, &mut b))?;
    Ok(hex::encode(b))
}
