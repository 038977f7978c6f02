//! Which stages a build makes and in what order: the target and the stages
//! it needs (its base, the stages it copies from), each once, cycles
//! refused. Stages nothing needs are never built, as BuildKit skips them.

use std::collections::BTreeMap;

use super::dockerfile::{expand_word, Dockerfile, Kind, StageDef};
use super::error::BuildError;

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq)]
pub enum Base {
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image by name, as the store or a registry knows it.
    Image(String),
}

/// A `COPY --from=` value: a stage by index, or an image.
pub fn copy_source(df: &Dockerfile, from: &str, before: usize) -> Base {
    match stage_by_name(df, from) {
        Some(i) => Base::Stage(i),
        None => match from.parse::<usize>() {
            Ok(i) if i < df.stages.len() && i != before => Base::Stage(i),
            _ => Base::Image(from.to_string()),
        },
    }
}

fn stage_by_name(df: &Dockerfile, name: &str) -> Option<usize> {
    let name = name.to_ascii_lowercase();
    df.stages
        .iter()
        .position(|s| s.name.as_deref() == Some(name.as_str()))
}

/// The platform args BuildKit defines in the global scope (FROM lines
/// see them; a stage sees one it declares with a bare `ARG NAME`): isola
/// builds for the host, so build and target are both the host.
pub fn platform_args() -> Vec<(&'static str, String)> {
    let (os, arch) = ("linux", host_arch());
    let platform = format!("{os}/{arch}");
    vec![
        ("BUILDPLATFORM", platform.clone()),
        ("BUILDOS", os.into()),
        ("BUILDARCH", arch.into()),
        ("TARGETPLATFORM", platform),
        ("TARGETOS", os.into()),
        ("TARGETARCH", arch.into()),
    ]
}

/// This host's architecture as image configs name it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A stage's `FROM --platform=`, expanded: refused unless it is the host's
/// (isola runs RUN steps natively, with no emulator).
pub fn check_platform(
    df: &Dockerfile,
    stage: &StageDef,
    globals: &BTreeMap<String, String>,
    file: &str,
) -> Result<(), BuildError> {
    let Some(raw) = &stage.platform else {
        return Ok(());
    };
    let at = format!("{file}:{}", stage.line);
    let platform = expand_word(raw, df.escape, &|n| globals.get(n).cloned()).map_err(|e| {
        BuildError::Step {
            at: at.clone(),
            what: format!("FROM --platform={raw}: {e}"),
        }
    })?;
    let host = format!("linux/{}", host_arch());
    if platform.is_empty() || platform == host {
        return Ok(());
    }
    Err(BuildError::Step {
        at,
        what: format!(
            "FROM --platform={platform}: isola builds for this host's platform ({host}) only; drop the flag or build on a {platform} host"
        ),
    })
}

/// The global ARGs (those before the first FROM) with the values the
/// build gives them, beside the platform args: what a FROM line may expand.
pub fn global_args(
    df: &Dockerfile,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, BuildError> {
    let mut out: BTreeMap<String, String> = platform_args()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for a in &df.global_args {
        let value = match (given.get(&a.name), &a.default) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(d)) => Some(
                expand_word(d, df.escape, &|n| out.get(n).cloned()).map_err(|e| {
                    BuildError::Usage(format!("the default of ARG {}: {e}", a.name))
                })?,
            ),
            (None, None) => None,
        };
        if let Some(v) = value {
            out.insert(a.name.clone(), v);
        }
    }
    Ok(out)
}

/// A stage's base, its FROM expanded with the global ARGs.
pub fn base_of(
    df: &Dockerfile,
    stage: &StageDef,
    globals: &BTreeMap<String, String>,
    file: &str,
) -> Result<Base, BuildError> {
    let at = format!("{file}:{}", stage.line);
    let name = expand_word(&stage.base, df.escape, &|n| globals.get(n).cloned()).map_err(|e| {
        BuildError::Step {
            at: at.clone(),
            what: format!("FROM {}: {e}", stage.base),
        }
    })?;
    if name.is_empty() {
        return Err(BuildError::Step {
            at,
            what: format!(
                "FROM {} names no image once expanded: give the ARG it uses a value (--build-arg NAME=VALUE) or a default",
                stage.base
            ),
        });
    }
    if name == "scratch" {
        return Ok(Base::Scratch);
    }
    // FROM sees only the stages above it; a later one's name is an image.
    match stage_by_name(df, &name) {
        Some(i) if i < stage.index => Ok(Base::Stage(i)),
        _ => Ok(Base::Image(name)),
    }
}

/// The stage the build ends with: `--target` by name or index, else the last.
pub fn target(df: &Dockerfile, wanted: Option<&str>) -> Result<usize, BuildError> {
    let Some(w) = wanted else {
        return Ok(df.stages.len().saturating_sub(1));
    };
    stage_by_name(df, w)
        .or_else(|| w.parse::<usize>().ok().filter(|i| *i < df.stages.len()))
        .ok_or_else(|| {
            let names: Vec<String> = df.stages.iter().filter_map(|s| s.name.clone()).collect();
            BuildError::Usage(format!(
                "--target {w}: the Dockerfile has no stage of that name (its stages: {})",
                if names.is_empty() {
                    "none named".to_string()
                } else {
                    names.join(", ")
                }
            ))
        })
}

