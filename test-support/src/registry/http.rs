//! Just enough HTTP/1.1 for the harness's own servers and checks: a TCP
//! server with a thread per connection that stops cleanly, request and
//! response heads, and one plain-HTTP request as a client.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One connection as its handler sees it: whether the server is
/// stopping, and the sockets to shut down when it does or when the handler
/// ends (the connection's own, and any it tracks).
pub struct Conn {
    stop: Arc<AtomicBool>,
    sockets: Mutex<Vec<TcpStream>>,
}

impl Conn {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleep `d` in short slices; false if the server stopped meanwhile.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.stopped() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
        }
        !self.stopped()
    }

    /// Hold the connection open, saying nothing, until the server stops.
    pub fn stall(&self) {
        while self.sleep(Duration::from_millis(100)) {}
    }

    /// Shut `socket` down too when the handler ends or the server stops
    /// (a handler's second socket, as the proxy's upstream one).
    pub fn track(&self, socket: &TcpStream) {
        if let Ok(s) = socket.try_clone() {
            self.sockets.lock().unwrap().push(s);
        }
        if self.stopped() {
            self.close();
        }
    }

    /// Shut every socket of the connection down (which ends any read or
    /// write blocked on it) and close them.
    fn close(&self) {
        for s in self.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A server on 127.0.0.1 running `handler` on a thread of its own for each
/// connection. Dropping it shuts every connection down and joins every
/// thread: nothing of it outlives the test.
pub struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<Arc<Conn>>>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start<H>(handler: H) -> Server
    where
        H: Fn(TcpStream, &Conn) + Send + Sync + 'static,
    {
        Server::on(listen(), handler)
    }

    /// [`Server::start`] on a listener bound already (its port known before
    /// what it serves is made).
    pub fn on<H>(listener: TcpListener, handler: H) -> Server
    where
        H: Fn(TcpStream, &Conn) + Send + Sync + 'static,
    {
        let port = listener.local_addr().expect("listener's address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<Arc<Conn>>>> = Arc::new(Mutex::new(Vec::new()));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let acceptor = {
            let (stop, conns, threads) = (stop.clone(), conns.clone(), threads.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let conn = Arc::new(Conn {
                        stop: stop.clone(),
                        sockets: Mutex::new(Vec::new()),
                    });
                    conn.track(&stream);
                    let mut conns = conns.lock().unwrap();
                    conns.retain(|c| !c.sockets.lock().unwrap().is_empty());
                    conns.push(conn.clone());
                    let handler = handler.clone();
                    threads.lock().unwrap().push(std::thread::spawn(move || {
                        handler(stream, &conn);
                        conn.close();
                    }));
                }
            })
        };
        Server {
            port,
            stop,
            conns,
            threads,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// "127.0.0.1:PORT"
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor, which then sees the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for c in self.conns.lock().unwrap().iter() {
            c.close();
        }
        let threads: Vec<_> = self.threads.lock().unwrap().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// A listener on a free port of 127.0.0.1.
pub fn listen() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("binding a port on 127.0.0.1")
}

/// A request head as a server read it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Every value of query parameter `key`, percent-decoded.
    pub fn query(&self, key: &str) -> Vec<String> {
        let Some((_, q)) = self.target.split_once('?') else {
            return Vec::new();
        };
        q.split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| percent_decode(v))
            .collect()
    }
}

/// A response as the client in this module read it.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

const TLS_HELLO: &str = "a TLS handshake on a plain HTTP port";

/// The lines of a head up to the blank line; None at a clean end of
/// stream. A TLS handshake (a client trying HTTPS first, as isola does on
/// 127.0.0.1) is an error at once, not a head waited for.
pub fn read_head(r: &mut impl BufRead) -> io::Result<Option<Vec<String>>> {
    if r.fill_buf()?.first() == Some(&0x16) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, TLS_HELLO));
    }
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // a stray CRLF between requests
            }
            return Ok(Some(lines));
        }
        lines.push(line);
        if lines.len() > 200 {
            return Err(io::Error::other("a head of more than 200 lines"));
        }
    }
}

