//! A registry that lies, one way per scenario, about the one image it
//! serves (`hostile/image:latest`): `/v2/`, the manifest by tag or digest,
//! and the blobs, over plain HTTP on 127.0.0.1. Everything it does not lie
//! about is right (digests, sizes, diff-ids), so that only the check the
//! scenario aims at can catch it.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{self, Conn, Request, Server};
use super::image::{sha256, Blob, Image, Layer, Tar, LAYER_GZIP};

pub const REPO: &str = "hostile/image";
pub const TAG: &str = "latest";

/// How a layer tries to leave the directory it is unpacked in. Each aims
/// at the same host path, [`HostileRegistry::escape_target`].
#[derive(Clone, Copy, Debug)]
pub enum Escape {
    /// `../../…/tmp/isola-test-escape-PORT`
    ParentDir,
    /// `/tmp/isola-test-escape-PORT`
    AbsolutePath,
    /// `evil` → `/tmp`, then the file `evil/isola-test-escape-PORT`.
    ThroughSymlink,
}

#[derive(Clone, Copy, Debug)]
pub enum Scenario {
    /// The layer's bytes are not those of its digest: the gzip header's
    /// MTIME is changed, which gzip's CRC does not cover, so the layer
    /// still decompresses to the tar of its diff-id and only the
    /// compressed digest can tell.
    WrongDigest,
    /// The manifest is not JSON (its Docker-Content-Digest is right).
    NotJson,
    /// A valid gzip tar layer, digest and diff-id right, with an entry that
    /// escapes: only the unpacker can catch it.
    TarEscape(Escape),
    /// A decompression bomb: a 64 KiB gzip layer (digest and size right)
    /// holding one file of [`BOMB_BYTES`] (64 MiB) of zeros, 1000:1,
    /// whose diff-id in the
    /// config is that of another tar. A bomb whose diff-id is right is
    /// just a big image, which isola may rightly unpack (a disk-space
    /// limit is the only defence, and no registry client has one); what
    /// isola must do is stream it (never hold a layer in memory), hash
    /// what it decompresses, refuse the mismatch, and remove the
    /// 64 MiB it unpacked. (64 MiB, not GiBs: a debug isola inflates
    /// and hashes ~30 MiB/s, and the point is the same.)
    TarBomb,
    /// The manifest's response says `Content-Length: 10000000000`, sends
    /// 20 bytes and stalls.
    HugeContentLength,
    /// The layer's URL redirects (307) to itself with `?hop=N+1`, forever:
    /// a chain no loop detection that compares URLs ends.
    RedirectLoop,
    /// Not hostile: every blob URL redirects (307) once, to the same URL
    /// with `?storage=1`, as registries send clients to blob storage.
    RedirectToStorage,
    /// Every `/v2/` URL answers 401 with a Bearer challenge whose realm is
    /// a port that accepts connections and never answers.
    TokenNeverAnswers,
    /// The layer's body comes one byte every `every` (its Content-Length
    /// right): a client timing out only a read that gets nothing waits
    /// for ever if `every` is shorter than its timeout.
    SlowLoris { every: Duration },
}

/// The unpacked size of [`Scenario::TarBomb`]'s one file.
pub const BOMB_BYTES: u64 = 64 << 20;

pub struct HostileRegistry {
    scenario: Scenario,
    image: Arc<Image>,
    log: Arc<Mutex<Vec<Request>>>,
    /// TokenNeverAnswers's realm: accepts, says nothing.
    silent: Option<Server>,
    server: Server,
}

