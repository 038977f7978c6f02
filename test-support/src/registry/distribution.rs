//! The CNCF distribution registry (Debian's `docker-registry`, 2.8) started
//! by the test on a free port of 127.0.0.1, with its own config and
//! storage in a temp dir, in one of four modes; its access log read back to
//! count blob downloads; killed and waited for on drop.

use std::fs::{self, File};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::certs::{self, Tls};
use super::http;
use super::skopeo::Skopeo;
use super::token::{TokenServer, ISSUER, SERVICE};

/// The user of the Basic and Token modes.
pub const USER: &str = "isola-test";
/// Their password.
pub const PASSWORD: &str = "pull-push-s3cret";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain HTTP, anonymous.
    Plain,
    /// HTTPS with a certificate for 127.0.0.1 and localhost from a CA the
    /// test made ([`TestRegistry::ca`], [`TestRegistry::cert_dir`]).
    Tls,
    /// htpasswd (bcrypt) basic auth, [`USER`]/[`PASSWORD`], over plain
    /// HTTP (the distribution registry allows that; it is 127.0.0.1).
    Basic,
    /// Bearer tokens from a [`TokenServer`] in the test's process, which
    /// takes [`USER`]/[`PASSWORD`]; the registry over plain HTTP.
    Token,
}

impl Mode {
    /// The host has what this mode needs; else skip (or fail under CI).
    pub fn available(self) -> bool {
        let tool = |t| crate::tool(t);
        tool("docker-registry")
            && match self {
                Mode::Plain => true,
                Mode::Tls | Mode::Token => tool("openssl"),
                Mode::Basic => tool("htpasswd"),
            }
    }
}

/// One blob GET from the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobGet {
    pub repo: String,
    pub digest: String,
    pub status: u16,
}

pub struct TestRegistry {
    mode: Mode,
    port: u16,
    child: Child,
    tls: Option<Tls>,
    token: Option<TokenServer>,
    dir: TempDir,
}

