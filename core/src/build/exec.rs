//! Running a build: each needed stage from its base, each instruction in
//! turn (config-only ones on the config, RUN in a sandbox, COPY, ADD and
//! WORKDIR through an overlay), each step's changes a layer, the cache
//! asked first; then the target stage stored as an image and named.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;

use super::cache::{self, Cache};
use super::commit::store_image;
use super::config::{rfc3339, History, ImageConfig, RootFs};
use super::context::{Source, Tree};
use super::copy::{copy_into, write_file, CopyOptions};
use super::dockerfile::{parse, CommandForm, CopySpec, Dockerfile, Instr, Kind};
use super::error::{io_ctx, BuildError};
use super::ignore::Ignore;
use super::layer::store_upper;
use super::layer_ref::LayerRef;
use super::mount::Overlay;
use super::plan::{self, Base};
use super::settings::{self, command_args, expander, list_expander};
use crate::backend::ExitStatus;
use crate::fsutil::{secure_join, Lock};
use crate::image::{Catalog, ImageStore, Reference};
use crate::spec::{Limits, Network, RunSpec, DEFAULT_PATH};

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

/// Directories a sandbox mounts on; when the image lacks them, a RUN's
/// upper dir gets them empty, and they are not the step's changes.
const MOUNT_POINTS: [&str; 3] = ["proc", "sys", "dev"];

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
        state.image.architecture = host_arch().to_string();
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

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
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

    fn run(
        &mut self,
        state: &mut StageState,
        at: &str,
        command: &CommandForm,
        network: Option<&str>,
        other_flags: &[String],
    ) -> Result<(), BuildError> {
        if let Some(f) = other_flags.first() {
            return Err(BuildError::Step {
                at: at.to_string(),
                what: format!("RUN {f} is not supported by isola build; only --network is"),
            });
        }
        let network = match network {
            None | Some("default") => self.opts.network,
            Some("none") => Network::None,
            Some("host") => Network::Host,
            Some(other) => {
                return Err(BuildError::Step {
                    at: at.to_string(),
                    what: format!("RUN --network={other}: give none, host or default"),
                })
            }
        };
        let args = command_args(command, &state.image.config.shell);
        // As docker: the ARGs in scope reach RUN as environment variables,
        // and so are part of what the step is.
        let arg_env: Vec<(String, String)> = state
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .filter(|(k, _)| state.image.config.get_env(k).is_none())
            .collect();
        let mut created_by = String::from("RUN ");
        if !arg_env.is_empty() {
            created_by.push_str(&format!("|{} ", arg_env.len()));
            for (k, v) in &arg_env {
                created_by.push_str(&format!("{k}={v} "));
            }
        }
        created_by.push_str(&args.join(" "));
        let net_part = if network == Network::Host {
            "network=host"
        } else {
            ""
        };
        let key = cache::chain(&state.key, &[&created_by, net_part]);
        if self.reuse_cached(state, &key, &created_by) {
            return Ok(());
        }

        let layers = self.layer_dirs(&state.layers);
        let lower = if layers.is_empty() {
            let empty = self.next_dir("empty")?;
            vec![empty]
        } else {
            layers.clone()
        };
        let id = crate::id::new_id().map_err(io_ctx("making an ID for the RUN sandbox"))?;
        let mut spec = RunSpec::new(&id, "build step", "", lower, args.clone());
        let mut env = state.image.config.env.clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        env.extend(arg_env.iter().map(|(k, v)| format!("{k}={v}")));
        spec.process.env = env;
        spec.process.cwd = state
            .image
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        if let Some(u) = state.image.config.user.as_deref().filter(|u| !u.is_empty()) {
            spec.process.user = crate::user::resolve(u, &layers).map_err(|e| BuildError::Step {
                at: at.to_string(),
                what: format!("USER {u}: {e}"),
            })?;
        }
        spec.network = network;
        spec.limits = self.opts.limits;
        spec.validate().map_err(|e| BuildError::Step {
            at: at.to_string(),
            what: e.to_string(),
        })?;
        let dir = self.next_dir("run")?;
        // For the sweep, should this isola die before the sandbox is gone.
        fs::write(dir.join(super::sweep::ID), &id).map_err(io_ctx("recording the RUN sandbox"))?;
        let instance = dir.join("sandbox");
        fs::create_dir_all(&instance).map_err(io_ctx("making the RUN sandbox's directory"))?;
        let status = self.driver.run(&spec, &instance)?;
        if status.code() != 0 {
            let how = match status {
                ExitStatus::Exited(c) => format!("exited with code {c}"),
                ExitStatus::Signaled(s) => format!("was killed by signal {s}"),
                ExitStatus::OutOfMemory => {
                    "was killed by the OOM killer at the build's memory limit (--memory)".into()
                }
            };
            return Err(BuildError::RunFailed {
                at: at.to_string(),
                command: args.join(" "),
                code: status.code(),
                how,
            });
        }
        let had: Vec<bool> = MOUNT_POINTS
            .iter()
            .map(|m| layers.iter().any(|l| l.join(m).exists()))
            .collect();
        let skip = move |rel: &str, is_dir: bool| {
            is_dir
                && MOUNT_POINTS
                    .iter()
                    .zip(&had)
                    .any(|(m, had)| rel == *m && !had)
        };
        self.commit_step(state, at, &key, &created_by, &instance.join("upper"), &skip)?;
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    /// A writable overlay of the stage's layers for a step that changes
    /// files from the host side (COPY, ADD, WORKDIR): `work` gets the
    /// changes in `upper`.
    fn through_overlay(
        &mut self,
        state: &mut StageState,
        at: &str,
        key: &str,
        created_by: &str,
        work: &dyn Fn(&Path) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        let dir = self.next_dir("overlay")?;
        let (upper, workdir, merged, empty) = (
            dir.join("upper"),
            dir.join("work"),
            dir.join("merged"),
            dir.join("empty"),
        );
        for d in [&upper, &workdir, &merged] {
            fs::create_dir_all(d).map_err(io_ctx("making the step's overlay"))?;
        }
        let layers = self.layer_dirs(&state.layers);
        {
            let overlay = Overlay::mount(&layers, Some((&upper, &workdir)), &empty, &merged)
                .map_err(|e| BuildError::StepCaused {
                    at: at.to_string(),
                    what: "the image's layers could not be mounted".into(),
                    source: Box::new(e),
                })?;
            work(overlay.path())?;
        }
        self.commit_step(state, at, key, created_by, &upper, &|_, _| false)?;
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    fn workdir(&mut self, state: &mut StageState, at: &str, raw: &str) -> Result<(), BuildError> {
        let dir = {
            let lookup = Self::lookup(state);
            let expanded = expander(self.df.escape, &lookup)(raw);
            expanded.map_err(|what| BuildError::Step {
                at: at.to_string(),
                what,
            })?
        };
        let current = state.image.config.working_dir.clone().unwrap_or_default();
        let dir = if dir.starts_with('/') {
            dir
        } else {
            format!("{}/{dir}", current.trim_end_matches('/'))
        };
        let dir = normalise(&dir);
        state.image.config.working_dir = Some(dir.clone());
        let created_by = format!("WORKDIR {dir}");
        let key = cache::chain(&state.key, &[&created_by]);
        if self.reuse_cached(state, &key, &created_by) {
            return Ok(());
        }
        // As docker: WORKDIR makes the directory when the image lacks it.
        let make = |root: &Path| {
            let path = secure_join(root, &dir);
            fs::create_dir_all(&path).map_err(io_ctx(format!("WORKDIR {dir}: making it")))
        };
        self.through_overlay(state, at, &key, &created_by, &make)
    }

    fn copy(
        &mut self,
        state: &mut StageState,
        at: &str,
        spec: &CopySpec,
        add: bool,
    ) -> Result<(), BuildError> {
        let verb = if add { "ADD" } else { "COPY" };
        let step_err = |what: String| BuildError::Step {
            at: at.to_string(),
            what: format!("{verb}: {what}"),
        };
        let (sources, dest, from, chown, chmod) = {
            let lookup = Self::lookup(state);
            let expand = expander(self.df.escape, &lookup);
            let sources = spec
                .sources
                .iter()
                .map(|s| expand(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(step_err)?;
            let dest = expand(&spec.dest).map_err(step_err)?;
            let from = spec
                .from
                .as_deref()
                .map(&expand)
                .transpose()
                .map_err(step_err)?;
            let chown = spec
                .chown
                .as_deref()
                .map(&expand)
                .transpose()
                .map_err(step_err)?;
            let chmod = spec
                .chmod
                .as_deref()
                .map(&expand)
                .transpose()
                .map_err(step_err)?;
            (sources, dest, from, chown, chmod)
        };
        let layers = self.layer_dirs(&state.layers);
        let owner = match &chown {
            None => None,
            Some(c) => {
                let user = crate::user::resolve(c, &layers)
                    .map_err(|e| step_err(format!("--chown={c}: {e}")))?;
                // docker: a user without a group gets the same number as gid.
                let gid = if c.contains(':') { user.gid } else { user.uid };
                Some((user.uid, gid))
            }
        };
        let mode = match &chmod {
            None => None,
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        step_err(format!("--chmod={m}: give an octal mode such as 0755"))
                    })?,
            ),
        };
        let urls: Vec<&String> = sources
            .iter()
            .filter(|s| s.starts_with("http://") || s.starts_with("https://"))
            .collect();
        if !urls.is_empty() && (!add || urls.len() != sources.len()) {
            return Err(step_err(if add {
                "a URL and local files in one ADD; give them in two ADDs".into()
            } else {
                "COPY takes no URLs; use ADD to fetch one".into()
            }));
        }

        // Where the sources come from, mounted if they are another
        // stage's or image's files.
        let mut _from_mount = None;
        let tree = if !urls.is_empty() {
            let dir = self.next_dir("download")?;
            for url in &urls {
                let name = url_file_name(url);
                let file = dir.join(&name);
                self.driver.fetch(url, &file)?;
                // docker gives a download mode 0600.
                fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
                    .map_err(io_ctx(format!("ADD {url}")))?;
            }
            Tree::filesystem(dir)
        } else if let Some(f) = &from {
            let from_layers = match plan::copy_source(&self.df, f, usize::MAX) {
                Base::Stage(i) => {
                    let s = self.built.get(&i).ok_or_else(|| {
                        step_err(format!(
                            "--from={f}: that stage was not built before this one"
                        ))
                    })?;
                    s.layers.clone()
                }
                Base::Image(name) => self.read_image(&name, at)?.2,
                Base::Scratch => Vec::new(),
            };
            let dir = self.next_dir("from")?;
            let (target, empty) = (dir.join("root"), dir.join("empty"));
            fs::create_dir_all(&target).map_err(io_ctx("making a mount point"))?;
            let overlay = Overlay::mount(&self.layer_dirs(&from_layers), None, &empty, &target)
                .map_err(|e| BuildError::StepCaused {
                    at: at.to_string(),
                    what: format!("{verb} --from={f}: its files could not be mounted"),
                    source: Box::new(e),
                })?;
            _from_mount = Some(overlay);
            Tree::filesystem(target)
        } else {
            Tree::context(self.opts.context.clone(), self.ignore.clone())
        };
        let patterns: Vec<String> = if urls.is_empty() {
            sources.clone()
        } else {
            urls.iter().map(|u| url_file_name(u)).collect()
        };
        let resolved: Vec<Source> = if patterns.is_empty() {
            Vec::new()
        } else {
            tree.resolve(&patterns)
                .map_err(|e| step_err(e.to_string()))?
        };
        let files = if resolved.is_empty() {
            String::new()
        } else {
            tree.digest(&resolved)
                .map_err(|e| step_err(e.to_string()))?
                .to_string()
        };
        let heredocs: Vec<(String, String)> = {
            let lookup = Self::lookup(state);
            let expand = expander(self.df.escape, &lookup);
            spec.heredocs
                .iter()
                .map(|h| {
                    let body = if h.expand {
                        expand_body(&h.body, &expand)
                    } else {
                        Ok(h.body.clone())
                    };
                    body.map(|b| (h.delimiter.clone(), b))
                })
                .collect::<Result<_, _>>()
                .map_err(step_err)?
        };
        let mut created_by = format!("{verb} ");
        if let Some(f) = &from {
            created_by.push_str(&format!("--from={f} "));
        }
        if let Some(c) = &chown {
            created_by.push_str(&format!("--chown={c} "));
        }
        if let Some(m) = &chmod {
            created_by.push_str(&format!("--chmod={m} "));
        }
        for s in &sources {
            created_by.push_str(s);
            created_by.push(' ');
        }
        for (name, _) in &heredocs {
            created_by.push_str(&format!("<<{name} "));
        }
        created_by.push_str(&dest);
        let bodies: Vec<&str> = heredocs.iter().map(|(_, b)| b.as_str()).collect();
        let key = cache::chain(&state.key, &[&created_by, &files, &bodies.join("\0")]);
        if self.reuse_cached(state, &key, &created_by) {
            return Ok(());
        }
        let workdir = state
            .image
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".into());
        let opts = CopyOptions {
            owner,
            chmod: mode,
            add,
            keep_owners: from.is_some(),
        };
        let do_copy = |root: &Path| -> Result<(), BuildError> {
            if !resolved.is_empty() {
                copy_into(root, &resolved, &dest, &workdir, &opts)
                    .map_err(|e| step_err(e.to_string()))?;
            }
            for (name, body) in &heredocs {
                write_file(root, &dest, &workdir, name, body.as_bytes(), &opts)
                    .map_err(|e| step_err(e.to_string()))?;
            }
            Ok(())
        };
        self.through_overlay(state, at, &key, &created_by, &do_copy)
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

/// A heredoc body with its variables expanded line by line, whitespace and
/// quotes kept (it is file content, not a word).
fn expand_body(
    body: &str,
    expand: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(body.len());
    for line in body.split_inclusive('\n') {
        let (text, nl) = match line.strip_suffix('\n') {
            Some(t) => (t, "\n"),
            None => (line, ""),
        };
        if text.contains('$') {
            // Quote the line so the word rules keep its spaces and quotes.
            let quoted = format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
            out.push_str(&expand(&quoted)?);
        } else {
            out.push_str(text);
        }
        out.push_str(nl);
    }
    Ok(out)
}

/// The file name ADD gives a download: the URL path's last part.
fn url_file_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => "download".into(),
    }
}

/// `/a/./b/../c/` → `/a/c`.
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names() {
        assert_eq!(normalise("/a/./b/../c/"), "/a/c");
        assert_eq!(normalise("/../x"), "/x");
        assert_eq!(url_file_name("https://h/x/y.tar.gz?x=1"), "y.tar.gz");
        assert_eq!(url_file_name("https://h/"), "download");
    }

    #[test]
    fn heredoc_bodies_expand_and_keep_their_text() {
        let expand = |raw: &str| -> Result<String, String> {
            crate::build::dockerfile::expand_word(raw, '\\', &|n| (n == "V").then(|| "1".into()))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            expand_body("a  \"q\" $V\nplain 'x'\n", &expand).unwrap(),
            "a  \"q\" 1\nplain 'x'\n"
        );
    }
}
