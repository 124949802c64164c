//! One outgoing call to an upstream, as an adapter describes it before the
//! [client](super::http::UpstreamClient) sends it.

use reqwest::{Method, Url};

/// One outgoing call, before it is sent.
pub struct Call {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<serde_json::Value>,
    /// Safe to send twice (reads, and searches sent as POST).
    pub idempotent: bool,
    /// A status that answers "there is none" (Zep's 404 for a caller with
    /// no thread yet): still an error to the adapter, which maps it, but
    /// counted and logged as the outcome `absent`, not as a failure.
    pub absent_status: Option<u16>,
}

impl Call {
    pub fn get(url: Url) -> Self {
        Call {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: None,
            idempotent: true,
            absent_status: None,
        }
    }

    pub fn post(url: Url, body: serde_json::Value) -> Self {
        Call {
            method: Method::POST,
            url,
            headers: Vec::new(),
            body: Some(body),
            idempotent: false,
            absent_status: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Marks a POST that only reads (a search) as safe to retry.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Marks `status` as the upstream's "there is none" (see
    /// [`Call::absent_status`]).
    pub fn absent_on(mut self, status: u16) -> Self {
        self.absent_status = Some(status);
        self
    }
}