impl TestRegistry {
    pub fn start(mode: Mode) -> TestRegistry {
        let dir = tempfile::Builder::new()
            .prefix("isola-test-registry-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let tls = (mode == Mode::Tls).then(|| {
            fs::create_dir(d.join("tls")).unwrap();
            certs::make_tls(&d.join("tls"))
        });
        let mut auth = String::new();
        if mode == Mode::Basic {
            let out = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("running htpasswd");
            assert!(
                out.status.success(),
                "htpasswd: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            fs::write(d.join("htpasswd"), out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: isola-test-registry\n    path: {}\n",
                d.join("htpasswd").display()
            );
        }
        let token = (mode == Mode::Token).then(|| {
            fs::create_dir(d.join("token")).unwrap();
            let signer = certs::make_signer(&d.join("token"));
            let bundle = signer.cert.clone();
            let server = TokenServer::start(http::listen(), signer, USER, PASSWORD);
            auth = format!(
                "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                server.realm(),
                bundle.display()
            );
            server
        });
        // A port free now may be taken before the registry binds it: then
        // another one.
        for _ in 0..5 {
            let port = http::listen().local_addr().unwrap().port();
            fs::write(d.join("config.yml"), config(d, port, tls.as_ref(), &auth)).unwrap();
            let mut child = spawn(d);
            match wait_ready(&mut child, port, tls.as_ref(), d) {
                Ok(()) => {
                    let reg = TestRegistry {
                        mode,
                        port,
                        child,
                        tls,
                        token,
                        dir,
                    };
                    if let Some(tls) = &reg.tls {
                        let certs = reg.cert_dir();
                        fs::create_dir_all(&certs).unwrap();
                        fs::copy(&tls.ca, certs.join("ca.crt")).unwrap();
                    }
                    return reg;
                }
                Err(log) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if !log.contains("address already in use") {
                        panic!("docker-registry did not start: {log}");
                    }
                }
            }
        }
        panic!("docker-registry found no free port in 5 tries");
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry process's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// "127.0.0.1:PORT"
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// "http://127.0.0.1:PORT", or https in TLS mode.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// "127.0.0.1:PORT/REPO[:TAG]"
    pub fn reference(&self, repo: &str) -> String {
        format!("{}/{repo}", self.host())
    }

    /// The CA that signed the registry's certificate (TLS mode).
    pub fn ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// A certs.d-style root: `certs_d()/127.0.0.1:PORT/ca.crt`, as
    /// /etc/containers/certs.d is laid out (TLS mode).
    pub fn certs_d(&self) -> PathBuf {
        assert!(self.tls.is_some(), "only a TLS registry has certificates");
        self.dir.path().join("certs.d")
    }

    /// `certs_d()/127.0.0.1:PORT`: the directory holding `ca.crt`, which
    /// podman's and skopeo's `--cert-dir` take (TLS mode).
    pub fn cert_dir(&self) -> PathBuf {
        self.certs_d().join(self.host())
    }

    /// USER and PASSWORD where the mode asks for them.
    pub fn credentials(&self) -> Option<(&'static str, &'static str)> {
        matches!(self.mode, Mode::Basic | Mode::Token).then_some((USER, PASSWORD))
    }

    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// A scratch directory inside the registry's temp dir.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("scratch").join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// The registry's own log (stderr).
    pub fn log(&self) -> String {
        log(self.dir.path())
    }

    /// The access log (the registry writes it to stdout), once the
    /// registry has stopped adding to it: a request's line is written
    /// after its response, so a client may be gone before its line is in.
    pub fn access_log(&self) -> String {
        let path = self.dir.path().join("access.log");
        let size = || fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut last = size();
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(100));
            let now = size();
            if now == last {
                break;
            }
            last = now;
        }
        fs::read_to_string(&path).unwrap_or_default()
    }

    /// Every `GET /v2/REPO/blobs/DIGEST` in the access log, in order.
    pub fn blob_gets(&self) -> Vec<BlobGet> {
        self.access_log().lines().filter_map(blob_get).collect()
    }

    /// How many blob GETs answered 200 or 206: of `digest`, or of any blob.
    pub fn blob_get_count(&self, digest: Option<&str>) -> usize {
        self.blob_gets()
            .iter()
            .filter(|g| matches!(g.status, 200 | 206))
            .filter(|g| digest.is_none_or(|d| g.digest == d))
            .count()
    }

    /// skopeo with a home in the registry's temp dir.
    pub fn skopeo(&self) -> Skopeo {
        Skopeo::new(&self.dir.path().join("skopeo-home"))
    }

    /// What skopeo needs to reach this registry, as `--dest-…` (`dest`) or
    /// `--src-…` flags: no TLS check on plain HTTP, the CA in TLS mode,
    /// the credentials where auth is on.
    pub fn skopeo_args(&self, dest: bool) -> Vec<String> {
        let side = if dest { "dest" } else { "src" };
        let mut args = vec![match &self.tls {
            None => format!("--{side}-tls-verify=false"),
            Some(_) => format!("--{side}-cert-dir={}", self.cert_dir().display()),
        }];
        if let Some((u, p)) = self.credentials() {
            args.push(format!("--{side}-creds={u}:{p}"));
        }
        args
    }

    /// skopeo copies `from` (any transport) to `REPO[:TAG]` here.
    pub fn copy_in(&self, from: &str, repo: &str, extra: &[&str]) {
        let mut args = self.skopeo_args(true);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.skopeo()
            .copy(from, &format!("docker://{}", self.reference(repo)), &args);
    }

    /// skopeo copies `REPO[:TAG]` here to `to` (any transport).
    pub fn copy_out(&self, repo: &str, to: &str, extra: &[&str]) {
        let mut args = self.skopeo_args(false);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.skopeo()
            .copy(&format!("docker://{}", self.reference(repo)), to, &args);
    }

    fn inspect_args(&self) -> Vec<String> {
        // `inspect` takes the source flags without their `src-`.
        self.skopeo_args(false)
            .iter()
            .map(|a| a.replacen("--src-", "--", 1))
            .collect()
    }

    /// The manifest or index of `REPO[:TAG]` as the registry serves it.
    pub fn inspect_raw(&self, repo: &str) -> Vec<u8> {
        let args = self.inspect_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.skopeo()
            .inspect_raw(&format!("docker://{}", self.reference(repo)), &args)
    }

    /// The digest the registry gives `REPO[:TAG]`'s manifest (or index).
    pub fn manifest_digest(&self, repo: &str) -> String {
        super::image::sha256(&self.inspect_raw(repo))
    }

    /// The config of `REPO[:TAG]` (the host's platform from an index).
    pub fn config(&self, repo: &str) -> serde_json::Value {
        let args = self.inspect_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.skopeo()
            .config(&format!("docker://{}", self.reference(repo)), &args)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        // By its pid, and waited for: no registry outlives its test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, port: u16, tls: Option<&Tls>, auth: &str) -> String {
    let tls = tls
        .map(|t| {
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.cert.display(),
                t.key.display()
            )
        })
        .unwrap_or_default();
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: isola-test-secret\n{tls}\
         {auth}",
        storage = dir.join("storage").display(),
    )
}

