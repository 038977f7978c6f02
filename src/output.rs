//! Output for people: aligned tables and sizes in KiB/MiB/GiB, on stdout
//! because the listing is what the command was asked for.

/// Print rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    table_to(&mut std::io::stdout(), header, rows)
}

/// [`table`] to any writer (stderr for summaries meant for people).
pub fn table_to(out: &mut impl std::io::Write, header: &[&str], rows: &[Vec<String>]) {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&width).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}   "));
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Remove each named thing in turn, as `docker volume rm` and `docker
/// network rm` do: each one removed is printed, one that cannot be is
/// reported and the rest are still removed; the last failure is the error.
pub fn remove_each<E: Into<anyhow::Error>>(
    names: &[String],
    remove: impl Fn(&str) -> Result<(), E>,
) -> anyhow::Result<()> {
    let mut failed: Option<anyhow::Error> = None;
    for name in names {
        match remove(name) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                if let Some(previous) = failed.replace(e.into()) {
                    eprintln!("isola: {previous:#}");
                }
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_du_h() {
        assert_eq!(super::size(512), "512 B");
        assert_eq!(super::size(1536), "1.5 KiB");
        assert_eq!(super::size(3 << 20), "3.0 MiB");
    }
}
