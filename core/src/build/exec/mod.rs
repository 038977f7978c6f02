//! Running a build: each needed stage from its base, each instruction in
//! turn (config-only ones on the config, RUN in a sandbox, COPY, ADD and
//! WORKDIR through an overlay), each step's changes a layer, the cache
//! asked first; then the target stage stored as an image and named.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;

use super::cache::{self, Cache};
use super::commit::store_image;
use super::config::{rfc3339, History, ImageConfig, RootFs};
use super::dockerfile::{parse, CopySpec, Dockerfile, Instr, Kind};
use super::error::{io_ctx, BuildError};
use super::ignore::Ignore;
use super::layer::store_upper;
use super::layer_ref::LayerRef;
use super::plan::{self, Base};
use super::settings::{self, expander, list_expander};
use crate::backend::ExitStatus;
use crate::fsutil::Lock;
use crate::image::{Catalog, ImageStore, Reference};
use crate::spec::{Limits, Network, RunSpec};

mod files;
mod run;

/// What `isola build` was asked.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The build context: the directory COPY and ADD read.
    pub context: PathBuf,
    pub dockerfile: String,
    /// How the Dockerfile is named in messages (`Dockerfile`, `-`).
    pub dockerfile_name: String,
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    pub labels: BTreeMap<String, String>,
    pub network: Network,
    pub limits: Limits,
    /// SOURCE_DATE_EPOCH, or 0: every time the image records.
    pub epoch: u64,
}

/// What the build needs from its caller: where people's lines go, how a
/// RUN's sandbox runs, how an image is pulled and a URL fetched.
pub trait Driver {
    fn say(&mut self, line: &str);
    /// Run `spec` to its end with `instance_dir` as the sandbox's own
    /// directory; the changes are left in `instance_dir/upper`.
    fn run(&mut self, spec: &RunSpec, instance_dir: &Path) -> Result<ExitStatus, BuildError>;
    fn pull(&mut self, image: &str) -> Result<(), BuildError>;
    fn fetch(&mut self, url: &str, dest: &Path) -> Result<(), BuildError>;
}

#[derive(Debug, Clone)]
pub struct Built {
    pub digest: Digest,
    pub names: Vec<String>,
    pub steps: usize,
    pub cached: usize,
    /// An image a tag moved away from, left with no name: the caller
    /// collects it with [`super::collect`] once the build is over.
    pub orphaned: Vec<Digest>,
}

/// Build args docker takes without an ARG (proxies).
const PREDEFINED_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

#[derive(Debug, Clone)]
struct StageState {
    layers: Vec<LayerRef>,
    image: ImageConfig,
    author: Option<String>,
    key: String,
    /// Cache keys of every step with a layer: tied to the image at the end.
    keys: Vec<String>,
    /// The ARGs this stage declared, with their values.
    args: BTreeMap<String, Option<String>>,
}

struct Builder<'a> {
    store: &'a ImageStore,
    opts: &'a BuildOptions,
    df: Dockerfile,
    driver: &'a mut dyn Driver,
    cache: Cache,
    globals: BTreeMap<String, String>,
    ignore: Ignore,
    scratch: PathBuf,
    built: HashMap<usize, StageState>,
    step: usize,
    total: usize,
    cached: usize,
    used_args: BTreeSet<String>,
    counter: usize,
}