impl HostileRegistry {
    pub fn start(scenario: Scenario) -> HostileRegistry {
        let listener = http::listen();
        let port = listener.local_addr().unwrap().port();
        let image = Arc::new(image_for(scenario, port));
        let silent = matches!(scenario, Scenario::TokenNeverAnswers)
            .then(|| Server::start(|_stream, conn| conn.stall()));
        let realm = silent
            .as_ref()
            .map(|s| format!("http://{}/token", s.host()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let (image, log) = (image.clone(), log.clone());
            Server::on(listener, move |stream, conn| {
                let host = format!("127.0.0.1:{port}");
                let ctx = Ctx {
                    scenario,
                    image: &image,
                    host: &host,
                    realm: realm.as_deref(),
                    conn,
                };
                serve(stream, &ctx, &log)
            })
        };
        HostileRegistry {
            scenario,
            image,
            log,
            silent,
            server,
        }
    }

    pub fn scenario(&self) -> Scenario {
        self.scenario
    }

    /// "127.0.0.1:PORT"
    pub fn host(&self) -> String {
        self.server.host()
    }

    /// "127.0.0.1:PORT/hostile/image:latest"
    pub fn reference(&self) -> String {
        format!("{}/{REPO}:{TAG}", self.host())
    }

    /// The image as served (for NotJson, the manifest that is not JSON).
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The digest of the blob the scenario lies about, if it is a blob.
    pub fn faulty_digest(&self) -> Option<String> {
        match self.scenario {
            Scenario::WrongDigest
            | Scenario::TarEscape(_)
            | Scenario::TarBomb
            | Scenario::RedirectLoop
            | Scenario::SlowLoris { .. } => Some(self.image.layers[0].blob.digest.clone()),
            _ => None,
        }
    }

    /// Where the TarEscape layers try to write; it must never exist.
    pub fn escape_target(&self) -> PathBuf {
        escape_target(self.server.port())
    }

    /// The token realm of TokenNeverAnswers.
    pub fn silent_host(&self) -> Option<String> {
        self.silent.as_ref().map(|s| s.host())
    }

    /// Every request the registry read.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

fn escape_target(port: u16) -> PathBuf {
    PathBuf::from(format!("/tmp/isola-test-escape-{port}"))
}

fn hello() -> Vec<u8> {
    Tar::new()
        .dir("etc")
        .file("etc/hello", b"hello from the hostile registry\n")
        .build()
}

fn image_for(scenario: Scenario, port: u16) -> Image {
    let layer = match scenario {
        Scenario::TarEscape(how) => {
            let name = format!("isola-test-escape-{port}");
            let tar = match how {
                Escape::ParentDir => Tar::new().file(
                    &format!("../../../../../../../../../tmp/{name}"),
                    b"escaped",
                ),
                Escape::AbsolutePath => Tar::new().file(&format!("/tmp/{name}"), b"escaped"),
                Escape::ThroughSymlink => Tar::new()
                    .symlink("evil", "/tmp")
                    .file(&format!("evil/{name}"), b"escaped"),
            };
            Layer::gzip(&tar.dir("etc").build())
        }
        Scenario::TarBomb => Layer {
            blob: Blob::new(LAYER_GZIP, bomb()),
            diff_id: sha256(&hello()),
        },
        _ => Layer::gzip(&hello()),
    };
    let mut image = Image::new(vec![layer]);
    if let Scenario::NotJson = scenario {
        image.manifest = Blob::new(
            &image.manifest.media_type,
            b"<html><body>502 Bad Gateway: this is not a manifest</body></html>\n".to_vec(),
        );
    }
    image
}

/// The gzip of a tar of one file, `bomb`, of [`BOMB_BYTES`] zeros, made a
/// MiB at a time (never whole in memory).
fn bomb() -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path("bomb").unwrap();
    h.set_size(BOMB_BYTES);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(h.as_bytes()).unwrap();
    let mib = vec![0u8; 1 << 20];
    for _ in 0..BOMB_BYTES >> 20 {
        e.write_all(&mib).unwrap();
    }
    e.write_all(&[0; 1024]).unwrap();
    e.finish().unwrap()
}

struct Ctx<'a> {
    scenario: Scenario,
    image: &'a Image,
    host: &'a str,
    realm: Option<&'a str>,
    conn: &'a Conn,
}

fn serve(stream: TcpStream, ctx: &Ctx, log: &Mutex<Vec<Request>>) {
    let Ok(read) = stream.try_clone() else { return };
    let (mut r, mut w) = (BufReader::new(read), stream);
    while let Ok(Some(req)) = http::read_request(&mut r, &mut w) {
        log.lock().unwrap().push(req.clone());
        if answer(&req, &mut w, ctx).is_err() || ctx.conn.stopped() {
            return;
        }
    }
}

const JSON: &str = "application/json";

fn error(w: &mut TcpStream, status: u16, code: &str, head: bool) -> std::io::Result<()> {
    let body = format!("{{\"errors\":[{{\"code\":\"{code}\",\"message\":\"{code}\"}}]}}");
    http::respond(
        w,
        status,
        &[("Content-Type", JSON.into())],
        body.as_bytes(),
        head,
    )
}

