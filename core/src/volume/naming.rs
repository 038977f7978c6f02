//! Volume names (Docker's rule) and sizes as people write them (`64m`, `1G`).

use super::error::VolumeError;
use super::MAX_NAME_LEN;

/// Docker's rule (see [`crate::naming::check_name`]).
pub fn validate_name(name: &str) -> Result<(), VolumeError> {
    crate::naming::check_name(name, MAX_NAME_LEN).map_err(|why| VolumeError::BadName {
        name: name.to_string(),
        why,
    })
}

/// Parse a size like Docker does, in binary multiples: `1073741824`, `512k`,
/// `64m`, `1g`, `1G`, `1GiB`, `10MB`, `1.5g`.
pub fn parse_size(s: &str) -> Result<u64, VolumeError> {
    let bad = |why: &str| VolumeError::BadSize {
        given: s.to_string(),
        why: why.to_string(),
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim_start();
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => {
            return Err(bad(&format!(
                "unknown unit {unit:?} (use bytes, or k, m, g or t, e.g. 64m or 1GiB)"
            )))
        }
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(bad(
            "expected a number of bytes, or one with a unit such as 64m or 1g",
        ));
    }
    if frac.contains('.') {
        return Err(bad("it is not a number"));
    }
    let too_large = || bad("it is too large");
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    // Fractions count down to the byte, rounding down (Docker truncates too).
    let frac = &frac[..frac.len().min(18)];
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad("it is not a number"))?
    };
    let bytes = (whole << shift) + ((frac_value << shift) / 10u128.pow(frac.len() as u32));
    u64::try_from(bytes).map_err(|_| too_large())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["a", "data", "my-vol_1.2", "0", "A.b-C_d", &"x".repeat(64)] {
            assert!(validate_name(ok).is_ok(), "{ok:?} should be valid");
        }
        for bad in [
            "",
            ".hidden",
            "-dash",
            "_under",
            "a/b",
            "..",
            "../etc",
            "a b",
            "vol:ro",
            "é",
            &"x".repeat(65),
        ] {
            let err = validate_name(bad).expect_err(bad).to_string();
            assert!(
                err.starts_with(&format!("invalid volume name {bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn sizes_parse_in_binary_multiples() {
        for (given, want) in [
            ("0", 0),
            ("1048576", 1 << 20),
            ("100b", 100),
            ("512k", 512 << 10),
            ("512K", 512 << 10),
            ("64m", 64 << 20),
            ("10MB", 10 << 20),
            ("10MiB", 10 << 20),
            ("1g", 1 << 30),
            ("1G", 1 << 30),
            ("1GiB", 1 << 30),
            ("1gb", 1 << 30),
            ("2t", 2 << 40),
            ("1.5g", 3 << 29),
            (".5k", 512),
            ("1.k", 1024),
            (" 64 m ", 64 << 20),
        ] {
            assert_eq!(parse_size(given).unwrap(), want, "{given:?}");
        }
        for bad in [
            "",
            "m",
            "-1",
            "1x",
            "1.2.3g",
            "1 gigabyte",
            "99999999999999999999999g",
            ".",
        ] {
            let err = parse_size(bad).expect_err(bad).to_string();
            assert!(err.starts_with(&format!("invalid size {bad:?}")), "{err}");
        }
    }
}