pub fn build(
    store: &ImageStore,
    opts: &BuildOptions,
    driver: &mut dyn Driver,
) -> Result<Built, BuildError> {
    let df = parse(&opts.dockerfile, &opts.dockerfile_name)?;
    if df.stages.is_empty() {
        return Err(BuildError::Usage(format!(
            "{}: no FROM instruction; a Dockerfile starts from an image (FROM debian) or from nothing (FROM scratch)",
            opts.dockerfile_name
        )));
    }
    let tags = opts
        .tags
        .iter()
        .map(|t| {
            Reference::parse(t)
                .map(|r| r.to_string())
                .map_err(|e| BuildError::Usage(format!("-t {t}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let globals = plan::global_args(&df, &opts.build_args)?;
    let target = plan::target(&df, opts.target.as_deref())?;
    let order = plan::order(&df, target, &globals, &opts.dockerfile_name)?;

    // Pulls first: a pull may collect what it replaced, which waits for
    // every holder of the store lock, and the build holds it from here on.
    if opts.pull {
        for image in images_needed(&df, &order, &globals, &opts.dockerfile_name)? {
            driver.pull(&image)?;
        }
    }
    let root = store.root();
    let lock = Lock::shared(&root.store_lock()).map_err(io_ctx("locking the image store"))?;
    let scratch = tempfile::Builder::new()
        .prefix(super::sweep::PREFIX)
        .tempdir_in(root.tmp())
        .map_err(io_ctx("creating the build's scratch directory"))?;
    // Held while the build lives: a build scratch whose lock is free was
    // left by an isola that died (see [`super::sweep`]).
    let _alive = Lock::exclusive(&scratch.path().join(super::sweep::LOCK))
        .map_err(io_ctx("locking the build's scratch directory"))?;
    let ignore = match fs::read_to_string(opts.context.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text).map_err(|e| BuildError::Usage(e.to_string()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(io_ctx("reading .dockerignore")(e)),
    };
    let total = order
        .iter()
        .map(|i| 1 + df.stages[*i].instructions.len())
        .sum();
    let mut b = Builder {
        store,
        opts,
        df,
        driver,
        cache: Cache::new(root),
        globals,
        ignore,
        scratch: scratch.path().to_path_buf(),
        built: HashMap::new(),
        step: 0,
        total,
        cached: 0,
        used_args: BTreeSet::new(),
        counter: 0,
    };
    for i in &order {
        let state = b.stage(*i)?;
        b.built.insert(*i, state);
    }
    b.check_args_used()?;
    let mut state = b
        .built
        .remove(&target)
        .ok_or_else(|| BuildError::Usage("the target stage was not built".into()))?;
    let keys: Vec<String> = b
        .built
        .values()
        .flat_map(|s| s.keys.iter().cloned())
        .chain(state.keys.iter().cloned())
        .collect();
    for (k, v) in &opts.labels {
        state
            .image
            .config
            .labels
            .get_or_insert_with(Default::default)
            .insert(k.clone(), v.clone());
    }
    state.image.created = Some(rfc3339(opts.epoch));
    if state.author.is_some() {
        state.image.author = state.author.clone();
    }
    state.image.rootfs = RootFs {
        kind: "layers".into(),
        diff_ids: state.layers.iter().map(|l| l.diff_id.to_string()).collect(),
    };
    if state.image.architecture.is_empty() {
        state.image.architecture = plan::host_arch().to_string();
        state.image.os = "linux".into();
    }
    let digest = store_image(store, &state.image, &state.layers)?;
    b.cache
        .mark_used(&keys, &digest)
        .map_err(io_ctx("recording the build cache"))?;
    let names = if tags.is_empty() {
        vec![digest.to_string()]
    } else {
        // Named now: the key an untagged build of it left goes.
        let id = digest.to_string();
        Catalog::update(root, |c| {
            c.images.remove(&id);
            Ok(())
        })?;
        tags
    };
    let mut orphaned = Vec::new();
    for n in &names {
        b.driver.say(&format!("COMMIT {n}"));
        if let Some(d) = Catalog::set_name(root, n, &digest)? {
            orphaned.push(d);
        }
    }
    let (steps, cached) = (b.step, b.cached);
    drop(scratch);
    drop(lock);
    Ok(Built {
        digest,
        names,
        steps,
        cached,
        orphaned,
    })
}

/// The images the planned stages start from or copy from.
fn images_needed(
    df: &Dockerfile,
    order: &[usize],
    globals: &BTreeMap<String, String>,
    file: &str,
) -> Result<Vec<String>, BuildError> {
    let mut out = Vec::new();
    for i in order {
        let s = &df.stages[*i];
        if let Base::Image(name) = plan::base_of(df, s, globals, file)? {
            out.push(name);
        }
        for ins in &s.instructions {
            if let Kind::Copy(CopySpec { from: Some(f), .. }) = &ins.kind {
                if let Base::Image(name) = plan::copy_source(df, f, *i) {
                    if !f.contains('$') {
                        out.push(name);
                    }
                }
            }
        }
    }
    out.dedup();
    Ok(out)
}

impl Builder<'_> {
    fn at(&self, line: usize) -> String {
        format!("{}:{line}", self.opts.dockerfile_name)
    }

    fn next_dir(&mut self, what: &str) -> Result<PathBuf, BuildError> {
        self.counter += 1;
        let dir = self.scratch.join(format!("{what}-{}", self.counter));
        fs::create_dir_all(&dir).map_err(io_ctx("making the build's scratch directory"))?;
        Ok(dir)
    }

    fn layer_dirs(&self, layers: &[LayerRef]) -> Vec<PathBuf> {
        layers
            .iter()
            .map(|l| self.store.root().layer_dir(l.diff_id.digest()))
            .collect()
    }

    fn stage(&mut self, index: usize) -> Result<StageState, BuildError> {
        let def = self.df.stages[index].clone();
        let file = self.opts.dockerfile_name.clone();
        let base = plan::base_of(&self.df, &def, &self.globals, &file)?;
        plan::check_platform(&self.df, &def, &self.globals, &file)?;
        self.step += 1;
        let shown_base = match &def.name {
            Some(n) => format!("FROM {} AS {n}", def.base),
            None => format!("FROM {}", def.base),
        };
        self.driver
            .say(&format!("STEP {}/{}: {shown_base}", self.step, self.total));
        let mut state = self.base_state(&base, def.line)?;
        if matches!(base, Base::Image(_)) {
            self.onbuild_triggers(&mut state, def.line)?;
        }
        for ins in &def.instructions {
            self.step += 1;
            self.driver
                .say(&format!("STEP {}/{}: {}", self.step, self.total, ins.text));
            self.instruction(&mut state, ins)?;
        }
        Ok(state)
    }

    /// As docker: the ONBUILD triggers of the image a stage starts from
    /// run first, in order, and are not passed on to the image built.
    fn onbuild_triggers(&mut self, state: &mut StageState, line: usize) -> Result<(), BuildError> {
        let Some(triggers) = state.image.config.on_build.take() else {
            return Ok(());
        };
        for trigger in triggers {
            let at = self.at(line);
            let text = format!("FROM scratch\n{trigger}\n");
            let parsed = parse(&text, "ONBUILD").map_err(|e| BuildError::Step {
                at: at.clone(),
                what: format!("the base image's ONBUILD trigger `{trigger}` cannot be read: {e}"),
            })?;
            let Some(mut ins) = parsed
                .stages
                .first()
                .and_then(|s| s.instructions.first())
                .cloned()
            else {
                continue;
            };
            ins.line = line;
            self.driver.say(&format!(
                "--> Running the base image's trigger: ONBUILD {trigger}"
            ));
            self.instruction(state, &ins)?;
        }
        Ok(())
    }

    fn base_state(&mut self, base: &Base, line: usize) -> Result<StageState, BuildError> {
        let fresh = |image: ImageConfig, layers: Vec<LayerRef>, key: String| StageState {
            layers,
            image,
            author: None,
            key,
            keys: Vec::new(),
            args: BTreeMap::new(),
        };
        match base {
            Base::Scratch => Ok(fresh(
                ImageConfig::default(),
                Vec::new(),
                cache::chain("", &["scratch"]),
            )),
            Base::Stage(i) => {
                let s = self.built.get(i).ok_or_else(|| {
                    BuildError::Usage(format!("stage {i} was needed before it was built"))
                })?;
                let mut s = s.clone();
                s.args.clear();
                s.keys.clear();
                Ok(s)
            }
            Base::Image(name) => {
                let (digest, image, layers) = self.read_image(name, &self.at(line))?;
                Ok(fresh(
                    image,
                    layers,
                    cache::chain("", &["image", digest.as_ref()]),
                ))
            }
        }
    }

    /// A stored image's config (as docker writes it) and layers.
    fn read_image(
        &self,
        name: &str,
        at: &str,
    ) -> Result<(Digest, ImageConfig, Vec<LayerRef>), BuildError> {
        let image = self.store.get(name).map_err(|e| match e {
            crate::image::ImageError::NotFound(_) => BuildError::BaseMissing {
                at: at.to_string(),
                image: name.to_string(),
            },
            other => other.into(),
        })?;
        let raw = fs::read(self.store.root().blob(image.config_digest.digest()))
            .map_err(io_ctx(format!("reading the config of {name}")))?;
        let config: ImageConfig = serde_json::from_slice(&raw).map_err(|e| BuildError::Step {
            at: at.to_string(),
            what: format!("the config of {name} cannot be read ({e}); pull or import it again"),
        })?;
        let layers = self
            .store
            .layers(&image)
            .into_iter()
            .map(|l| LayerRef {
                diff_id: l.diff_id,
                digest: l.digest,
                size: l.compressed_size,
                media_type: l.media_type,
            })
            .collect();
        Ok((image.digest, config, layers))
    }

    /// The value of a variable for expansion: ENV wins over ARG, as docker.
    fn lookup(state: &StageState) -> impl Fn(&str) -> Option<String> + '_ {
        move |n: &str| {
            state
                .image
                .config
                .get_env(n)
                .or_else(|| state.args.get(n).cloned().flatten())
        }
    }

    fn history(&self, state: &mut StageState, created_by: String, empty: bool) {
        state.image.history.push(History {
            created: Some(rfc3339(self.opts.epoch)),
            created_by: Some(created_by),
            comment: None,
            empty_layer: empty,
        });
    }

    fn instruction(&mut self, state: &mut StageState, ins: &Instr) -> Result<(), BuildError> {
        let at = self.at(ins.line);
        let escape = self.df.escape;
        if let Kind::Arg(decls) = &ins.kind {
            let mut shown = Vec::new();
            for d in decls {
                let value = match (self.opts.build_args.get(&d.name), &d.default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(def)) => {
                        let lookup = Self::lookup(state);
                        let expanded = expander(escape, &lookup)(def);
                        Some(expanded.map_err(|what| BuildError::Step {
                            at: at.clone(),
                            what,
                        })?)
                    }
                    (None, None) => self.globals.get(&d.name).cloned(),
                };
                self.used_args.insert(d.name.clone());
                shown.push(match &value {
                    Some(v) => format!("{}={v}", d.name),
                    None => d.name.clone(),
                });
                state.args.insert(d.name.clone(), value);
            }
            let created_by = format!("ARG {}", shown.join(" "));
            // Names only: a new value reaches the key of the steps that
            // use it (their text after expansion, a RUN's environment),
            // and leaves the others cached, as docker does.
            let names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
            state.key = cache::chain(&state.key, &["ARG", &names.join(" ")]);
            self.history(state, created_by, true);
            return Ok(());
        }
        let applied = {
            let lookup = Self::lookup(state);
            let (expand, expand_list) = (expander(escape, &lookup), list_expander(escape, &lookup));
            let mut config = state.image.config.clone();
            let mut author = state.author.clone();
            settings::apply(&ins.kind, &mut config, &mut author, &expand, &expand_list)
                .map(|r| r.map(|by| (by, config, author)))
        };
        if let Some(result) = applied {
            let (created_by, config, author) = result.map_err(|what| BuildError::Step {
                at: at.clone(),
                what,
            })?;
            state.image.config = config;
            state.author = author;
            state.key = cache::chain(&state.key, &[&created_by]);
            self.history(state, created_by, true);
            return Ok(());
        }
        match &ins.kind {
            Kind::Run {
                command,
                network,
                other_flags,
            } => self.run(state, &at, command, network.as_deref(), other_flags),
            Kind::Copy(spec) => self.copy(state, &at, spec, false),
            Kind::Add(spec) => self.copy(state, &at, spec, true),
            Kind::Workdir(raw) => self.workdir(state, &at, raw),
            other => Err(BuildError::Step {
                at,
                what: format!("{other:?} cannot be used here"),
            }),
        }
    }

    /// Reuse the step's cached layer if there is one. True on a hit.
    fn reuse_cached(&mut self, state: &mut StageState, key: &str, created_by: &str) -> bool {
        if self.opts.no_cache {
            return false;
        }
        let Some(entry) = self.cache.lookup(key) else {
            return false;
        };
        self.driver
            .say(&format!("--> Using cache {}", &key[..12.min(key.len())]));
        self.cached += 1;
        self.land(state, key, created_by, entry.layer);
        true
    }

    fn land(
        &mut self,
        state: &mut StageState,
        key: &str,
        created_by: &str,
        layer: Option<LayerRef>,
    ) {
        state.key = key.to_string();
        state.keys.push(key.to_string());
        let empty = layer.is_none();
        if let Some(l) = layer {
            state.layers.push(l);
        }
        self.history(state, created_by.to_string(), empty);
    }

    /// Store the changes in `upper` as the step's layer and cache it.
    fn commit_step(
        &mut self,
        state: &mut StageState,
        at: &str,
        key: &str,
        created_by: &str,
        upper: &Path,
        skip: &dyn Fn(&str, bool) -> bool,
    ) -> Result<(), BuildError> {
        let dir = self.next_dir("layer")?;
        let layer = store_upper(self.store, upper, &dir, self.opts.epoch, skip, at)?;
        self.cache
            .record(key, layer.as_ref())
            .map_err(io_ctx("recording the build cache"))?;
        self.land(state, key, created_by, layer);
        Ok(())
    }

    /// A `--build-arg` no ARG takes is most likely a typo: docker only
    /// warns, and the image silently lacks the value; isola refuses.
    fn check_args_used(&self) -> Result<(), BuildError> {
        let globals: BTreeSet<&String> = self.df.global_args.iter().map(|a| &a.name).collect();
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !globals.contains(k))
            .filter(|k| !PREDEFINED_ARGS.contains(&k.as_str()))
            .filter(|k| !plan::platform_args().iter().any(|(p, _)| p == k))
            .collect();
        if unused.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        Err(BuildError::Usage(format!(
            "--build-arg {}: no ARG of the stages built declares it; add `ARG {}` to the Dockerfile or drop the flag",
            names.join(", "),
            names[0]
        )))
    }
}
