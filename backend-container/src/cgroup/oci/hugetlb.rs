//! Huge page sizes as the hugetlb controller names them in its files
//! ("hugetlb.2MB.limit_in_bytes"), from what config.json writes ("2MB", "2048KB").

const HUGEPAGES: &str = "/sys/kernel/mm/hugepages";

/// The host's huge page sizes, in KiB, from /sys/kernel/mm/hugepages/hugepages-<N>kB.
fn sizes_kib() -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(HUGEPAGES) else {
        return Vec::new();
    };
    let mut out: Vec<u64> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()
        })
        .collect();
    out.sort_unstable();
    out
}

/// The host's huge page sizes, named as the kernel names them.
pub(super) fn sizes() -> Vec<String> {
    sizes_kib().into_iter().map(name).collect()
}

/// The kernel's name for `page_size` when the host has that size.
pub(super) fn kernel_name(page_size: &str) -> Option<String> {
    kernel_name_among(page_size, &sizes_kib())
}

fn kernel_name_among(page_size: &str, sizes_kib: &[u64]) -> Option<String> {
    let kib = parse_kib(page_size)?;
    sizes_kib.contains(&kib).then(|| name(kib))
}

/// "2MB", "2048KB", "1GB" (units of 1024, as the kernel means them) in KiB.
fn parse_kib(text: &str) -> Option<u64> {
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let scale = match unit {
        "KB" | "kB" | "KiB" => 1,
        "MB" | "MiB" => 1 << 10,
        "GB" | "GiB" => 1 << 20,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// The kernel's naming (mm/hugetlb_cgroup.c): the largest unit that divides
/// into at least one.
fn name(kib: u64) -> String {
    if kib >= 1 << 20 {
        format!("{}GB", kib >> 20)
    } else if kib >= 1 << 10 {
        format!("{}MB", kib >> 10)
    } else {
        format!("{kib}KB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_named_as_the_kernel_names_them() {
        let host = [2048, 1 << 20];
        assert_eq!(kernel_name_among("2MB", &host).as_deref(), Some("2MB"));
        assert_eq!(kernel_name_among("2048KB", &host).as_deref(), Some("2MB"));
        assert_eq!(kernel_name_among("1GB", &host).as_deref(), Some("1GB"));
        assert_eq!(kernel_name_among("1024MB", &host).as_deref(), Some("1GB"));
        assert_eq!(name(64), "64KB");
    }

    #[test]
    fn sizes_the_host_lacks_or_cannot_read_are_none() {
        let host = [2048];
        for bad in ["1GB", "4MB", "2M", "MB", "", "2MB/../x", "-2MB"] {
            assert_eq!(kernel_name_among(bad, &host), None, "{bad:?}");
        }
    }
}
