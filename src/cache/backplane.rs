//! The backplane: invalidations published on Redis pub/sub so every
//! replica's L1 drops what another replica changed (FusionCache's model:
//! notifications are lazy — receivers drop or expire their copy and reload
//! from L2 on demand; values are never pushed).
//!
//! While the subscription is down a replica may miss messages, so it flushes
//! its whole L1 whenever the subscription comes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::policy::Namespace;
use super::redis_link::RedisLink;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The key was removed: drop it.
    Remove {
        ns: Namespace,
        key: String,
    },
    /// A newer value was written: stop serving ours as fresh, keep it as
    /// fail-safe.
    Expire {
        ns: Namespace,
        key: String,
    },
    Prefix {
        ns: Namespace,
        prefix: String,
    },
    Namespace {
        ns: Namespace,
    },
    /// Every namespace whose keys start with `prefix` (a tenant flush).
    PrefixAll {
        prefix: String,
    },
    All,
}

#[derive(Serialize, Deserialize)]
struct Message {
    origin: String,
    #[serde(flatten)]
    op: Op,
}

/// What the backplane applies locally: an op, or a full flush after a gap.
pub enum Event {
    Op(Op),
    Resync,
}

pub struct Backplane {
    link: RedisLink,
    channel: String,
    /// This replica's own channel for its pings: nobody else listens there,
    /// so pings never cost the other replicas anything.
    ping_channel: String,
    /// How often a ping is sent; one not back within the same interval
    /// means the subscription went silent.
    ping_every: Duration,
    origin: String,
    connected: AtomicBool,
    published: AtomicU64,
    received: AtomicU64,
    publish_errors: AtomicU64,
    silences: AtomicU64,
}

/// Why a subscription ended.
enum Ended {
    /// The server closed it, or the connection broke.
    Lost,
    /// It stayed open but a ping did not come back in time: messages may
    /// be going missing without an error.
    Silent,
}

impl Backplane {
    pub fn new(link: RedisLink, channel: String, origin: String, ping_every: Duration) -> Self {
        Backplane {
            link,
            ping_channel: format!("{channel}:ping:{origin}"),
            channel,
            ping_every,
            origin,
            connected: AtomicBool::new(false),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            publish_errors: AtomicU64::new(0),
            silences: AtomicU64::new(0),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.published.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
            self.publish_errors.load(Ordering::Relaxed),
        )
    }

    /// How many times the subscription was found silent.
    pub fn silences(&self) -> u64 {
        self.silences.load(Ordering::Relaxed)
    }

