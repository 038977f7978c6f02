//! `isola pull`: the manifest and config first, then every layer the store
//! lacks, several at once, each streamed through the same path an import
//! takes (hashed, decompressed, hashed, unpacked) while it arrives. A layer
//! download that breaks resumes with a Range request; one whose pull was
//! killed resumes from the bytes kept in tmp/downloads/. Nothing is named in
//! images.json until every layer is verified and unpacked.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{Digest, ImageConfiguration};
use ureq::http;

use super::client::{Access, Payload, Registry};
use super::manifest::{self, content_length, registry_message};
use super::reference::RemoteRef;
use super::RegistryError;
use crate::fsutil::Lock;
use crate::image::digest;
use crate::image::media::Compression;
use crate::image::stage::{Expect, Stage, Tee, Verified};
use crate::image::{Catalog, ImageStore, Platform};

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub platform: Platform,
    /// Layers downloaded at once (containerd's default: 3).
    pub max_concurrent: usize,
    /// Fetch and verify the layers the store lacks, then drop them:
    /// nothing is unpacked or stored (what `isola bench distribution`
    /// times against `skopeo copy` to an OCI layout).
    pub fetch_only: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::default(),
            max_concurrent: 3,
            fetch_only: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pulled {
    /// The name it is stored under.
    pub name: String,
    /// The image ID: the digest of its manifest.
    pub digest: Digest,
    /// What the reference resolved to in the registry (an index's digest
    /// for a multi-platform image).
    pub repo_digest: Digest,
    pub layers_fetched: usize,
    pub layers_reused: usize,
    /// Compressed bytes received over the network (resumed bytes excluded).
    pub bytes_fetched: u64,
    /// The compressed size of all the image's layers.
    pub bytes_total: u64,
}

/// What a pull reports as it goes; called from the download threads.
pub trait Progress: Sync {
    /// The layers are known: how many, and how many must be fetched.
    fn resolved(&self, _layers: usize, _to_fetch: usize) {}
    /// Layer `index` (1-based) is already stored: not fetched.
    fn layer_reused(&self, _index: usize, _digest: &Digest) {}
    fn layer_started(&self, _index: usize, _digest: &Digest, _size: u64, _resumed_from: u64) {}
    fn layer_bytes(&self, _index: usize, _bytes: u64) {}
    fn layer_done(&self, _index: usize, _digest: &Digest) {}
}

/// A `Progress` that says nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Give up on a blob after this many broken connections.
const MAX_RESUMES: u32 = 5;
/// Fewer bytes than this within one timeout period is a stalled body.
const STALL_BYTES: u64 = 16 * 1024;

struct Job {
    /// 1-based position in the manifest (the first with this blob).
    index: usize,
    digest: Digest,
    diff_id: Digest,
    size: u64,
    compression: Compression,
}

struct Done {
    job_at: usize,
    verified: Verified,
    partial: PathBuf,
    /// Held until the partial file is moved into the staging.
    _lock: Flock<File>,
}

