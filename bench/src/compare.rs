//! `--compare`: two results.json documents set side by side, figure by
//! figure. Figures are paired by a path that names subjects and workloads,
//! not array positions, so a subject added or reordered pairs nothing wrong.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("the {0} results have no \"schema\": not a results.json written by isola bench")]
    NoSchema(&'static str),
    #[error(
        "the results have different schemas (old {old}, new {new}): their figures do not \
         mean the same, re-run the old benchmark with this isola to compare"
    )]
    SchemaMismatch { old: String, new: String },
}

/// One figure: present in both documents, or in only one (`None` on the
/// other side).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Like `startup.warm[container].summary.median`.
    pub path: String,
    pub old: Option<f64>,
    pub new: Option<f64>,
}

impl Change {
    /// `new - old`.
    pub fn delta(&self) -> Option<f64> {
        Some(self.new? - self.old?)
    }

    /// `(new - old) / |old|`: +0.1 is 10 % more. None when old is 0.
    pub fn relative(&self) -> Option<f64> {
        let old = self.old?;
        if old == 0.0 {
            return None;
        }
        Some((self.new? - old) / old.abs())
    }
}

/// Fields that name an element of an array of objects, in the order they
/// appear in its path key (`runtime[container/cpu]`). `what` and `images`
/// tell apart the disk items of one subject and the sharing steps.
const KEY_FIELDS: [&str; 7] = ["subject", "workload", "key", "id", "name", "what", "images"];

/// Per-run raw series: their summaries are compared instead, and run `k` of
/// one benchmark has nothing to do with run `k` of another.
const RAW_SERIES: [&str; 4] = ["ms", "cpu_ms", "to_init_ms", "to_exit_ms"];

/// Not figures: the probe's own facts, shown as the isolation rows.
const SKIPPED: [&str; 2] = ["schema", "isolation.facts"];

/// Every figure of both documents: the paired ones in the old document's
/// order (object keys sorted, as serde_json holds them), then those only in
/// the old one, then those only in the new one.
pub fn compare(old: &Value, new: &Value) -> Result<Vec<Change>, CompareError> {
    let schema_old = old.get("schema").ok_or(CompareError::NoSchema("old"))?;
    let schema_new = new.get("schema").ok_or(CompareError::NoSchema("new"))?;
    if schema_old != schema_new {
        return Err(CompareError::SchemaMismatch {
            old: schema_old.to_string(),
            new: schema_new.to_string(),
        });
    }

    let old = leaves(old);
    let new = leaves(new);
    let new_index: HashMap<&str, f64> = new.iter().map(|(p, v)| (p.as_str(), *v)).collect();
    let old_index: HashMap<&str, f64> = old.iter().map(|(p, v)| (p.as_str(), *v)).collect();

    let mut paired = Vec::new();
    let mut only_old = Vec::new();
    for (path, value) in &old {
        let change = Change {
            path: path.clone(),
            old: Some(*value),
            new: new_index.get(path.as_str()).copied(),
        };
        if change.new.is_some() {
            paired.push(change);
        } else {
            only_old.push(change);
        }
    }
    let only_new = new
        .iter()
        .filter(|(path, _)| !old_index.contains_key(path.as_str()))
        .map(|(path, value)| Change {
            path: path.clone(),
            old: None,
            new: Some(*value),
        });
    paired.extend(only_old);
    paired.extend(only_new);
    Ok(paired)
}

/// Numeric leaves by path, in document order. A path repeated (two array
/// elements with the same key) gets `#2`, `#3` ... so none is lost.
fn leaves(doc: &Value) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    walk(doc, String::new(), &mut out);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (path, _) in &mut out {
        let n = seen.entry(path.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            path.push_str(&format!("#{n}"));
        }
    }
    out
}

fn walk(value: &Value, path: String, out: &mut Vec<(String, f64)>) {
    if SKIPPED.contains(&path.as_str()) {
        return;
    }
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.push((path, f));
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                if v.is_array() && RAW_SERIES.contains(&k.as_str()) {
                    continue;
                }
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(v, child, out);
            }
        }
        Value::Array(items) => walk_array(items, &path, out),
        Value::String(_) | Value::Bool(_) | Value::Null => {}
    }
}

fn walk_array(items: &[Value], path: &str, out: &mut Vec<(String, f64)>) {
    if let Some(keys) = object_keys(items) {
        for (item, key) in items.iter().zip(keys) {
            if let Value::Object(map) = item {
                for (k, v) in map {
                    let is_key = KEY_FIELDS.contains(&k.as_str());
                    if is_key || (v.is_array() && RAW_SERIES.contains(&k.as_str())) {
                        continue;
                    }
                    walk(v, format!("{path}[{key}].{k}"), out);
                }
            }
        }
    } else if let Some(keys) = tuple_keys(items) {
        for (item, key) in items.iter().zip(keys) {
            let Value::Array(tuple) = item else { continue };
            match &tuple[1..] {
                [one] => walk(one, format!("{path}[{key}]"), out),
                rest => {
                    for (i, v) in rest.iter().enumerate() {
                        walk(v, format!("{path}[{key}][{i}]"), out);
                    }
                }
            }
        }
    } else {
        for (i, v) in items.iter().enumerate() {
            walk(v, format!("{path}[{i}]"), out);
        }
    }
}

