//! The command-line switches the tests drive the guest with:
//! `timer`, `smp`, `echo` (a line from COM1), `echo2` (from COM2), `quiet`
//! (no output) and `exit=N`, as space-separated tokens.

fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ').filter(|t| !t.is_empty())
}

// Inlined, so that each call compares against a word of constant length in
// registers rather than through compiler-builtins' memcmp, whose padding
// NOPs (with stacked prefixes) are more for the PVM emulator to get wrong.
#[inline(always)]
pub fn has_token(line: &[u8], word: &[u8]) -> bool {
    tokens(line).any(|t| t == word)
}

/// The status of the last `exit=N` token; 0 when there is none, and also
/// when N is not a decimal number in 0..=255.
pub fn exit_status(line: &[u8]) -> u8 {
    tokens(line)
        .filter_map(|t| t.strip_prefix(b"exit="))
        .last()
        .and_then(parse_u8)
        .unwrap_or(0)
}

fn parse_u8(digits: &[u8]) -> Option<u8> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u8, |n, &d| {
        let d = d.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(d)
    })
}
