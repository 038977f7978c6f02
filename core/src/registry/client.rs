//! One registry, spoken to over HTTP(S): which scheme it answers on, the
//! TLS roots it is checked with, and its authentication — none, basic, or
//! bearer tokens fetched from the realm its 401 names, cached per scope and
//! fetched again on the next 401 — behind one `send`.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ureq::http::{self, Response};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Body};

use super::authfile::{AuthFiles, Credentials};
use super::challenge::Challenge;
use super::reference::is_local;
use super::RegistryError;

/// How every registry command connects; the flags docker and podman have.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `--tls-verify=false`: no certificate checks, and plain HTTP allowed.
    pub tls_verify: bool,
    /// `--cert-dir`: CA certificates (`*.crt`) for the registry, directly in
    /// it or in a `HOST:PORT` subdirectory; by default
    /// `/etc/containers/certs.d/HOST:PORT/` and `/etc/docker/certs.d/HOST:PORT/`.
    pub cert_dir: Option<PathBuf>,
    pub auth: AuthFiles,
    /// Connect, response and stall timeout (`ISOLA_REGISTRY_TIMEOUT`).
    pub timeout: Duration,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl ClientOptions {
    pub fn new(auth: AuthFiles) -> ClientOptions {
        let timeout = std::env::var("ISOLA_REGISTRY_TIMEOUT")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_TIMEOUT);
        ClientOptions {
            tls_verify: true,
            cert_dir: None,
            auth,
            timeout,
        }
    }
}

/// What a request carries; replayable, so a request refused with a 401 can
/// be sent again once a token is in hand.
#[derive(Clone, Copy)]
pub enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// Which access a request needs, for the token's scope.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Access<'a> {
    Pull,
    Push,
    /// Push, mounting a blob from another repository, which must be
    /// readable too.
    Mount {
        from: &'a str,
    },
}

pub struct Registry {
    /// As the user names it (`docker.io`, `127.0.0.1:5000`).
    pub name: String,
    host: String,
    agent: Agent,
    opts: ClientOptions,
    creds: Option<Credentials>,
    state: Mutex<AuthState>,
    base: Mutex<Option<Arc<str>>>,
}

#[derive(Default)]
struct AuthState {
    /// Bearer tokens by scope.
    tokens: HashMap<String, String>,
    basic: bool,
}

impl Registry {
    /// Get ready to talk to `name` (reached at `host`). Nothing is sent yet.
    pub fn new(name: &str, host: &str, opts: &ClientOptions) -> Result<Registry, RegistryError> {
        let creds = opts.auth.lookup(name)?;
        let tls = tls_config(host, opts)?;
        let t = Some(opts.timeout);
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .max_redirects(10)
            .timeout_connect(t)
            .timeout_recv_response(t)
            .timeout_send_request(t)
            .timeout_per_read(t)
            .timeout_per_write(t)
            .user_agent(concat!("isola/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Registry {
            name: name.to_string(),
            host: host.to_string(),
            agent: Agent::new_with_config(config),
            opts: opts.clone(),
            creds,
            state: Mutex::new(AuthState::default()),
            base: Mutex::new(None),
        })
    }

    pub fn with_credentials(mut self, creds: Credentials) -> Registry {
        self.creds = Some(creds);
        self
    }

    pub fn timeout(&self) -> Duration {
        self.opts.timeout
    }

    /// `https://host` or, where allowed and HTTPS is not spoken, `http://host`.
    /// Found once, by asking `/v2/`, which every registry answers (200, or
    /// 401 when it wants credentials).
    pub fn base(&self) -> Result<Arc<str>, RegistryError> {
        let mut base = self.base.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = &*base {
            return Ok(b.clone());
        }
        let https = format!("https://{}", self.host);
        let found = match self.ping(&https) {
            Ok(()) => https,
            Err(err) if is_local(&self.host) || !self.opts.tls_verify => {
                let http = format!("http://{}", self.host);
                match self.ping(&http) {
                    Ok(()) => {
                        tracing::debug!(registry = %self.name, "HTTPS not spoken; using plain HTTP");
                        http
                    }
                    Err(_) => return Err(err),
                }
            }
            Err(err) => return Err(err),
        };
        let found: Arc<str> = found.into();
        *base = Some(found.clone());
        Ok(found)
    }