fn split_headers(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Read a request head; a body with a Content-Length is read and dropped.
/// To a TLS handshake, `w` gets what Go's servers answer, a 400, so that
/// the client gives up on HTTPS at once.
pub fn read_request(r: &mut impl BufRead, w: &mut impl Write) -> io::Result<Option<Request>> {
    let lines = match read_head(r) {
        Ok(Some(lines)) => lines,
        Ok(None) => return Ok(None),
        Err(e) => {
            if e.to_string() == TLS_HELLO {
                let _ = w.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTPS request to an HTTP server.\n");
            }
            return Err(e);
        }
    };
    let mut first = lines[0].split_whitespace();
    let (method, target) = match (first.next(), first.next()) {
        (Some(m), Some(t)) => (m.to_string(), t.to_string()),
        _ => return Err(io::Error::other(format!("bad request line {:?}", lines[0]))),
    };
    let req = Request {
        method,
        target,
        headers: split_headers(&lines[1..]),
    };
    if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        io::copy(&mut r.take(n), &mut io::sink())?;
    }
    Ok(Some(req))
}

/// Write a whole response (only its head if `head_only`, as for HEAD).
pub fn respond(
    w: &mut impl Write,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    write_head(w, status, headers, Some(body.len() as u64))?;
    if !head_only {
        w.write_all(body)?;
    }
    w.flush()
}

/// A response head; with `length`, its Content-Length.
pub fn write_head(
    w: &mut impl Write,
    status: u16,
    headers: &[(&str, String)],
    length: Option<u64>,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(n) = length {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Whatever",
    }
}

/// One request over plain HTTP to `host` ("127.0.0.1:PORT") on a
/// connection of its own; the whole response, read within `timeout`
/// (a read that stalls longer is an error of kind TimedOut/WouldBlock).
pub fn request(
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<Response> {
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    let mut r = BufReader::new(s);
    let lines = read_head(&mut r)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    let status = lines[0]
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {:?}", lines[0])))?;
    let headers = split_headers(&lines[1..]);
    let mut body = Vec::new();
    if method != "HEAD" {
        if header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            read_chunked(&mut r, &mut body)?;
        } else if let Some(n) = header(&headers, "content-length").and_then(|v| v.parse().ok()) {
            r.take(n).read_to_end(&mut body)?;
        } else {
            r.read_to_end(&mut body)?;
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// [`request`] with GET and a 5 s timeout.
pub fn get(host: &str, target: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
    request("GET", host, target, headers, Duration::from_secs(5))
}

fn read_chunked(r: &mut impl BufRead, body: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            return Ok(());
        }
        r.take(size as u64).read_to_end(body)?;
        line.clear();
        r.read_line(&mut line)?;
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
            (b'+', _, _) => out.push(b' '),
            (c, _, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding, as Basic auth, docker's config.json and
/// a JWT's x5c use it.
pub fn base64(data: &[u8]) -> String {
    encode64(
        data,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        true,
    )
}

/// base64url without padding, as a JWT's three parts use it.
pub fn base64url(data: &[u8]) -> String {
    encode64(
        data,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        false,
    )
}

fn encode64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let v = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= n {
                out.push(alphabet[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_rfc_4648_says() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn queries_are_decoded() {
        let r = Request {
            method: "GET".into(),
            target: "/token?service=reg&scope=repository%3Aa%2Fb%3Apull%2Cpush&scope=x+y&bad=%zz%4"
                .into(),
            headers: Vec::new(),
        };
        assert_eq!(r.path(), "/token");
        assert_eq!(r.query("scope"), ["repository:a/b:pull,push", "x y"]);
        assert_eq!(r.query("bad"), ["%zz%4"]);
        assert!(r.query("nope").is_empty());
    }
}
