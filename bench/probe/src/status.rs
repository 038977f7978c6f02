//! Fields of /proc/self/status: capabilities, seccomp, no_new_privs.

/// The value of `Key:` in /proc/<pid>/status text, trimmed.
pub fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// How many capabilities a hex mask such as `CapEff` holds.
pub fn cap_count(hex: &str) -> Option<u32> {
    u64::from_str_radix(hex, 16).ok().map(u64::count_ones)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str =
        "Name:\tsh\nCapEff:\t00000000a80425fb\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n";

    #[test]
    fn fields_are_found_by_their_exact_key() {
        assert_eq!(field(STATUS, "CapEff"), Some("00000000a80425fb"));
        assert_eq!(field(STATUS, "Seccomp"), Some("2"));
        assert_eq!(field(STATUS, "NoNewPrivs"), Some("1"));
        assert_eq!(field(STATUS, "Cap"), None);
    }

    #[test]
    fn docker_default_capabilities_count_fourteen() {
        assert_eq!(cap_count("00000000a80425fb"), Some(14));
        assert_eq!(cap_count("000001ffffffffff"), Some(41));
        assert_eq!(cap_count("zz"), None);
    }
}
