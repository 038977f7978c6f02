//! The shim's resident set after setup, and after each burst of work (an
//! exec, a restart): most of the code it ran (the command line, the image
//! store, the spec, the backend's create) is seldom or never needed again,
//! yet would stay mapped in its page tables and counted in its RSS for the
//! sandbox's whole life. Dropping the read-only file mappings'
//! pages (MADV_DONTNEED) leaves them in the page cache, shared with every
//! other isola, and the few the serving loop touches come back on first
//! use, as minor faults (with the 64 KiB around each that the kernel maps
//! on a fault: about 1 MiB for the loop's code and libc's).

/// Drop the pages of the read-only mappings of files (code, constants)
/// that hold none of our own: a mapping made read-only after it was
/// written (RELRO: the relocated pointers) has copies of its own pages,
/// counted as Anonymous in smaps, and is left alone, as is every writable
/// or anonymous mapping, so nothing is lost.
pub fn shed_unused_pages() {
    // The heap's free pages too (setup's image config, spec and the like
    // are gone): glibc gives them back.
    // SAFETY: malloc_trim only releases memory malloc holds free.
    unsafe { nix::libc::malloc_trim(0) };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut candidate: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if line.ends_with("[stack]") {
            shed_stack_below_us(line);
        }
        if let Some(range) = mapping_header(line) {
            candidate = range;
        } else if let Some(kib) = line.strip_prefix("Anonymous:") {
            // The last field of a mapping that matters here.
            if let Some((start, end)) = candidate.take() {
                if kib.trim() == "0 kB" {
                    shed(start, end);
                }
            }
        }
    }
}

/// For a mapping's header line, `Some` with its range if it is a private,
/// read-only mapping of a file (and `Some(None)` for any other mapping);
/// `None` for the lines of fields under a header.
fn mapping_header(line: &str) -> Option<Option<(usize, usize)>> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let (start, end) = range.split_once('-')?;
    let (Ok(start), Ok(end)) = (
        usize::from_str_radix(start, 16),
        usize::from_str_radix(end, 16),
    ) else {
        return None;
    };
    let perms = fields.next().unwrap_or("");
    // [vdso], [vvar], the heap and the stack are not files.
    let path = fields.nth(3).unwrap_or("");
    let shed =
        path.starts_with('/') && perms.len() == 4 && !perms.contains('w') && perms.ends_with('p');
    Some(shed.then_some((start, end)))
}

/// The main stack's pages below where this call runs (less a margin):
/// setup went deep (the command line's parser, the spec), the serving loop
/// does not, and nothing lives below the stack pointer.
fn shed_stack_below_us(header: &str) {
    const MARGIN: usize = 64 * 1024;
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let Some(Some(start)) = header
        .split('-')
        .next()
        .map(|s| usize::from_str_radix(s, 16).ok())
    else {
        return;
    };
    let end = sp.saturating_sub(MARGIN) & !0xfff;
    if end > start {
        // SAFETY: anonymous stack pages far below the stack pointer, which
        // no frame uses; they read as zeros when the stack grows again.
        unsafe {
            nix::libc::madvise(
                start as *mut nix::libc::c_void,
                end - start,
                nix::libc::MADV_DONTNEED,
            );
        }
    }
}

fn shed(start: usize, end: usize) {
    // SAFETY: a private, read-only mapping of a file with no page of its
    // own: every page is a clean copy of the file's, read again on the
    // next access.
    unsafe {
        nix::libc::madvise(
            start as *mut nix::libc::c_void,
            end - start,
            nix::libc::MADV_DONTNEED,
        );
    }
}
