//! mem0 platform API v3: `Authorization: Token <key>`, entity ids inside
//! `filters` for search, asynchronous add.

use std::sync::Arc;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::http::{Call, UpstreamClient, join_path};
use super::{ConversationMessage, Memory, MemoryContext, MemorySubject, UpstreamResult};

/// What the search asks for at call start: everything useful to an agent.
const CONTEXT_QUERY: &str =
    "What should a receptionist know about this caller: name, preferences, history, open requests?";
const TOP_K: u32 = 10;

pub struct Mem0Memory {
    client: Arc<UpstreamClient>,
    base: Url,
    api_key: SecretString,
}

#[derive(Deserialize)]
struct SearchResponse {
    #[serde(default)]
    results: Vec<SearchResult>,
}

#[derive(Deserialize)]
struct SearchResult {
    memory: String,
    #[serde(default)]
    score: Option<f64>,
}

impl Mem0Memory {
    pub fn new(client: Arc<UpstreamClient>, base: Url, api_key: SecretString) -> Self {
        Mem0Memory {
            client,
            base,
            api_key,
        }
    }

    fn url(&self, path: &str) -> Url {
        join_path(&self.base, "", path)
    }

    fn auth(&self, call: Call) -> Call {
        call.header(
            "authorization",
            format!("Token {}", self.api_key.expose_secret()),
        )
        .header("accept", "application/json")
    }
}

#[async_trait::async_trait]
impl Memory for Mem0Memory {
    async fn get_context(&self, subject: &MemorySubject) -> UpstreamResult<Option<MemoryContext>> {
        let body = json!({
            "query": CONTEXT_QUERY,
            "filters": { "user_id": subject.user_id },
            "top_k": TOP_K,
        });
        let call = self
            .auth(Call::post(self.url("/v3/memories/search/"), body))
            .idempotent();
        let mut resp: SearchResponse = self.client.json("search", call).await?;
        if resp.results.is_empty() {
            return Ok(None);
        }
        resp.results
            .sort_by(|a, b| b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)));
        let facts: Vec<String> = resp.results.into_iter().map(|r| r.memory).collect();
        Ok(Some(MemoryContext {
            summary: facts.join("; "),
            facts,
        }))
    }

    async fn add_messages(
        &self,
        subject: &MemorySubject,
        messages: &[ConversationMessage],
    ) -> UpstreamResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let body = json!({
            "messages": messages.iter().map(|m| json!({ "role": m.role, "content": m.content })).collect::<Vec<_>>(),
            "user_id": subject.user_id,
            "infer": true,
        });
        // Accepted asynchronously: `{"event_id": …, "status": "PENDING"}`.
        self.client
            .send(
                "add",
                self.auth(Call::post(self.url("/v3/memories/add/"), body)),
            )
            .await?;
        Ok(())
    }
}