/// The stages to build for `target`, each after the stages it needs.
pub fn order(
    df: &Dockerfile,
    target: usize,
    globals: &BTreeMap<String, String>,
    file: &str,
) -> Result<Vec<usize>, BuildError> {
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(df.stages.len());
    for s in &df.stages {
        let mut d = Vec::new();
        if let Base::Stage(i) = base_of(df, s, globals, file)? {
            d.push(i);
        }
        for ins in &s.instructions {
            if let Kind::Copy(c) | Kind::Add(c) = &ins.kind {
                if let Some(from) = &c.from {
                    let from = expand_word(from, df.escape, &|n| globals.get(n).cloned())
                        .unwrap_or_else(|_| from.clone());
                    if let Base::Stage(i) = copy_source(df, &from, usize::MAX) {
                        d.push(i);
                    }
                }
            }
        }
        deps.push(d);
    }
    let mut out = Vec::new();
    let mut state = vec![0u8; df.stages.len()]; // 0 new, 1 in progress, 2 done
    visit(df, &deps, target, &mut state, &mut out, &mut Vec::new())?;
    Ok(out)
}

fn visit(
    df: &Dockerfile,
    deps: &[Vec<usize>],
    at: usize,
    state: &mut [u8],
    out: &mut Vec<usize>,
    path: &mut Vec<usize>,
) -> Result<(), BuildError> {
    match state[at] {
        2 => return Ok(()),
        1 => {
            let start = path.iter().position(|s| *s == at).unwrap_or(0);
            let mut names: Vec<String> = path[start..].iter().map(|i| shown(df, *i)).collect();
            names.push(shown(df, at));
            return Err(BuildError::Usage(format!(
                "the stages depend on each other in a cycle: {}; a stage can only use stages that do not need it",
                names.join(" -> ")
            )));
        }
        _ => {}
    }
    state[at] = 1;
    path.push(at);
    for d in &deps[at] {
        visit(df, deps, *d, state, out, path)?;
    }
    path.pop();
    state[at] = 2;
    out.push(at);
    Ok(())
}

fn shown(df: &Dockerfile, i: usize) -> String {
    match &df.stages[i].name {
        Some(n) => n.clone(),
        None => format!("stage {i}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::dockerfile::parse;

    fn plan(text: &str, target: Option<&str>) -> Result<Vec<usize>, BuildError> {
        let df = parse(text, "Dockerfile").unwrap();
        let g = global_args(&df, &BTreeMap::new())?;
        let t = super::target(&df, target)?;
        order(&df, t, &g, "Dockerfile")
    }

    #[test]
    fn only_the_stages_the_target_needs_in_dependency_order() {
        let text = "FROM busybox AS a\nRUN true\nFROM busybox AS unused\nFROM a AS b\nFROM busybox\nCOPY --from=b /x /x\nCOPY --from=0 /y /y\n";
        assert_eq!(plan(text, None).unwrap(), vec![0, 2, 3]);
        assert_eq!(plan(text, Some("unused")).unwrap(), vec![1]);
        assert_eq!(plan(text, Some("B")).unwrap(), vec![0, 2]);
        assert!(plan(text, Some("nope"))
            .unwrap_err()
            .to_string()
            .contains("its stages: a, unused, b"));
    }

    #[test]
    fn only_the_host_platform_is_built() {
        let df = parse(
            "FROM --platform=$BUILDPLATFORM busybox AS a\nFROM --platform=linux/s390x busybox\n",
            "D",
        )
        .unwrap();
        let g = global_args(&df, &BTreeMap::new()).unwrap();
        assert_eq!(g["TARGETARCH"], host_arch());
        assert!(check_platform(&df, &df.stages[0], &g, "D").is_ok());
        let err = check_platform(&df, &df.stages[1], &g, "D")
            .unwrap_err()
            .to_string();
        assert!(err.contains("D:2") && err.contains("linux/s390x"), "{err}");
    }

    #[test]
    fn a_cycle_is_named() {
        let text =
            "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n";
        let err = plan(text, Some("a")).unwrap_err().to_string();
        assert!(err.contains("cycle: a -> b -> a"), "{err}");
    }

    #[test]
    fn from_expands_global_args_and_knows_scratch() {
        let df = parse(
            "ARG BASE=busy\nARG TAG\nFROM ${BASE}box:${TAG:-1}\nFROM scratch\n",
            "D",
        )
        .unwrap();
        let mut given = BTreeMap::new();
        given.insert("TAG".to_string(), "2".to_string());
        let g = global_args(&df, &given).unwrap();
        assert_eq!(
            base_of(&df, &df.stages[0], &g, "D").unwrap(),
            Base::Image("busybox:2".into())
        );
        assert_eq!(base_of(&df, &df.stages[1], &g, "D").unwrap(), Base::Scratch);
        let df = parse("ARG B\nFROM $B\n", "D").unwrap();
        let err = base_of(&df, &df.stages[0], &BTreeMap::new(), "D")
            .unwrap_err()
            .to_string();
        assert!(err.contains("D:2") && err.contains("--build-arg"), "{err}");
    }
}