pub fn pull(
    store: &ImageStore,
    reg: &Registry,
    r: &RemoteRef,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Pulled, RegistryError> {
    let image = r.to_string();
    let (fetched, manifest, repo_digest) = manifest::resolve(reg, r, &opts.platform)?;
    let invalid = |what: String| RegistryError::Invalid {
        registry: reg.name.clone(),
        image: image.clone(),
        what,
    };
    let config_bytes = manifest::get_small_blob(reg, r, "image config", manifest.config())?;
    let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
        .map_err(|e| invalid(format!("the image config is not valid ({e})")))?;
    let diff_ids = config.rootfs().diff_ids();
    let layers = manifest.layers();
    if diff_ids.len() != layers.len() {
        return Err(invalid(format!(
            "the config lists {} layer diff-ids but the manifest has {} layers",
            diff_ids.len(),
            layers.len()
        )));
    }

    let root = store.root();
    // Shared: pulls and imports run side by side; garbage collection waits.
    let _store_lock = Lock::shared(&root.store_lock())
        .map_err(super::error::io_ctx("locking the image store"))?;
    let label = format!("{image} (registry {})", reg.name);
    let (mut stage, _staging) = Stage::new(store, "pull-", &label)?;

    let count = layers.len();
    let mut jobs: Vec<Job> = Vec::new();
    let mut bytes_total = 0;
    for (i, (desc, diff_id)) in layers.iter().zip(diff_ids).enumerate() {
        let index = i + 1;
        bytes_total += desc.size();
        let diff_id = digest::parse(diff_id)
            .map_err(|why| invalid(format!("layer {index}/{count}: diff-id: {why}")))?;
        let blob = digest::parse(desc.digest().as_ref())
            .map_err(|why| invalid(format!("layer {index}/{count}: digest: {why}")))?;
        let compression = Compression::of_layer(desc.media_type()).ok_or_else(|| {
            invalid(format!(
                "layer {index}/{count} ({blob}) has media type {}, which is no layer isola can unpack",
                desc.media_type()
            ))
        })?;
        // Stored already, from this blob or (same content) from another:
        // nothing to fetch. The config's diff-id is bound to the manifest's
        // digest, so the content is known without the blob.
        if stage.stored_from(&blob, &diff_id)?.is_some()
            || root.layer_dir(diff_id.digest()).exists()
        {
            progress.layer_reused(index, &blob);
            stage.reused += 1;
            continue;
        }
        if jobs
            .iter()
            .any(|j| j.digest == blob || j.diff_id == diff_id)
        {
            continue; // the same layer twice in one image: fetched once
        }
        jobs.push(Job {
            index,
            digest: blob,
            diff_id,
            size: desc.size(),
            compression,
        });
    }
    progress.resolved(count, jobs.len());

    let downloads = root.tmp().join("downloads");
    fs::create_dir_all(&downloads).map_err(super::error::io_ctx(format!(
        "creating {}",
        downloads.display()
    )))?;
    let fetcher = Fetcher {
        reg,
        r,
        stage: &stage,
        downloads,
        progress,
        count,
        cancel: AtomicBool::new(false),
        fetched_bytes: Mutex::new(0),
        fetch_only: opts.fetch_only,
    };
    let done = fetcher.run(&jobs, opts.max_concurrent.max(1))?;
    let bytes_fetched = *fetcher
        .fetched_bytes
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    drop(fetcher);
    if opts.fetch_only {
        for d in &done {
            let _ = fs::remove_file(&d.partial);
        }
        return Ok(Pulled {
            name: r.store_name(),
            digest: fetched.digest,
            repo_digest,
            layers_fetched: jobs.len(),
            layers_reused: stage.reused,
            bytes_fetched,
            bytes_total,
        });
    }

    for d in &done {
        let job = &jobs[d.job_at];
        stage.add_layer(&job.diff_id, &d.verified, Some(&d.partial))?;
    }
    stage.blob_bytes(&config_bytes)?;
    stage.blob_bytes(&fetched.bytes)?;
    stage.commit()?;
    drop(done);

    let name = r.store_name();
    let orphaned = Catalog::set_name_from(root, &name, &fetched.digest, Some(&repo_digest))?;
    drop(_store_lock);
    store.collect_orphan(&orphaned)?;
    tracing::info!(image = %name, digest = %fetched.digest, fetched = jobs.len(), "pulled");
    Ok(Pulled {
        name,
        digest: fetched.digest,
        repo_digest,
        layers_fetched: jobs.len(),
        layers_reused: stage.reused,
        bytes_fetched,
        bytes_total,
    })
}

struct Fetcher<'a> {
    reg: &'a Registry,
    r: &'a RemoteRef,
    stage: &'a Stage<'a>,
    downloads: PathBuf,
    progress: &'a dyn Progress,
    count: usize,
    cancel: AtomicBool,
    fetched_bytes: Mutex<u64>,
    fetch_only: bool,
}