    fn ping(&self, base: &str) -> Result<(), RegistryError> {
        let url = format!("{base}/v2/");
        let resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| self.unreachable(&url, e))?;
        match resp.status().as_u16() {
            200 | 401 => Ok(()),
            s => Err(RegistryError::Unreachable {
                registry: self.name.clone(),
                url,
                why: format!("it answered {s} where a registry answers 200 or 401"),
                hint: String::new(),
            }),
        }
    }

    pub fn unreachable(&self, url: &str, e: ureq::Error) -> RegistryError {
        let why = describe(&e);
        let hint = match &e {
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) if self.opts.tls_verify => format!(
                " (to trust the registry's CA, put it in /etc/containers/certs.d/{}/ca.crt or pass --cert-dir; --tls-verify=false skips the check)",
                self.host
            ),
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Io(_)
                if self.name == super::reference::DOCKER_HUB =>
            {
                " (names without a registry mean Docker Hub; this host may not reach it — name a registry it can reach, e.g. localhost:5000/NAME)".to_string()
            }
            _ => String::new(),
        };
        RegistryError::Unreachable {
            registry: self.name.clone(),
            url: url.to_string(),
            why,
            hint,
        }
    }

    /// Send a request to `path` (under the base URL, or a whole URL the
    /// registry gave, such as an upload location), authenticating as the
    /// registry asks; one retry after a 401 with fresh credentials.
    pub fn send(
        &self,
        method: http::Method,
        path: &str,
        repo: &str,
        access: Access,
        headers: &[(&str, &str)],
        payload: Payload,
    ) -> Result<Response<Body>, RegistryError> {
        let base = self.base()?;
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{base}{path}")
        };
        // Credentials go to the registry only, never to a URL elsewhere
        // that it named.
        let ours = url.starts_with(&format!("{base}/"));
        let scope = scope_for(repo, access);
        let mut retried = false;
        loop {
            let auth = self.auth_header(&scope).filter(|_| ours);
            let resp = self.send_once(&method, &url, headers, auth.as_deref(), payload)?;
            if resp.status() != 401 || retried {
                if resp.status() == 401 {
                    return Err(self.refused());
                }
                return Ok(resp);
            }
            retried = true;
            let challenge = resp
                .headers()
                .get(http::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse);
            match challenge {
                Some(Challenge::Basic) => {
                    if self.creds.is_none() {
                        return Err(self.refused());
                    }
                    self.lock_state().basic = true;
                }
                Some(Challenge::Bearer { realm, service, .. }) => {
                    let token = self.fetch_token(&realm, service.as_deref(), Some(&scope))?;
                    self.lock_state().tokens.insert(scope.clone(), token);
                }
                None => return Err(RegistryError::Auth {
                    registry: self.name.clone(),
                    why: "it answered 401 without a challenge isola understands (Basic or Bearer)"
                        .into(),
                }),
            }
        }
    }

    fn send_once(
        &self,
        method: &http::Method,
        url: &str,
        headers: &[(&str, &str)],
        auth: Option<&str>,
        payload: Payload,
    ) -> Result<Response<Body>, RegistryError> {
        let mut req = http::Request::builder().method(method.clone()).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(a) = auth {
            req = req.header(http::header::AUTHORIZATION, a);
        }
        let bad_url = |e: http::Error| RegistryError::Protocol {
            registry: self.name.clone(),
            what: format!("the URL {url}"),
            why: e.to_string(),
        };
        let result = match payload {
            Payload::Empty => self.agent.run(req.body(()).map_err(bad_url)?),
            Payload::Bytes(b) => self.agent.run(req.body(b).map_err(bad_url)?),
            Payload::File(p) => {
                let file = File::open(p)
                    .map_err(super::error::io_ctx(format!("reading {}", p.display())))?;
                self.agent.run(req.body(file).map_err(bad_url)?)
            }
        };
        result.map_err(|e| self.unreachable(url, e))
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn auth_header(&self, scope: &str) -> Option<String> {
        let state = self.lock_state();
        if let Some(t) = state.tokens.get(scope) {
            return Some(format!("Bearer {t}"));
        }
        match (&self.creds, state.basic) {
            (Some(c), true) => Some(c.basic_header()),
            _ => None,
        }
    }

    fn refused(&self) -> RegistryError {
        RegistryError::Auth {
            registry: self.name.clone(),
            why: match &self.creds {
                Some(c) => format!(
                    "the registry refused the credentials of {} (log in again with `isola login {}`)",
                    c.username, self.name
                ),
                None => format!(
                    "the registry wants credentials; log in with `isola login {}`",
                    self.name
                ),
            },
        }
    }

    /// A bearer token from the realm a 401 named, asked with the stored
    /// credentials when there are some (anonymously otherwise).
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String, RegistryError> {
        let mut query = Vec::new();
        if let Some(s) = service {
            query.push(format!("service={}", encode(s)));
        }
        for s in scope.iter().flat_map(|s| s.split_whitespace()) {
            query.push(format!("scope={}", encode(s)));
        }
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = if query.is_empty() {
            realm.to_string()
        } else {
            format!("{realm}{sep}{}", query.join("&"))
        };
        let mut req = self.agent.get(&url);
        if let Some(c) = &self.creds {
            req = req.header(http::header::AUTHORIZATION, c.basic_header());
        }
        let token_err = |why: String| RegistryError::Auth {
            registry: self.name.clone(),
            why: format!("token server {realm}: {why}"),
        };
        let mut resp = req.call().map_err(|e| token_err(describe(&e)))?;
        match resp.status().as_u16() {
            200 => {}
            401 | 403 => return Err(self.refused()),
            s => return Err(token_err(format!("it answered {s}"))),
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| token_err(describe(&e)))?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            token_err(format!(
                "its answer is not the JSON a token server sends ({e})"
            ))
        })?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_err("its answer holds no token".into()))
    }

    /// Check credentials the way `docker login` does: `/v2/` with them,
    /// through the token server when the registry has one.
    pub fn check_login(&self) -> Result<(), RegistryError> {
        let base = self.base()?;
        let url = format!("{base}/v2/");
        let resp = self.send_once(&http::Method::GET, &url, &[], None, Payload::Empty)?;
        if resp.status() != 401 {
            return Ok(());
        }
        let challenge = resp
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse);
        let auth = match challenge {
            Some(Challenge::Bearer { realm, service, .. }) => {
                format!(
                    "Bearer {}",
                    self.fetch_token(&realm, service.as_deref(), None)?
                )
            }
            _ => match &self.creds {
                Some(c) => c.basic_header(),
                None => return Err(self.refused()),
            },
        };
        let resp = self.send_once(&http::Method::GET, &url, &[], Some(&auth), Payload::Empty)?;
        match resp.status().as_u16() {
            200 => Ok(()),
            401 | 403 => Err(self.refused()),
            s => Err(RegistryError::Protocol {
                registry: self.name.clone(),
                what: "checking the login".into(),
                why: format!("/v2/ answered {s}"),
            }),
        }
    }
}

