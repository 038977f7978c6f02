//! The caller's stdin, framed for COM1 as `isola_guest_spec::wire` says,
//! with the end marker after its last byte.

use std::io::Read;

use isola_guest_spec::wire::{encode, END};

/// A reader of `inner`'s bytes framed, with [`END`] after its last.
pub struct Framed<R> {
    inner: R,
    framed: Vec<u8>,
    at: usize,
    ended: bool,
}

impl<R: Read> Framed<R> {
    pub fn new(inner: R) -> Self {
        Framed {
            inner,
            framed: Vec::new(),
            at: 0,
            ended: false,
        }
    }
}

impl<R: Read> Read for Framed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.framed.len() {
            if self.ended {
                return Ok(0);
            }
            self.framed.clear();
            self.at = 0;
            let mut raw = [0u8; 2048];
            match self.inner.read(&mut raw) {
                Ok(0) => {
                    self.framed.extend_from_slice(&END);
                    self.ended = true;
                }
                Ok(n) => encode(&raw[..n], &mut self.framed),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // A broken stdin ends the input as EOF does.
                Err(_) => {
                    self.framed.extend_from_slice(&END);
                    self.ended = true;
                }
            }
        }
        let n = buf.len().min(self.framed.len() - self.at);
        buf[..n].copy_from_slice(&self.framed[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_the_escape_and_ends_with_the_marker() {
        let mut out = Vec::new();
        Framed::new(&b"a\xffb"[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"a\xff\xffb\xff\x00");
        let mut empty = Vec::new();
        Framed::new(&b""[..]).read_to_end(&mut empty).unwrap();
        assert_eq!(empty, END);
    }
}