impl Fetcher<'_> {
    /// Fetch every job on `workers` threads; the first failure stops the
    /// others and is returned.
    fn run(&self, jobs: &[Job], workers: usize) -> Result<Vec<Done>, RegistryError> {
        super::parallel::each(jobs, workers, &self.cancel, |at, job| self.fetch(at, job))
    }

    fn fetch(&self, at: usize, job: &Job) -> Result<Done, RegistryError> {
        let path = self.downloads.join(job.digest.digest());
        let lock = lock_partial(&path)?;
        let mut file = lock
            .try_clone()
            .map_err(super::error::io_ctx("opening a partial download"))?;
        let mut have = file
            .seek(io::SeekFrom::End(0))
            .map_err(super::error::io_ctx("reading a partial download"))?;
        if have > job.size {
            file.set_len(0)
                .map_err(super::error::io_ctx("truncating a partial download"))?;
            have = 0;
        }
        if have > 0 {
            tracing::info!(blob = %job.digest, bytes = have, "resuming a partial download");
        }
        self.progress
            .layer_started(job.index, &job.digest, job.size, have);
        let prefix = File::open(&path)
            .map_err(super::error::io_ctx("reading a partial download"))?
            .take(have);
        let broke = Rc::new(RefCell::new(None));
        let stream = BlobStream {
            f: self,
            job,
            pos: have,
            body: None,
            since_connect: 0,
            resumes: 0,
            window: (Instant::now(), 0),
            broke: broke.clone(),
        };
        let tee = Tee {
            inner: stream,
            out: Some(BufWriter::with_capacity(256 * 1024, file)),
        };
        let mut reader = prefix.chain(tee);
        let want = Expect {
            digest: Some(&job.digest),
            size: Some(job.size),
            diff_id: &job.diff_id,
            compression: Some(job.compression),
            index: job.index,
            count: self.count,
            shown: job.digest.as_ref(),
        };
        let result = if self.fetch_only {
            self.stage.verify_only(&mut reader, &want)
        } else {
            self.stage.ingest(&mut reader, &want)
        };
        let (_, tee) = reader.into_inner();
        if let Some(mut out) = tee.out {
            // Whatever arrived is a true prefix of the blob: keep it for a
            // resume even when the download broke.
            let _ = out.flush();
        }
        match result {
            Ok(verified) => {
                self.progress.layer_done(job.index, &job.digest);
                Ok(Done {
                    job_at: at,
                    verified,
                    partial: path,
                    _lock: lock,
                })
            }
            Err(e) => match broke.take() {
                // The network failed, not the content: the error says so,
                // and the bytes kept are resumed next time.
                Some(net) => Err(net),
                None => {
                    // Bad content: never resume it.
                    let _ = fs::remove_file(&path);
                    Err(e.into())
                }
            },
        }
    }
}

/// Open (creating) and lock a partial download, so two pulls of one blob
/// take turns; the second finds it moved away and starts a new one.
fn lock_partial(path: &PathBuf) -> Result<Flock<File>, RegistryError> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(super::error::io_ctx(format!("opening {}", path.display())))?;
        let locked =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| RegistryError::Io {
                context: format!("locking {}", path.display()),
                source: e.into(),
            })?;
        let same = match (locked.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino(),
            _ => false,
        };
        if same {
            return Ok(locked);
        }
    }
}

/// A layer's bytes from the registry from offset `pos` on; a connection
/// that breaks after bringing something is resumed with a Range request.
struct BlobStream<'a> {
    f: &'a Fetcher<'a>,
    job: &'a Job,
    pos: u64,
    body: Option<ureq::BodyReader<'static>>,
    since_connect: u64,
    resumes: u32,
    /// Start of the current stall-check period, and bytes read in it.
    window: (Instant, u64),
    /// Why the network, not the content, failed, when it did.
    broke: Rc<RefCell<Option<RegistryError>>>,
}

