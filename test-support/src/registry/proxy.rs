//! A proxy in front of a test registry that breaks one blob download
//! halfway, for the resume tests: it stalls (so the test can kill the
//! puller) or cuts the connection once it has passed so many bytes of the
//! first GET of a blob, and records every request with its Range header
//! and the status that answered it.
//!
//! Pulls only: a request with a body (a push) is refused with 405.
//! Each request gets a connection of its own upstream, asked to close
//! after its response (`Connection: close`, passed on to the client).

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::http::{self, Conn, Request, Server};

#[derive(Clone, Debug)]
pub enum Fault {
    /// Pass everything.
    None,
    /// The first GET of blob `digest`: after `after` bytes of its body,
    /// send nothing more and hold the connection (until the client leaves
    /// or the proxy is dropped).
    StallAfter { digest: String, after: u64 },
    /// The first GET of blob `digest`: after `after` bytes of its body,
    /// close the connection.
    CutAfter { digest: String, after: u64 },
}

/// One request through the proxy and what came of it.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub request: Request,
    /// The upstream's status, once its head came.
    pub status: Option<u16>,
    /// Body bytes passed to the client.
    pub body_bytes: u64,
}

impl Exchange {
    /// The request was a GET of blob `digest`.
    pub fn gets_blob(&self, digest: &str) -> bool {
        self.request.method == "GET" && self.request.path().ends_with(&format!("/blobs/{digest}"))
    }

    /// The N of a `Range: bytes=N-` header.
    pub fn range_start(&self) -> Option<u64> {
        let r = self.request.header("range")?.strip_prefix("bytes=")?;
        r.split('-').next()?.trim().parse().ok()
    }
}

struct State {
    fault: Fault,
    armed: AtomicBool,
    tripped: (Mutex<bool>, Condvar),
    log: Mutex<Vec<Exchange>>,
    upstream: String,
}

pub struct Proxy {
    state: Arc<State>,
    server: Server,
}

impl Proxy {
    /// A proxy on 127.0.0.1 to `upstream` ("127.0.0.1:PORT", plain HTTP).
    pub fn start(upstream: &str, fault: Fault) -> Proxy {
        let state = Arc::new(State {
            armed: AtomicBool::new(!matches!(fault, Fault::None)),
            fault,
            tripped: (Mutex::new(false), Condvar::new()),
            log: Mutex::new(Vec::new()),
            upstream: upstream.to_string(),
        });
        let server = {
            let state = state.clone();
            Server::start(move |stream, conn| relay(stream, conn, &state))
        };
        Proxy { state, server }
    }

    /// "127.0.0.1:PORT"
    pub fn host(&self) -> String {
        self.server.host()
    }

    /// Every request so far, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state.log.lock().unwrap().clone()
    }

    /// Wait up to `timeout` for the fault to happen; whether it did.
    pub fn wait_tripped(&self, timeout: Duration) -> bool {
        let (lock, cv) = &self.state.tripped;
        let guard = lock.lock().unwrap();
        let (guard, _) = cv.wait_timeout_while(guard, timeout, |t| !*t).unwrap();
        *guard
    }
}

fn relay(client: TcpStream, conn: &Conn, state: &State) {
    let Ok(read) = client.try_clone() else { return };
    let (mut from_client, mut to_client) = (BufReader::new(read), client);
    let Ok(Some(req)) = http::read_request(&mut from_client, &mut to_client) else {
        return;
    };
    if req.header("content-length").is_some_and(|n| n != "0")
        || req.header("transfer-encoding").is_some()
    {
        let _ = http::respond(
            &mut to_client,
            405,
            &[],
            b"the resume proxy passes pulls only\n",
            false,
        );
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(&state.upstream) else {
        let _ = http::respond(&mut to_client, 502, &[], b"upstream down\n", false);
        return;
    };
    conn.track(&upstream);
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        if !["connection", "keep-alive", "proxy-connection"]
            .contains(&k.to_ascii_lowercase().as_str())
        {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    if upstream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let index = {
        let mut log = state.log.lock().unwrap();
        log.push(Exchange {
            request: req.clone(),
            status: None,
            body_bytes: 0,
        });
        log.len() - 1
    };
    let mut from_upstream = BufReader::new(upstream.try_clone().unwrap());
    let Ok(Some(lines)) = http::read_head(&mut from_upstream) else {
        return;
    };
    let status = lines[0]
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok());
    state.log.lock().unwrap()[index].status = status;
    let mut response_head = lines.join("\r\n");
    response_head.push_str("\r\n\r\n");
    if to_client.write_all(response_head.as_bytes()).is_err() {
        return;
    }
    // The fault applies to this response if it is the first GET of its blob.
    let limit = match &state.fault {
        Fault::StallAfter { digest, after } | Fault::CutAfter { digest, after }
            if req.method == "GET"
                && req.path().ends_with(&format!("/blobs/{digest}"))
                && state.armed.swap(false, Ordering::SeqCst) =>
        {
            Some(*after)
        }
        _ => None,
    };
    let mut passed = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let mut want = buf.len();
        if let Some(limit) = limit {
            if passed >= limit {
                trip(state);
                if let Fault::StallAfter { .. } = state.fault {
                    hold(&to_client, conn);
                }
                let _ = to_client.shutdown(Shutdown::Both);
                let _ = upstream.shutdown(Shutdown::Both);
                return;
            }
            want = want.min((limit - passed) as usize);
        }
        let n = match from_upstream.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to_client.write_all(&buf[..n]).is_err() {
            return;
        }
        passed += n as u64;
        state.log.lock().unwrap()[index].body_bytes = passed;
    }
}

fn trip(state: &State) {
    let (lock, cv) = &state.tripped;
    *lock.lock().unwrap() = true;
    cv.notify_all();
}

/// Say nothing until the client hangs up or the proxy stops.
fn hold(client: &TcpStream, conn: &Conn) {
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    let mut c = client;
    while !conn.stopped() {
        match c.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}
