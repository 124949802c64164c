//! Zep Cloud, pinned to the v3 SDK generation: users and threads under
//! `/api/v2`, `Authorization: Api-Key <key>`.
//!
//! Each caller of each tenant is one Zep user with one long-lived thread
//! (`wl-<user_id>`): the context block of that thread searches the caller's
//! whole graph, and each call's transcript is appended to it.

use std::sync::Arc;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::http::{Call, UpstreamClient, join_path};
use super::{
    ConversationMessage, Memory, MemoryContext, MemorySubject, UpstreamError, UpstreamResult,
};

pub struct ZepMemory {
    client: Arc<UpstreamClient>,
    base: Url,
    api_key: SecretString,
}

pub fn thread_id(subject: &MemorySubject) -> String {
    format!("wl-{}", subject.user_id)
}

#[derive(Deserialize)]
struct ContextResponse {
    context: Option<String>,
}

impl ZepMemory {
    pub fn new(client: Arc<UpstreamClient>, base: Url, api_key: SecretString) -> Self {
        ZepMemory {
            client,
            base,
            api_key,
        }
    }

    fn url(&self, path: &str) -> Url {
        join_path(&self.base, "/api/v2", path)
    }

    fn auth(&self, call: Call) -> Call {
        call.header(
            "authorization",
            format!("Api-Key {}", self.api_key.expose_secret()),
        )
        .header("accept", "application/json")
    }

    async fn post_messages(
        &self,
        subject: &MemorySubject,
        messages: &[ConversationMessage],
    ) -> UpstreamResult<()> {
        let url = self.url(&format!("/threads/{}/messages", thread_id(subject)));
        let body = json!({
            "messages": messages.iter().map(|m| json!({
                "role": m.role,
                "content": m.content,
                "name": if m.role == "user" { subject.first_name.clone().unwrap_or_else(|| "Caller".into()) } else { "Agent".into() },
            })).collect::<Vec<_>>()
        });
        self.client
            .send("add_messages", self.auth(Call::post(url, body)))
            .await?;
        Ok(())
    }

    /// Creates the user and its thread; "already exists" is fine.
    async fn create_thread(&self, subject: &MemorySubject) -> UpstreamResult<()> {
        let mut user = json!({ "user_id": subject.user_id });
        if let Some(first) = &subject.first_name {
            user["first_name"] = first.clone().into();
        }
        let ok_if_exists = |r: UpstreamResult<_>| match r {
            Err(UpstreamError::Status {
                status: 400 | 409, ..
            }) => Ok(()),
            other => other.map(|_| ()),
        };
        ok_if_exists(
            self.client
                .send(
                    "create_user",
                    self.auth(Call::post(self.url("/users"), user)),
                )
                .await,
        )?;
        let thread = json!({ "thread_id": thread_id(subject), "user_id": subject.user_id });
        ok_if_exists(
            self.client
                .send(
                    "create_thread",
                    self.auth(Call::post(self.url("/threads"), thread)),
                )
                .await,
        )
    }
}

#[async_trait::async_trait]
impl Memory for ZepMemory {
    async fn get_context(&self, subject: &MemorySubject) -> UpstreamResult<Option<MemoryContext>> {
        let url = self.url(&format!("/threads/{}/context", thread_id(subject)));
        match self
            .client
            .json::<ContextResponse>("get_context", self.auth(Call::get(url).absent_on(404)))
            .await
        {
            Ok(r) => Ok(r
                .context
                .filter(|c| !c.trim().is_empty())
                .map(|c| MemoryContext {
                    summary: c,
                    facts: Vec::new(),
                })),
            // No thread yet: a first-time caller.
            Err(UpstreamError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn add_messages(
        &self,
        subject: &MemorySubject,
        messages: &[ConversationMessage],
    ) -> UpstreamResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        match self.post_messages(subject, messages).await {
            Err(UpstreamError::Status { status: 404, .. }) => {
                self.create_thread(subject).await?;
                self.post_messages(subject, messages).await
            }
            other => other,
        }
    }
}