/// Answer one request; an Err ends the connection.
fn answer(req: &Request, w: &mut TcpStream, ctx: &Ctx) -> std::io::Result<()> {
    let head = req.method == "HEAD";
    let api = (
        "Docker-Distribution-API-Version",
        "registry/2.0".to_string(),
    );
    if let Some(realm) = ctx.realm {
        let scope = if req.path().starts_with(&format!("/v2/{REPO}/")) {
            format!(",scope=\"repository:{REPO}:pull\"")
        } else {
            String::new()
        };
        let challenge = format!("Bearer realm=\"{realm}\",service=\"hostile-registry\"{scope}");
        let body =
            b"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}";
        return http::respond(
            w,
            401,
            &[
                api,
                ("WWW-Authenticate", challenge),
                ("Content-Type", JSON.into()),
            ],
            body,
            head,
        );
    }
    let path = req.path();
    if path == "/v2/" || path == "/v2" {
        return http::respond(w, 200, &[api, ("Content-Type", JSON.into())], b"{}", head);
    }
    let Some(rest) = path.strip_prefix(&format!("/v2/{REPO}/")) else {
        return error(w, 404, "NAME_UNKNOWN", head);
    };
    if let Some(reference) = rest.strip_prefix("manifests/") {
        let m = &ctx.image.manifest;
        if reference != TAG && reference != m.digest {
            return error(w, 404, "MANIFEST_UNKNOWN", head);
        }
        let headers = [
            api,
            ("Content-Type", m.media_type.clone()),
            ("Docker-Content-Digest", m.digest.clone()),
        ];
        if let Scenario::HugeContentLength = ctx.scenario {
            http::write_head(w, 200, &headers, Some(10_000_000_000))?;
            if !head {
                w.write_all(br#"{"schemaVersion": 2,"#)?;
                w.flush()?;
                ctx.conn.stall();
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            return w.flush();
        }
        return http::respond(w, 200, &headers, &m.data, head);
    }
    let Some(digest) = rest.strip_prefix("blobs/") else {
        return error(w, 404, "NAME_UNKNOWN", head);
    };
    let Some(blob) = ctx.image.blob(digest) else {
        return error(w, 404, "BLOB_UNKNOWN", head);
    };
    let headers = [
        api,
        ("Content-Type", "application/octet-stream".to_string()),
        ("Docker-Content-Digest", blob.digest.clone()),
    ];
    let faulty = blob.digest == ctx.image.layers[0].blob.digest;
    match ctx.scenario {
        Scenario::WrongDigest if faulty => {
            let mut data = blob.data.clone();
            data[4] ^= 0x5a; // the gzip header's MTIME
            http::respond(w, 200, &headers, &data, head)
        }
        Scenario::RedirectToStorage if req.query("storage").is_empty() => {
            let to = format!(
                "http://{}/v2/{REPO}/blobs/{}?storage=1",
                ctx.host, blob.digest
            );
            http::respond(w, 307, &[("Location", to)], b"", head)
        }
        Scenario::RedirectLoop if faulty => {
            let hop: u64 = req
                .query("hop")
                .first()
                .and_then(|h| h.parse().ok())
                .unwrap_or(0);
            let to = format!(
                "http://{}/v2/{REPO}/blobs/{}?hop={}",
                ctx.host,
                blob.digest,
                hop + 1
            );
            http::respond(w, 307, &[("Location", to)], b"", head)
        }
        Scenario::SlowLoris { every } if faulty && !head => {
            http::write_head(w, 200, &headers, Some(blob.data.len() as u64))?;
            for byte in &blob.data {
                w.write_all(std::slice::from_ref(byte))?;
                w.flush()?;
                if !ctx.conn.sleep(every) {
                    break;
                }
            }
            Ok(())
        }
        _ => http::respond(w, 200, &headers, &blob.data, head),
    }
}

#[cfg(test)]
mod tests {
    use super::super::image::gzip;
    use super::*;

    #[test]
    fn the_wrong_digest_layer_still_unpacks_to_its_diff_id() {
        let img = image_for(Scenario::WrongDigest, 1);
        let mut data = img.layers[0].blob.data.clone();
        data[4] ^= 0x5a;
        assert_ne!(sha256(&data), img.layers[0].blob.digest);
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&data[..]), &mut tar).unwrap();
        assert_eq!(sha256(&tar), img.layers[0].diff_id);
        assert_eq!(gzip(&hello()).len(), data.len());
    }
}
