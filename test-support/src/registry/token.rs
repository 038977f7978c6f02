//! The bearer-token server of the Token mode, in the test's own process:
//! `GET /token?service=...&scope=...` with the right Basic credentials is
//! answered with a JWT signed RS256, the signing certificate in the
//! header's `x5c`, which the registry checks against its `rootcertbundle`.
//! Every request is logged, so a test can tell a token was fetched and
//! then reused rather than fetched for every blob.

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::certs::Signer;
use super::http::{self, base64, base64url, Conn, Request, Server};

/// The `service` the registry names in its challenge and the token's `aud`.
pub const SERVICE: &str = "isola-test-registry";
/// The token's `iss`, which the registry's config names.
pub const ISSUER: &str = "isola-test-token-server";

/// One request the token server answered.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub method: String,
    pub service: Option<String>,
    pub scopes: Vec<String>,
    /// It carried the right credentials and got a token.
    pub granted: bool,
}

pub struct TokenServer {
    log: Arc<Mutex<Vec<TokenRequest>>>,
    server: Server,
}

impl TokenServer {
    /// Serve on `listener` (bound already: the registry's config names
    /// its port), granting tokens to `user` with `password`.
    pub fn start(listener: TcpListener, signer: Signer, user: &str, password: &str) -> TokenServer {
        let log = Arc::new(Mutex::new(Vec::new()));
        let basic = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        let (user, signer) = (user.to_string(), Arc::new(signer));
        let server = {
            let log = log.clone();
            Server::on(listener, move |stream, conn| {
                serve(stream, conn, &log, &signer, &basic, &user)
            })
        };
        TokenServer { log, server }
    }

    /// The `realm` of the registry's challenge.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.server.host())
    }

    pub fn host(&self) -> String {
        self.server.host()
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.log.lock().unwrap().clone()
    }

    /// How many tokens were handed out.
    pub fn served(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.granted)
            .count()
    }
}

fn serve(
    stream: TcpStream,
    _conn: &Conn,
    log: &Mutex<Vec<TokenRequest>>,
    signer: &Signer,
    basic: &str,
    user: &str,
) {
    let Ok(read) = stream.try_clone() else { return };
    let (mut r, mut w) = (BufReader::new(read), stream);
    while let Ok(Some(req)) = http::read_request(&mut r, &mut w) {
        let json = [("Content-Type", "application/json".to_string())];
        if req.path() != "/token" {
            let _ = http::respond(&mut w, 404, &json, b"{\"details\":\"not found\"}", false);
            continue;
        }
        // A POST is OAuth2's refresh-token flow, which this server does not
        // offer: 404 tells a client to use GET instead (as docker does).
        let granted = req.method == "GET"
            && req
                .header("authorization")
                .is_some_and(|a| a.eq_ignore_ascii_case(basic));
        let entry = TokenRequest {
            method: req.method.clone(),
            service: req.query("service").into_iter().next(),
            scopes: req.query("scope"),
            granted,
        };
        let answer = if granted {
            let token = jwt(signer, &req, user);
            let body = json!({"token": token, "access_token": token, "expires_in": 300});
            http::respond(&mut w, 200, &json, body.to_string().as_bytes(), false)
        } else if req.method != "GET" {
            http::respond(&mut w, 404, &json, b"{\"details\":\"use GET\"}", false)
        } else {
            let challenge = [
                ("Content-Type", "application/json".to_string()),
                (
                    "WWW-Authenticate",
                    "Basic realm=\"isola-test-token\"".to_string(),
                ),
            ];
            let body = b"{\"details\":\"incorrect username or password\"}";
            http::respond(&mut w, 401, &challenge, body, false)
        };
        log.lock().unwrap().push(entry);
        if answer.is_err() {
            return;
        }
    }
}

/// The token: everything each scope asks for is granted.
fn jwt(signer: &Signer, req: &Request, user: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [base64(&signer.cert_der)]});
    let claims = json!({
        "iss": ISSUER,
        "sub": user,
        "aud": req.query("service").into_iter().next().unwrap_or_else(|| SERVICE.into()),
        "exp": now + 300,
        "nbf": now - 60,
        "iat": now,
        "jti": format!("{now}-{}", next_id()),
        "access": req.query("scope").iter().flat_map(|s| s.split(' ')).filter_map(access).collect::<Vec<_>>(),
    });
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let signature = signer.rs256(signing_input.as_bytes());
    format!("{signing_input}.{}", base64url(&signature))
}

/// `repository:NAME:pull,push` as a JWT access entry (NAME may hold ':'
/// only in its middle, as `registry:catalog:*` shows the shape).
fn access(scope: &str) -> Option<Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_become_access_entries() {
        assert_eq!(
            access("repository:a/b:pull,push").unwrap(),
            json!({"type": "repository", "name": "a/b", "actions": ["pull", "push"]})
        );
        assert_eq!(
            access("registry:catalog:*").unwrap(),
            json!({"type": "registry", "name": "catalog", "actions": ["*"]})
        );
        assert!(access("nonsense").is_none());
    }
}