/// `docker-registry serve config.yml`: its stdout (the access log) and
/// stderr (its own log) to files. No REGISTRY_* variable of ours reaches
/// it: the registry reads each as a config override (REGISTRY_AUTH_FILE,
/// which the tests set for isola, would name an auth provider "file").
fn spawn(dir: &Path) -> Child {
    Command::new("docker-registry")
        .arg("serve")
        .arg(dir.join("config.yml"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(File::create(dir.join("access.log")).unwrap())
        .stderr(File::create(dir.join("registry.log")).unwrap())
        .spawn()
        .expect("running docker-registry")
}

fn log(dir: &Path) -> String {
    fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
}

/// Until `GET /v2/` answers (200, or 401 where auth is on), 15 s at most;
/// Err with the registry's log if it ended instead.
fn wait_ready(child: &mut Child, port: u16, tls: Option<&Tls>, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("it exited {status}:\n{}", log(dir)));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() && v2_answers(port, tls, dir) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("no answer to GET /v2/ in 15 s:\n{}", log(dir)))
}

fn v2_answers(port: u16, tls: Option<&Tls>, dir: &Path) -> bool {
    let host = format!("127.0.0.1:{port}");
    let answered = |status: u16| status == 200 || status == 401;
    let Some(tls) = tls else {
        return http::get(&host, "/v2/", &[]).is_ok_and(|r| answered(r.status));
    };
    // Through openssl, which also checks the chain and the IP SAN.
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
        ])
        .arg("-CAfile")
        .arg(&tls.ca)
        .args(["-connect", &host])
        .stdin(File::open(write_request(dir)).unwrap())
        .stderr(Stdio::null())
        .output()
        .expect("running openssl s_client");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .is_some_and(answered)
}

fn write_request(dir: &Path) -> PathBuf {
    let p = dir.join("get-v2.http");
    if !p.exists() {
        fs::write(&p, "GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    }
    p
}

/// `127.0.0.1 - - [date] "GET /v2/REPO/blobs/DIGEST HTTP/1.1" 200 1234 ...`
fn blob_get(line: &str) -> Option<BlobGet> {
    let request = line.split('"').nth(1)?;
    let after = line.split('"').nth(2)?;
    let mut parts = request.split_whitespace();
    if parts.next()? != "GET" {
        return None;
    }
    let path = parts.next()?.split('?').next()?;
    let (repo, digest) = path.strip_prefix("/v2/")?.rsplit_once("/blobs/")?;
    Some(BlobGet {
        repo: repo.to_string(),
        digest: digest.to_string(),
        status: after.split_whitespace().next()?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_lines_are_read() {
        let line = r#"127.0.0.1 - - [07/Dec/2026:08:14:33 +0000] "GET /v2/a/b/blobs/sha256:00ff HTTP/1.1" 200 157 "" "isola/0.1""#;
        assert_eq!(
            blob_get(line),
            Some(BlobGet {
                repo: "a/b".into(),
                digest: "sha256:00ff".into(),
                status: 200
            })
        );
        assert_eq!(blob_get(&line.replace("GET", "HEAD")), None);
        assert_eq!(blob_get(&line.replace("blobs", "manifests")), None);
    }
}
