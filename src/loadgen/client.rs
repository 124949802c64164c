//! A lean HTTP/1.1 keep-alive connection for the load generator: one request
//! in flight per connection, headers written once per request into a reused
//! buffer, the answer read by `Content-Length`. Lean on purpose: the load
//! generator shares the machine with the server it measures, and every
//! microsecond it spends is one the server does not get.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a request failed, as the report counts it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    /// The connection could not be opened.
    Connect,
    /// The connection broke or the answer could not be read.
    Io,
    /// No complete answer within the request timeout.
    Timeout,
    /// An answer with a status other than 2xx.
    Status(u16),
    /// A 2xx answer without what the scenario expects in its body.
    Body,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect => f.write_str("connect"),
            Failure::Io => f.write_str("io"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Status(s) => write!(f, "http {s}"),
            Failure::Body => f.write_str("unexpected body"),
        }
    }
}

/// A request as the scenario builds it.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'static str, String)],
    pub body: &'a [u8],
    /// A substring a 2xx answer's body must hold (empty: anything goes).
    pub expect: &'a [u8],
}

/// One keep-alive connection to the target.
pub struct Connection {
    host: String,
    stream: Option<TcpStream>,
    out: Vec<u8>,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Connection {
    pub fn new(host: String, timeout: Duration) -> Self {
        Connection {
            host,
            stream: None,
            out: Vec::with_capacity(1024),
            buf: Vec::with_capacity(8192),
            timeout,
        }
    }

    /// Sends `req` and reads its answer; on any failure the connection is
    /// dropped and the next request opens a new one.
    pub async fn send(&mut self, req: &Request<'_>) -> Result<(), Failure> {
        let result = match tokio::time::timeout(self.timeout, self.exchange(req)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout),
        };
        if matches!(result, Err(Failure::Io | Failure::Timeout)) {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, req: &Request<'_>) -> Result<(), Failure> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.host)
                .await
                .map_err(|_| Failure::Connect)?;
            let _ = stream.set_nodelay(true);
            self.stream = Some(stream);
        }
        self.out.clear();
        write_head(&mut self.out, &self.host, req);
        self.out.extend_from_slice(req.body);
        let stream = self.stream.as_mut().ok_or(Failure::Io)?;
        stream.write_all(&self.out).await.map_err(|_| Failure::Io)?;
        let (status, body) = read_answer(stream, &mut self.buf).await?;
        if !(200..300).contains(&status) {
            return Err(Failure::Status(status));
        }
        if !req.expect.is_empty() && !contains(&self.buf[body], req.expect) {
            return Err(Failure::Body);
        }
        Ok(())
    }
}

fn write_head(out: &mut Vec<u8>, host: &str, req: &Request<'_>) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "{} {} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n",
        req.method,
        req.path,
        host,
        req.body.len()
    );
    if !req.body.is_empty() {
        out.extend_from_slice(b"content-type: application/json\r\n");
    }
    for (name, value) in req.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Reads one answer into `buf`: its status and where its body lies.
async fn read_answer(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<(u16, std::ops::Range<usize>), Failure> {
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| Failure::Io)?;
        if n == 0 {
            return Err(Failure::Io);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(buf) {
            Ok(httparse::Status::Complete(head)) => {
                let status = response.code.ok_or(Failure::Io)?;
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    // Chunked answers are not expected from warmline.
                    .ok_or(Failure::Io)?;
                while buf.len() < head + length {
                    let n = stream.read(&mut chunk).await.map_err(|_| Failure::Io)?;
                    if n == 0 {
                        return Err(Failure::Io);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                return Ok((status, head..head + length));
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err(Failure::Io),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}