    /// Tells the other replicas. A failure is only counted: if Redis is
    /// down, so is every replica's subscription, and each flushes its L1
    /// when it reconnects.
    /// False when the message did not get out.
    pub async fn publish(&self, op: Op) -> bool {
        let msg = Message {
            origin: self.origin.clone(),
            op,
        };
        let Ok(payload) = serde_json::to_string(&msg) else {
            return false;
        };
        let mut conn = self.link.connection();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&self.channel).arg(payload);
        let sent = tokio::time::timeout(
            self.link.command_timeout(),
            cmd.query_async::<i64>(&mut conn),
        )
        .await;
        match sent {
            Ok(Ok(_)) => {
                self.published.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("warmline_cache_backplane_messages_total", "direction" => "published").increment(1);
                true
            }
            _ => {
                self.publish_errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("warmline_cache_backplane_publish_errors_total").increment(1);
                false
            }
        }
    }

    /// Sends ping `n` to this replica's own ping channel, in the background
    /// (a paused server may hold the command). On the bulk connection: the
    /// lookups' short response timeout must not lose a ping on a busy
    /// machine, and the interval bounds it anyway.
    fn send_ping(&self, n: u64) {
        let mut conn = self.link.bulk_connection();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&self.ping_channel).arg(n);
        let timeout = self.ping_every;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(timeout, cmd.query_async::<i64>(&mut conn)).await;
        });
    }

    /// Runs the subscription until the process ends, reconnecting with
    /// backoff and sending [`Event::Resync`] after every reconnect, and at
    /// once when the subscription goes silent.
    pub async fn listen(self: Arc<Self>, apply: impl Fn(Event) + Send + Sync + 'static) {
        for direction in ["published", "received"] {
            metrics::counter!("warmline_cache_backplane_messages_total", "direction" => direction)
                .increment(0);
        }
        metrics::counter!("warmline_cache_backplane_publish_errors_total").increment(0);
        metrics::counter!("warmline_cache_backplane_silences_total").increment(0);
        let mut backoff = Duration::from_millis(100);
        let mut connected_before = false;
        let mut attempt = 0usize;
        loop {
            match self.subscribe(attempt).await {
                Ok(pubsub) => {
                    backoff = Duration::from_millis(100);
                    self.connected.store(true, Ordering::Release);
                    metrics::gauge!("warmline_cache_backplane_connected").set(1.0);
                    if connected_before {
                        tracing::info!(
                            "backplane reconnected: flushing L1 in case messages were missed"
                        );
                        apply(Event::Resync);
                    }
                    connected_before = true;
                    let ended = self.receive(pubsub, &apply).await;
                    self.connected.store(false, Ordering::Release);
                    metrics::gauge!("warmline_cache_backplane_connected").set(0.0);
                    match ended {
                        Ended::Lost => {
                            tracing::warn!("backplane subscription lost; reconnecting");
                        }
                        Ended::Silent => {
                            self.silences.fetch_add(1, Ordering::Relaxed);
                            metrics::counter!("warmline_cache_backplane_silences_total")
                                .increment(1);
                            tracing::warn!(
                                ping_ms = self.ping_every.as_millis() as u64,
                                "backplane subscription silent (its ping did not come back): \
                                 flushing L1 and resubscribing"
                            );
                            apply(Event::Resync);
                        }
                    }
                    // In a cluster, the next seed node may be the healthy one.
                    attempt += 1;
                }
                Err(e) => {
                    attempt += 1;
                    tracing::debug!(error = %e, "backplane cannot subscribe yet");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Applies messages until the subscription ends or goes silent.
    async fn receive(&self, mut pubsub: redis::aio::PubSub, apply: &impl Fn(Event)) -> Ended {
        let mut messages = pubsub.on_message();
        let mut ticker = tokio::time::interval(self.ping_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The ping in flight; 0: none yet.
        let (mut sent, mut answered) = (0u64, 0u64);
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else { return Ended::Lost };
                    if msg.get_channel_name() == self.ping_channel {
                        if let Ok(n) = msg.get_payload::<u64>() {
                            answered = answered.max(n);
                        }
                        continue;
                    }
                    self.on_message(&msg, apply);
                }
                _ = ticker.tick() => {
                    if sent > answered {
                        return Ended::Silent;
                    }
                    sent += 1;
                    self.send_ping(sent);
                }
            }
        }
    }

    fn on_message(&self, msg: &redis::Msg, apply: &impl Fn(Event)) {
        let Ok(payload) = msg.get_payload::<String>() else {
            return;
        };
        let Ok(msg) = serde_json::from_str::<Message>(&payload) else {
            tracing::warn!("ignoring an unreadable backplane message");
            return;
        };
        if msg.origin == self.origin {
            return;
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("warmline_cache_backplane_messages_total", "direction" => "received")
            .increment(1);
        apply(Event::Op(msg.op));
    }

    async fn subscribe(&self, attempt: usize) -> redis::RedisResult<redis::aio::PubSub> {
        let client = self.link.client(attempt).clone();
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            pubsub.subscribe(&self.ping_channel).await?;
            Ok(pubsub)
        };
        tokio::time::timeout(Duration::from_secs(2), connect)
            .await
            .unwrap_or_else(|_| {
                Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "backplane subscribe timed out",
                )))
            })
    }
}
