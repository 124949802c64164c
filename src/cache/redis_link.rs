//! The connection to Redis (L2 and the backplane), built so that a Redis
//! outage costs callers at most the command timeout, never an error.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;

use super::RedisSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisHealth {
    Ok,
    Disabled,
    Error,
}

/// A lazily connecting, self-reconnecting Redis connection. Creating it never
/// blocks or fails on an unreachable server: warmline starts without Redis
/// and picks it up when it appears.
#[derive(Clone)]
pub struct RedisLink {
    client: redis::Client,
    manager: ConnectionManager,
    /// A connection of its own for scans and bulk deletes (flushes,
    /// recovery): they may take longer than a lookup's timeout, and on the
    /// shared connection they would hold up the lookups queued behind them.
    bulk: ConnectionManager,
    command_timeout: Duration,
}

/// How long one scan or bulk-delete command may take.
pub const BULK_TIMEOUT: Duration = Duration::from_secs(10);

impl RedisLink {
    pub fn new(settings: &RedisSettings) -> redis::RedisResult<Self> {
        let client = redis::Client::open(settings.url.expose_secret())?;
        let config = |response_timeout: Duration| {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(
                    settings.command_timeout.max(Duration::from_millis(250)),
                ))
                .set_response_timeout(Some(response_timeout))
                // Reconnect quickly in the background; callers never wait for
                // it longer than the command timeout they wrap around each call.
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_secs(1))
        };
        Ok(RedisLink {
            manager: ConnectionManager::new_lazy_with_config(
                client.clone(),
                config(settings.command_timeout),
            )?,
            bulk: ConnectionManager::new_lazy_with_config(client.clone(), config(BULK_TIMEOUT))?,
            client,
            command_timeout: settings.command_timeout,
        })
    }

    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A clone of the multiplexed connection, for issuing commands.
    pub fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// The connection for scans and bulk deletes ([`BULK_TIMEOUT`]).
    pub fn bulk_connection(&self) -> ConnectionManager {
        self.bulk.clone()
    }

    /// `PING` bounded by `timeout`.
    pub async fn ping(&self, timeout: Duration) -> RedisHealth {
        let mut conn = self.manager.clone();
        let ping = redis::cmd("PING");
        let probe = ping.query_async::<String>(&mut conn);
        match tokio::time::timeout(timeout, probe).await {
            Ok(Ok(pong)) if pong == "PONG" => RedisHealth::Ok,
            _ => RedisHealth::Error,
        }
    }
}
