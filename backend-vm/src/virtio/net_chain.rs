//! A packet's descriptor chain as the iovecs of one readv or writev on the
//! tap: the kernel copies between the tap and guest memory directly, with
//! no bounce buffer and no allocation per packet. Every buffer is checked
//! to lie in guest memory and to go the way its queue does.

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd};

use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// Buffers one packet may use: Linux's driver uses at most
/// MAX_SKB_FRAGS + 2 (19), so more is a driver that is not Linux's.
pub const MAX_SEGMENTS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("a buffer the device may not {}", if *.0 { "write" } else { "read" })]
    WrongWay(bool),
    #[error("a buffer outside guest memory")]
    OutsideMemory,
    #[error("more than {MAX_SEGMENTS} buffers")]
    TooManyBuffers,
    #[error("more than {0} bytes")]
    TooLong(usize),
    #[error("no room for the {0}-byte virtio-net header")]
    TooShort(usize),
}

/// The iovecs of one packet: host buffers and a chain's guest buffers,
/// valid for as long as guest memory and those host buffers are borrowed.
pub struct IoVecs<'a> {
    /// One more than a chain may use: the device's own header (transmit)
    /// or its overflow buffer (receive).
    iov: [libc::iovec; MAX_SEGMENTS + 1],
    count: usize,
    /// The chain's buffers in guest memory, in order.
    guest: [(u64, usize); MAX_SEGMENTS],
    guest_count: usize,
    /// The bytes of the chain's buffers (host buffers not counted).
    chain_bytes: usize,
    _borrowed: PhantomData<&'a mut [u8]>,
}

impl<'a> IoVecs<'a> {
    pub fn new() -> IoVecs<'a> {
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        IoVecs {
            iov: [empty; MAX_SEGMENTS + 1],
            count: 0,
            guest: [(0, 0); MAX_SEGMENTS],
            guest_count: 0,
            chain_bytes: 0,
            _borrowed: PhantomData,
        }
    }

    /// The bytes of the chain's buffers.
    pub fn chain_bytes(&self) -> usize {
        self.chain_bytes
    }

    /// Add a host buffer the kernel reads from or writes into.
    pub fn push_host(&mut self, buf: &'a mut [u8]) -> Result<(), ChainError> {
        let slot = self
            .iov
            .get_mut(self.count)
            .ok_or(ChainError::TooManyBuffers)?;
        *slot = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        self.count += 1;
        Ok(())
    }

    /// Add `chain`'s buffers but its first `skip` bytes (which must be
    /// there), every one device-writable if `writable` and device-readable
    /// if not, `max` bytes at most after the skipped ones.
    pub fn push_chain(
        &mut self,
        chain: DescriptorChain<&GuestMemoryMmap>,
        mem: &'a GuestMemoryMmap,
        writable: bool,
        skip: usize,
        max: usize,
    ) -> Result<(), ChainError> {
        let mut to_skip = skip;
        for desc in chain {
            if desc.is_write_only() != writable {
                return Err(ChainError::WrongWay(writable));
            }
            let len = desc.len() as usize;
            if to_skip >= len {
                to_skip -= len;
                continue;
            }
            let addr = desc
                .addr()
                .0
                .checked_add(to_skip as u64)
                .ok_or(ChainError::OutsideMemory)?;
            let len = len - to_skip;
            to_skip = 0;
            self.push_guest(mem, addr, len, max)?;
        }
        if to_skip > 0 {
            return Err(ChainError::TooShort(skip));
        }
        Ok(())
    }

    fn push_guest(
        &mut self,
        mem: &'a GuestMemoryMmap,
        addr: u64,
        len: usize,
        max: usize,
    ) -> Result<(), ChainError> {
        let total = self.chain_bytes.saturating_add(len);
        if total > max {
            return Err(ChainError::TooLong(max));
        }
        let slice = mem
            .get_slice(GuestAddress(addr), len)
            .map_err(|_| ChainError::OutsideMemory)?;
        let (Some(slot), Some(guest)) = (
            self.iov.get_mut(self.count),
            self.guest.get_mut(self.guest_count),
        ) else {
            return Err(ChainError::TooManyBuffers);
        };
        *slot = libc::iovec {
            iov_base: slice.ptr_guard_mut().as_ptr().cast(),
            iov_len: len,
        };
        *guest = (addr, len);
        self.count += 1;
        self.guest_count += 1;
        self.chain_bytes = total;
        Ok(())
    }

    /// Write `bytes` over the start of the chain's buffers (the header of
    /// a received packet); false if they are too short.
    pub fn write_chain_start(&self, mem: &GuestMemoryMmap, bytes: &[u8]) -> bool {
        let mut rest = bytes;
        for &(addr, len) in &self.guest[..self.guest_count] {
            if rest.is_empty() {
                break;
            }
            let n = len.min(rest.len());
            if mem.write_slice(&rest[..n], GuestAddress(addr)).is_err() {
                return false;
            }
            rest = &rest[n..];
        }
        rest.is_empty()
    }

    /// One packet from `fd` into the buffers, in order.
    pub fn readv(&self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        // SAFETY: each iovec is a host buffer or a slice of guest memory,
        // both borrowed for 'a, which `self` does not outlive; the guest's
        // own accesses to its memory are not Rust references.
        let n = unsafe { libc::readv(fd.as_raw_fd(), self.iov.as_ptr(), self.count as i32) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// The buffers, in order, to `fd` as one packet.
    pub fn writev(&self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        // SAFETY: as for `readv`; the kernel only reads them.
        let n = unsafe { libc::writev(fd.as_raw_fd(), self.iov.as_ptr(), self.count as i32) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}