/// For an array of objects that all carry key fields: each one's key.
fn object_keys(items: &[Value]) -> Option<Vec<String>> {
    items
        .iter()
        .map(|item| {
            let map = item.as_object()?;
            let parts: Vec<String> = KEY_FIELDS
                .iter()
                .filter_map(|f| match map.get(*f)? {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join("/"))
        })
        .collect()
}

/// For an array of tuples like `[["container", 1.2]]`: each one's first
/// string.
fn tuple_keys(items: &[Value]) -> Option<Vec<String>> {
    items
        .iter()
        .map(|item| match item.as_array()?.first()? {
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0');
    s.trim_end_matches('.').to_string()
}

fn signed(v: f64) -> String {
    let s = number(v);
    if v > 0.0 {
        format!("+{s}")
    } else {
        s
    }
}

/// A plain-text table: `figure  old  new  change (relative)`, then the
/// figures only one side has.
pub fn format(changes: &[Change]) -> String {
    let both: Vec<&Change> = changes
        .iter()
        .filter(|c| c.old.is_some() && c.new.is_some())
        .collect();
    let width = both.iter().map(|c| c.path.len()).max().unwrap_or(0).max(6);
    let mut out = String::new();
    if !both.is_empty() {
        let _ = writeln!(
            out,
            "{:width$}  {:>12}  {:>12}  {:>12}  {:>9}",
            "figure", "old", "new", "change", "relative"
        );
        for c in &both {
            let relative = c
                .relative()
                .map_or_else(|| "n/a".to_string(), |r| format!("{:+.1}%", r * 100.0));
            let _ = writeln!(
                out,
                "{:width$}  {:>12}  {:>12}  {:>12}  {:>9}",
                c.path,
                c.old.map_or_else(String::new, number),
                c.new.map_or_else(String::new, number),
                c.delta().map_or_else(String::new, signed),
                relative
            );
        }
    }
    for (title, side) in [("only in old", true), ("only in new", false)] {
        let only: Vec<(&str, f64)> = changes
            .iter()
            .filter_map(|c| match (c.old, c.new) {
                (Some(v), None) if side => Some((c.path.as_str(), v)),
                (None, Some(v)) if !side => Some((c.path.as_str(), v)),
                _ => None,
            })
            .collect();
        if only.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}:");
        let width = only.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
        for (path, v) in only {
            let _ = writeln!(out, "  {path:width$}  {:>12}", number(v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;
    use serde_json::json;

    fn find<'a>(changes: &'a [Change], path: &str) -> &'a Change {
        changes
            .iter()
            .find(|c| c.path == path)
            .unwrap_or_else(|| panic!("no {path} in {changes:#?}"))
    }

    #[test]
    fn figures_pair_by_subject_not_position() {
        let old = serde_json::to_value(sample()).unwrap();
        let mut newer = sample();
        // Reordered, and the container 10 % slower.
        newer.startup.warm.reverse();
        let container = newer
            .startup
            .warm
            .iter_mut()
            .find(|s| s.subject == "container")
            .unwrap();
        container.summary.median *= 1.1;
        let new = serde_json::to_value(newer).unwrap();

        let changes = compare(&old, &new).unwrap();
        let median = find(&changes, "startup.warm[container].summary.median");
        assert_eq!(median.old, Some(5.3));
        assert!((median.relative().unwrap() - 0.1).abs() < 1e-9);
        assert!((median.delta().unwrap() - 0.53).abs() < 1e-9);
        assert_eq!(
            find(&changes, "startup.warm[vm].summary.median").delta(),
            Some(0.0)
        );
        assert_eq!(
            find(&changes, "startup.warm[container].paired[crun]").old,
            Some(0.49)
        );
        assert_eq!(find(&changes, "startup.cold[vm].ms").old, Some(1420.0));
        assert_eq!(
            find(&changes, "startup.phases[vm].at_ms[kernel boot]").old,
            Some(610.0)
        );
        assert_eq!(
            find(&changes, "runtime[container/cpu].rate").old,
            Some(990_000.0)
        );
        assert_eq!(
            find(&changes, "disk.vm_extra[vm/kernel].bytes").old,
            Some(10_276_044.0)
        );
        assert_eq!(
            find(&changes, "disk.sharing[4].store_bytes").old,
            Some(5_600_000.0)
        );
        assert!(changes.iter().all(|c| c.old.is_some() && c.new.is_some()));
    }

    #[test]
    fn raw_runs_facts_and_keys_are_not_figures() {
        let doc = serde_json::to_value(sample()).unwrap();
        let changes = compare(&doc, &doc).unwrap();
        for c in &changes {
            assert!(!c.path.contains(".ms["), "{}", c.path);
            assert!(!c.path.contains("cpu_ms"), "{}", c.path);
            assert!(!c.path.starts_with("isolation"), "{}", c.path);
            assert!(!c.path.ends_with(".images"), "{}", c.path);
            assert_ne!(c.path, "schema");
        }
    }

    #[test]
    fn figures_on_one_side_only_are_listed() {
        let old = json!({"schema": 1, "memory": [
            {"subject": "container", "host_pss_kib": 1000, "cgroup_kib": 800},
            {"subject": "vm", "host_pss_kib": 90000, "cgroup_kib": null}]});
        let new = json!({"schema": 1, "memory": [
            {"subject": "container", "host_pss_kib": 1100, "cgroup_kib": null},
            {"subject": "crun", "host_pss_kib": 1500}]});
        let changes = compare(&old, &new).unwrap();
        let paths: Vec<(&str, Option<f64>, Option<f64>)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.old, c.new))
            .collect();
        assert_eq!(
            paths,
            [
                ("memory[container].host_pss_kib", Some(1000.0), Some(1100.0)),
                ("memory[container].cgroup_kib", Some(800.0), None),
                ("memory[vm].host_pss_kib", Some(90000.0), None),
                ("memory[crun].host_pss_kib", None, Some(1500.0)),
            ]
        );
        let text = format(&changes);
        assert!(text.contains("+100"), "{text}");
        assert!(text.contains("+10.0%"), "{text}");
        let only_old = text.find("only in old:").unwrap();
        let only_new = text.find("only in new:").unwrap();
        assert!(only_old < only_new);
        assert!(text[only_old..only_new].contains("memory[vm].host_pss_kib"));
        assert!(text[only_new..].contains("memory[crun].host_pss_kib"));
    }

    #[test]
    fn lifecycle_figures_pair_by_subject_and_an_older_run_has_none() {
        let doc = serde_json::to_value(sample()).unwrap();
        let changes = compare(&doc, &doc).unwrap();
        for (path, value) in [
            ("lifecycle.start[container].summary.median", 8.0),
            ("lifecycle.start[container].paired[floor]", 1.8),
            ("lifecycle.exec[nsenter].summary.max", 1.4),
            ("lifecycle.shims[container].rss_kib", 2_560.0),
            ("lifecycle.shims[podman].pss_kib", 1_182.0),
            ("lifecycle.goals[shim_rss].value", 2_560.0),
            ("density[container-detached].host_pss_kib", 9_216.0),
        ] {
            assert_eq!(find(&changes, path).old, Some(value), "{path}");
        }
        assert!(!changes
            .iter()
            .any(|c| c.path.contains("lifecycle.start[container].ms")));

        // A results.json from before the dimension: its figures are new.
        let mut older = sample();
        older.lifecycle = None;
        let old = serde_json::to_value(&older).unwrap();
        assert!(old.get("lifecycle").is_none());
        let back: crate::results::Results = serde_json::from_value(old.clone()).unwrap();
        assert!(back.lifecycle.is_none());
        let changes = compare(&old, &doc).unwrap();
        let median = find(&changes, "lifecycle.start[container].summary.median");
        assert_eq!((median.old, median.new), (None, Some(8.0)));
        assert!(format(&changes).contains("only in new:"));
    }

    #[test]
    fn a_zero_old_figure_has_no_relative_change() {
        let changes =
            compare(&json!({"schema": 1, "x": 0}), &json!({"schema": 1, "x": 5})).unwrap();
        assert_eq!(changes[0].delta(), Some(5.0));
        assert_eq!(changes[0].relative(), None);
        assert!(format(&changes).contains("n/a"));
    }

    #[test]
    fn mismatched_or_missing_schemas_are_refused() {
        let e = compare(&json!({"schema": 1}), &json!({"schema": 2})).unwrap_err();
        assert!(matches!(e, CompareError::SchemaMismatch { .. }));
        assert!(e.to_string().contains("old 1, new 2"), "{e}");
        let e = compare(&json!({"x": 1}), &json!({"schema": 1})).unwrap_err();
        assert!(matches!(e, CompareError::NoSchema("old")));
        let e = compare(&json!({"schema": 1}), &json!([1])).unwrap_err();
        assert!(matches!(e, CompareError::NoSchema("new")));
    }

    #[test]
    fn repeated_keys_are_kept_apart() {
        let doc = json!({"schema": 1, "density": [
            {"subject": "vm", "all_running_ms": 1.0},
            {"subject": "vm", "all_running_ms": 2.0}]});
        let changes = compare(&doc, &doc).unwrap();
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            ["density[vm].all_running_ms", "density[vm].all_running_ms#2"]
        );
    }
}
