//! [`Tls`]: a throwaway certificate authority and one server certificate for `127.0.0.1` and
//! `localhost`, made with the `openssl` CLI into a test's temp dir, and the directives that
//! make a `redis-server` or `redis-sentinel` listen on TLS only. Owns no server: the
//! deployments ([`crate::RedisServer`], [`crate::RedisCluster`], [`crate::RedisSentinel`])
//! use it when started with [`crate::Options::tls`]. Clients of the test process trust the CA
//! through [`Tls::certificates`]; a child process through `SSL_CERT_FILE` = [`Tls::ca_file`].
//! `HERALD_OPENSSL` overrides the `openssl` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and a server certificate it signed, as PEM files in a directory of the test's.
#[derive(Debug)]
pub struct Tls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Tls {
    /// Makes `ca.crt`, `ca.key`, `server.crt` and `server.key` in `dir`: a P-256 CA, and a
    /// server certificate for `IP:127.0.0.1` and `DNS:localhost`, valid two days.
    pub fn generate(dir: &Path) -> Tls {
        let p = |f: &str| dir.join(f);
        let ca_key = p("ca.key");
        let tls = Tls {
            ca: p("ca.crt"),
            cert: p("server.crt"),
            key: p("server.key"),
        };
        // A name of its own: two test CAs are two issuers, not one with a bad signature.
        let ca_name = format!("/CN=herald test CA {}", uuid::Uuid::new_v4());
        openssl(&[], &ca_key, &tls.ca, &ca_name);
        let sign = [
            "-CA".into(),
            tls.ca.display().to_string(),
            "-CAkey".into(),
            ca_key.display().to_string(),
        ]
        .into_iter()
        .chain(
            [
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "basicConstraints=critical,CA:FALSE",
                // The cluster bus and replication present the same certificate as clients.
                "extendedKeyUsage=serverAuth,clientAuth",
            ]
            .into_iter()
            .flat_map(|e| ["-addext".to_string(), e.to_string()]),
        )
        .collect::<Vec<_>>();
        openssl(&sign, &tls.key, &tls.cert, "/CN=localhost");
        tls
    }

    /// The CA certificate (PEM): what `SSL_CERT_FILE` names for a client to trust the servers.
    pub fn ca_file(&self) -> &Path {
        &self.ca
    }

    /// The CA as the only root, for a redis-rs client of the test process
    /// (`Client::build_with_tls`, `ClusterClientBuilder::certs`).
    pub fn certificates(&self) -> ::redis::TlsCertificates {
        let pem =
            std::fs::read(&self.ca).unwrap_or_else(|e| panic!("read {}: {e}", self.ca.display()));
        ::redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        }
    }

    /// `(directive, value)` of a server that listens on TLS `port` only, with this
    /// certificate, asks clients for none, and replicates (and, as a sentinel, monitors) over
    /// TLS. As `--directive value` arguments or config-file lines.
    pub(crate) fn directives(&self, port: u16) -> Vec<(&'static str, String)> {
        let file = |f: &Path| f.display().to_string();
        vec![
            ("port", "0".into()),
            ("tls-port", port.to_string()),
            ("tls-cert-file", file(&self.cert)),
            ("tls-key-file", file(&self.key)),
            ("tls-ca-cert-file", file(&self.ca)),
            ("tls-auth-clients", "no".into()),
            ("tls-replication", "yes".into()),
        ]
    }

    /// `redis-cli`'s arguments to reach a server started with [`Tls::directives`].
    pub(crate) fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".into(),
            "--cacert".into(),
            self.ca.display().to_string(),
        ]
    }
}

/// `openssl req -x509` of a new P-256 key into `key` and a certificate for `subject` into
/// `cert`, self-signed unless `extra` names a CA.
fn openssl(extra: &[String], key: &Path, cert: &Path, subject: &str) {
    let bin = std::env::var("HERALD_OPENSSL").unwrap_or_else(|_| "openssl".into());
    let out = Command::new(&bin)
        .args(["req", "-x509", "-new", "-nodes", "-days", "2"])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-subj", subject, "-keyout"])
        .arg(key)
        .arg("-out")
        .arg(cert)
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin} (install openssl): {e}"));
    assert!(
        out.status.success(),
        "{bin} req for {subject} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
