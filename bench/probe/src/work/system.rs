//! Workloads that go through the kernel: a bare system call, process
//! creation, a disk flush, sequential disk throughput, console output.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::measure;

/// Each write of `stdout`, 64 KiB, in MiB.
pub const CHUNK_MIB: f64 = 1.0 / 16.0;
const CHUNK: usize = 64 << 10;

/// getpid(2) through syscall(2): libc may cache the pid, and the point is
/// the trip into the kernel.
pub fn getpid(time: Duration) -> io::Result<(u64, f64)> {
    const BATCH: u64 = 1024;
    measure(time, || {
        for _ in 0..BATCH {
            // SAFETY: getpid has no arguments and cannot fail.
            unsafe { libc::syscall(libc::SYS_getpid) };
        }
        Ok(BATCH)
    })
}

/// fork, exec `exe` with `argv` in the child, wait for it to exit 0.
pub fn fork_exec(time: Duration, exe: &CStr, argv: &[&CStr]) -> io::Result<(u64, f64)> {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    measure(time, || {
        // SAFETY: the child calls only execv and _exit, async-signal-safe,
        // on pointers made before the fork.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => return Err(io::Error::last_os_error()),
            0 => unsafe {
                libc::execv(exe.as_ptr(), ptrs.as_ptr());
                libc::_exit(127)
            },
            _ => {}
        }
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is writable.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        if status != 0 {
            return Err(io::Error::other(format!(
                "{} ended with wait status {status:#x}",
                exe.to_string_lossy()
            )));
        }
        Ok(1)
    })
}

/// 4 KiB written over the start of a fresh file in `dir`, then fsync; the
/// same block each time, so that every flush carries as much.
pub fn write_fsync(time: Duration, dir: &Path) -> io::Result<(u64, f64)> {
    let path = dir.join(format!(".isola-probe-fsync-{}", std::process::id()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let _remove = Remove(path);
    let block = [0x5au8; 4096];
    measure(time, || {
        file.write_all_at(&block, 0)?;
        file.sync_all()?;
        Ok(1)
    })
}

/// One op of the sequential workloads, MiB.
pub const SEQ_CHUNK_MIB: f64 = 4.0;
const SEQ_CHUNK: usize = 4 << 20;
/// The file they cycle through: larger than any chunk, small enough for a
/// VM's tmpfs-free volume of the default size.
const SEQ_FILE: u64 = 64 << 20;

fn seq_file(dir: &Path) -> io::Result<(File, Remove)> {
    let path = dir.join(format!(".isola-probe-seq-{}", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok((file, Remove(path)))
}

/// 4 MiB chunks written in turn over a 64 MiB file, each followed by
/// fdatasync, so that every op reaches the device.
pub fn seq_write(time: Duration, dir: &Path) -> io::Result<(u64, f64)> {
    let (file, _remove) = seq_file(dir)?;
    let chunk = vec![0xa5u8; SEQ_CHUNK];
    let mut at = 0;
    measure(time, || {
        file.write_all_at(&chunk, at)?;
        file.sync_data()?;
        at = (at + SEQ_CHUNK as u64) % SEQ_FILE;
        Ok(1)
    })
}

/// A 64 MiB file written and synced, then read 4 MiB at a time, each range
/// dropped from the page cache first (its pages are clean), so that the
/// reads come from the device.
pub fn seq_read(time: Duration, dir: &Path) -> io::Result<(u64, f64)> {
    let (file, _remove) = seq_file(dir)?;
    let mut chunk = vec![0x3cu8; SEQ_CHUNK];
    let mut at = 0;
    while at < SEQ_FILE {
        file.write_all_at(&chunk, at)?;
        at += SEQ_CHUNK as u64;
    }
    file.sync_all()?;
    at = 0;
    measure(time, || {
        // SAFETY: fadvise only reads its arguments; the fd is open.
        let r = unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                at as libc::off_t,
                SEQ_CHUNK as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        file.read_exact_at(&mut chunk, at)?;
        at = (at + SEQ_CHUNK as u64) % SEQ_FILE;
        Ok(1)
    })
}

/// Removes the file when the workload ends, however it ends.
struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// 64 KiB chunks of text to fd 1, unbuffered, as fast as whatever reads
/// them (a terminal, a pipe, a sandbox's console) takes them.
pub fn stdout(time: Duration) -> io::Result<(u64, f64)> {
    let mut chunk = vec![b'.'; CHUNK];
    for line_end in chunk.iter_mut().skip(63).step_by(64) {
        *line_end = b'\n';
    }
    // Not std's Stdout, whose line buffering would split every chunk.
    // SAFETY: fd 1 stays open for the process's life; ManuallyDrop keeps
    // this File from closing it.
    let mut out = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    measure(time, || {
        out.write_all(&chunk)?;
        Ok(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequential_workloads_move_whole_chunks_and_leave_no_file() {
        let dir = std::env::temp_dir().join(format!("isola-probe-seq-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (w, _) = seq_write(Duration::from_millis(20), &dir).unwrap();
        let (r, _) = seq_read(Duration::from_millis(20), &dir).unwrap();
        assert!(w >= 1 && r >= 1);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn getpid_counts_calls() {
        let (ops, _) = getpid(Duration::from_millis(5)).unwrap();
        assert!(ops >= 1024);
    }

    #[test]
    fn fork_exec_waits_for_a_clean_exit_and_reports_a_dirty_one() {
        let (ops, _) = fork_exec(
            Duration::from_millis(20),
            c"/bin/sh",
            &[c"sh", c"-c", c"exit 0"],
        )
        .unwrap();
        assert!(ops >= 1);
        let err = fork_exec(
            Duration::from_millis(20),
            c"/bin/sh",
            &[c"sh", c"-c", c"exit 3"],
        )
        .unwrap_err();
        assert!(err.to_string().contains("0x300"), "{err}");
    }

    #[test]
    fn write_fsync_leaves_no_file_behind() {
        let dir =
            std::env::temp_dir().join(format!("isola-probe-fsync-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ops, _) = write_fsync(Duration::from_millis(20), &dir).unwrap();
        assert!(ops >= 1);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
    }
}
