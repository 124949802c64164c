//! Certificates made by the test (`openssl`), and a redis-server speaking
//! only TLS, for the tests of `rediss://` and Postgres `sslmode`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, skip};

/// A CA of the test's own and a server certificate it signed, valid for
/// `localhost` and `127.0.0.1`.
pub struct TestCerts {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Another CA, which signed nothing the servers present.
    pub other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn make_ca(dir: &Path, name: &str) -> Result<(), String> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    )
}

impl TestCerts {
    /// Makes them, or `None` (after [`skip`]) without `openssl`.
    pub fn make() -> Option<TestCerts> {
        let dir = tempfile::tempdir().expect("temp dir");
        let made = (|| {
            let d = dir.path();
            make_ca(d, "ca")?;
            make_ca(d, "other-ca")?;
            openssl(
                d,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-subj",
                    "/CN=localhost",
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                ],
            )?;
            std::fs::write(
                d.join("server.ext"),
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
                 basicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth\n",
            )
            .map_err(|e| e.to_string())?;
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    "server.ext",
                    "-out",
                    "server.crt",
                ],
            )
        })();
        if let Err(e) = made {
            skip("openssl", &e);
            return None;
        }
        let p = dir.path().to_path_buf();
        Some(TestCerts {
            ca: p.join("ca.crt"),
            server_cert: p.join("server.crt"),
            server_key: p.join("server.key"),
            other_ca: p.join("other-ca.crt"),
            dir,
        })
    }
}

/// A redis-server that accepts only TLS connections, on a free port.
pub struct TlsRedis {
    pub port: u16,
    child: Child,
}

impl TlsRedis {
    /// Starts one, or `None` (after [`skip`]) when `redis-server` is missing
    /// or built without TLS.
    pub async fn start(certs: &TestCerts) -> Option<TlsRedis> {
        let port = free_port();
        let spawned = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(&certs.server_cert)
            .arg("--tls-key-file")
            .arg(&certs.server_key)
            .arg("--tls-ca-cert-file")
            .arg(&certs.ca)
            .args(["--tls-auth-clients", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                skip("redis-server", &format!("cannot run redis-server: {e}"));
                return None;
            }
        };
        let redis = TlsRedis { port, child };
        // Ready when the port accepts connections (a TLS handshake is the
        // test's own business).
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                skip("redis-server with TLS", "it never listened on its TLS port");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(redis)
    }

    /// `rediss://` with `host` (`localhost` or `127.0.0.1`).
    pub fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
