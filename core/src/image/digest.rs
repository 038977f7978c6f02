//! sha256 content digests, computed while bytes stream past (never by reading
//! a blob back), and the checks that bind a blob to its descriptor.

use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};

/// Why an untrusted digest string is refused. The messages are embedded in
/// the image errors that name the image and the descriptor, so each says
/// its cause in words too.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest {given:?}: {source}")]
    Invalid {
        given: String,
        source: oci_spec::OciSpecError,
    },
    #[error("unsupported digest algorithm in {0:?}: only sha256 is supported")]
    Algorithm(String),
}

/// Parse an untrusted digest string; only sha256 is accepted, as in every
/// image isola can run.
pub fn parse(s: &str) -> Result<Digest, DigestError> {
    let d: Digest = s.parse().map_err(|source| DigestError::Invalid {
        given: s.to_string(),
        source,
    })?;
    if *d.algorithm() != DigestAlgorithm::Sha256 {
        return Err(DigestError::Algorithm(s.to_string()));
    }
    Ok(d)
}

/// The digest of a finished hash.
pub fn from_hasher(h: Sha256) -> Digest {
    let hex = hex::encode(h.finalize());
    // A sha256 hex string is always a valid digest.
    parse(&format!("sha256:{hex}")).expect("sha256 hex is a valid digest")
}

pub fn of_bytes(data: &[u8]) -> Digest {
    from_hasher(Sha256::new_with_prefix(data))
}

/// The 12-character short form people type, like a Docker image ID.
pub fn short(d: &Digest) -> &str {
    &d.digest()[..12]
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Read what is left (so trailing bytes are hashed too) and finish,
    /// giving back the inner reader.
    pub fn drain(mut self) -> io::Result<(R, Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.inner, from_hasher(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, from_hasher(self.hasher), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_what_streams_past() {
        let r = HashingReader::new(&b"hello"[..]);
        let (_, d, n) = r.drain().unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            d.digest(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(d, of_bytes(b"hello"));
    }

    #[test]
    fn refuses_other_algorithms_and_garbage() {
        assert!(parse("sha512:abcd").is_err());
        assert!(parse("sha256:xyz").is_err());
        assert!(parse("nonsense").is_err());
    }
}
