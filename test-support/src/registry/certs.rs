//! Keys and certificates made with the openssl command line: a CA and a
//! server certificate for 127.0.0.1 and localhost (TLS mode), and the
//! self-signed certificate whose RSA key signs the token server's JWTs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Our own openssl config, so that the host's openssl.cnf (and the
/// extensions it adds by default) plays no part.
const CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = isola-test
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[signer]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
";

/// A CA and a server certificate it signed, as PEM files.
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What signs tokens: an RSA key and its self-signed certificate (PEM, and
/// DER for a JWT's x5c).
pub struct Signer {
    pub key: PathBuf,
    pub cert: PathBuf,
    pub cert_der: Vec<u8>,
}

fn config(dir: &Path) -> PathBuf {
    let p = dir.join("openssl.cnf");
    if !p.exists() {
        fs::write(&p, CONFIG).expect("writing openssl.cnf");
    }
    p
}

fn openssl(dir: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .env("OPENSSL_CONF", config(dir))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running openssl");
    // Written from a thread: a signature is read only after all of it.
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().expect("waiting for openssl");
    writer.join().unwrap().expect("writing to openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// In `dir`: ca.crt (and its key), server.crt and server.key for
/// 127.0.0.1 and localhost, valid for a week from now.
pub fn make_tls(dir: &Path) -> Tls {
    let cnf = config(dir);
    let cnf = cnf.to_str().unwrap();
    let mut ca = vec!["req", "-x509", "-config", cnf, "-extensions", "ca"];
    ca.extend(EC);
    ca.extend([
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "7",
        "-subj",
        "/CN=isola test CA",
    ]);
    openssl(dir, &ca, b"");
    let mut csr = vec!["req", "-new", "-config", cnf];
    csr.extend(EC);
    csr.extend([
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr, b"");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "7",
            "-extfile",
            cnf,
            "-extensions",
            "server",
            "-out",
            "server.crt",
        ],
        b"",
    );
    Tls {
        ca: dir.join("ca.crt"),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    }
}

/// In `dir`: token.key (RSA 2048) and its self-signed token.crt.
pub fn make_signer(dir: &Path) -> Signer {
    let cnf = config(dir);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-config",
            cnf.to_str().unwrap(),
            "-extensions",
            "signer",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "token.key",
            "-out",
            "token.crt",
            "-days",
            "7",
            "-subj",
            "/CN=isola test token signer",
        ],
        b"",
    );
    let cert_der = openssl(dir, &["x509", "-in", "token.crt", "-outform", "DER"], b"");
    Signer {
        key: dir.join("token.key"),
        cert: dir.join("token.crt"),
        cert_der,
    }
}

impl Signer {
    /// RSASSA-PKCS1-v1_5 with SHA-256 of `data`: a JWT's RS256.
    pub fn rs256(&self, data: &[u8]) -> Vec<u8> {
        let dir = self.key.parent().unwrap();
        openssl(
            dir,
            &["dgst", "-sha256", "-sign", self.key.to_str().unwrap()],
            data,
        )
    }
}