fn scope_for(repo: &str, access: Access) -> String {
    match access {
        Access::Pull => format!("repository:{repo}:pull"),
        Access::Push => format!("repository:{repo}:pull,push"),
        // Space-separated scopes go to the token server as one each.
        Access::Mount { from } => format!("repository:{repo}:pull,push repository:{from}:pull"),
    }
}

/// Percent-encoding for a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'/' | b',')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An HTTP error in words, without ureq's internal names.
pub fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("no answer in time ({t})"),
        ureq::Error::HostNotFound => "the host name does not resolve".into(),
        ureq::Error::ConnectionFailed => "the connection failed".into(),
        ureq::Error::TooManyRedirects => "it redirects in a loop (more than 10 redirects)".into(),
        ureq::Error::BodyExceedsLimit(n) => format!("the answer is larger than {n} bytes"),
        ureq::Error::Rustls(r) => format!("TLS: {r}"),
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

pub(crate) fn tls_config(host: &str, opts: &ClientOptions) -> Result<TlsConfig, RegistryError> {
    if !opts.tls_verify {
        return Ok(TlsConfig::builder().disable_verification(true).build());
    }
    let mut roots = Vec::new();
    let bundle = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    roots.extend(pem_certs(&bundle));
    let mut dirs = Vec::new();
    match &opts.cert_dir {
        Some(d) => {
            dirs.push(d.clone());
            dirs.push(d.join(host));
        }
        None => {
            dirs.push(Path::new("/etc/containers/certs.d").join(host));
            dirs.push(Path::new("/etc/docker/certs.d").join(host));
        }
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "crt") {
                let certs = pem_certs(&path);
                if certs.is_empty() {
                    return Err(RegistryError::Protocol {
                        registry: host.to_string(),
                        what: format!("CA file {}", path.display()),
                        why: "it holds no PEM certificate".into(),
                    });
                }
                tracing::debug!(file = %path.display(), "trusting the registry's CA");
                roots.extend(certs);
            }
        }
    }
    if roots.is_empty() {
        // Plain HTTP to this machine still works; HTTPS will fail to verify,
        // and its error says where CAs are looked for.
        tracing::warn!(
            "no CA certificates: {} is missing (install ca-certificates or set SSL_CERT_FILE)",
            bundle.display()
        );
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::from(roots))
        .build())
}

fn pem_certs(path: &Path) -> Vec<Certificate<'static>> {
    let Ok(pem) = std::fs::read(path) else {
        return Vec::new();
    };
    ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c.to_owned()),
            _ => None,
        })
        .collect()
}