impl BlobStream<'_> {
    fn fail(&self, why: String) -> io::Error {
        self.broke_by(RegistryError::Blob {
            registry: self.f.reg.name.clone(),
            image: self.f.r.to_string(),
            digest: self.job.digest.to_string(),
            why,
        })
    }

    /// Keep the network's error for the caller; the reader stack above
    /// gets a plain I/O error that ends the stream.
    fn broke_by(&self, e: RegistryError) -> io::Error {
        let text = e.to_string();
        *self.broke.borrow_mut() = Some(e);
        io::Error::other(text)
    }

    fn connect(&mut self) -> io::Result<()> {
        let range = format!("bytes={}-", self.pos);
        let headers: &[(&str, &str)] = if self.pos > 0 {
            &[("Range", &range)]
        } else {
            &[]
        };
        let repo = &self.f.r.repository;
        let mut resp = self
            .f
            .reg
            .send(
                http::Method::GET,
                &format!("/v2/{repo}/blobs/{}", self.job.digest),
                repo,
                Access::Pull,
                headers,
                Payload::Empty,
            )
            .map_err(|e| self.broke_by(e))?;
        let status = resp.status().as_u16();
        let mut skip = 0;
        match status {
            200 => skip = self.pos, // no ranges here: read up to where we were
            206 if self.pos > 0 => {
                let start = resp
                    .headers()
                    .get(http::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(range_start);
                if start != Some(self.pos) {
                    return Err(self.fail(format!(
                        "asked to resume at byte {}, the registry answered a range that starts elsewhere",
                        self.pos
                    )));
                }
            }
            404 => {
                let msg = registry_message(&mut resp);
                return Err(self.fail(format!("the registry does not have it{msg}")));
            }
            s => {
                let msg = registry_message(&mut resp);
                return Err(self.fail(format!("the registry answered {s}{msg}")));
            }
        }
        let left = self.job.size - self.pos + skip;
        if let Some(n) = content_length(&resp).filter(|n| *n > left) {
            return Err(self.fail(format!(
                "the registry announces {n} bytes where {left} are left of a {}-byte blob",
                self.job.size
            )));
        }
        let mut body = resp.into_body().into_reader();
        if skip > 0 {
            io::copy(&mut (&mut body).take(skip), &mut io::sink())
                .map_err(|e| self.fail(format!("skipping to byte {skip}: {e}")))?;
        }
        self.body = Some(body);
        self.since_connect = 0;
        Ok(())
    }
}

impl Read for BlobStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.job.size - self.pos;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(left as usize);
        loop {
            if self.f.cancel.load(Ordering::SeqCst) {
                // Not ErrorKind::Interrupted: readers retry on that.
                return Err(self.fail("stopped: another layer failed".into()));
            }
            if self.body.is_none() {
                self.connect()?;
            }
            let body = self.body.as_mut().expect("connected");
            let err = match body.read(&mut buf[..want]) {
                Ok(0) => format!(
                    "the connection ended after {} of {} bytes",
                    self.pos, self.job.size
                ),
                Ok(n) => {
                    self.pos += n as u64;
                    self.since_connect += n as u64;
                    self.window.1 += n as u64;
                    *self
                        .f
                        .fetched_bytes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) += n as u64;
                    self.f.progress.layer_bytes(self.job.index, n as u64);
                    let period = self.f.reg.timeout();
                    if self.window.0.elapsed() >= period {
                        if self.window.1 < STALL_BYTES {
                            return Err(self.fail(format!(
                                "the download stalled: {} bytes in {:.0?} (at byte {} of {})",
                                self.window.1, period, self.pos, self.job.size
                            )));
                        }
                        self.window = (Instant::now(), 0);
                    }
                    return Ok(n);
                }
                Err(e) => format!(
                    "reading it broke at byte {} of {}: {e}",
                    self.pos, self.job.size
                ),
            };
            self.body = None;
            if self.since_connect == 0 || self.resumes >= MAX_RESUMES {
                return Err(self.fail(err));
            }
            self.resumes += 1;
            tracing::info!(blob = %self.job.digest, at = self.pos, why = %err, "resuming the download");
        }
    }
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` answer.
fn range_start(v: &str) -> Option<u64> {
    v.trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_content_range() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes 0-0/*"), Some(0));
        assert_eq!(range_start("items 1-2/3"), None);
        assert_eq!(range_start("bytes -5/3"), None);
    }

    proptest! {
        #[test]
        fn content_range_never_panics(s in ".{0,60}") {
            let _ = range_start(&s);
        }
    }
}
