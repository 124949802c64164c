//! The connection to Redis (L2, leases, shared limits and the backplane),
//! built so that a Redis outage costs callers at most the command timeout,
//! never an error.
//!
//! One server (`redis://` or `rediss://`, a self-reconnecting connection
//! manager) or a Redis Cluster (`WARMLINE_REDIS_CLUSTER=on`, the crate's
//! async cluster client): both are a [`RedisConn`], so the commands above
//! are written once. What a cluster changes is confined here: a scan runs
//! on every master ([`RedisLink::masters`]), and pub/sub uses a plain
//! connection to one node, which receives every PUBLISH of the cluster.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, TlsCertificates, Value};

use super::RedisSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisHealth {
    Ok,
    Disabled,
    Error,
}

/// How warmline reaches Redis, as `/ready` shows it: never a URL or secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RedisShape {
    /// `single` or `cluster`.
    pub mode: &'static str,
    pub tls: bool,
    /// Whether a private CA (`WARMLINE_REDIS_CA_FILE`) verifies the server.
    pub private_ca: bool,
    /// Servers configured (a cluster's seed nodes).
    pub nodes: usize,
    pub command_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub backplane_ping_ms: u64,
}

impl RedisShape {
    pub fn backplane_ping(&self) -> Duration {
        Duration::from_millis(self.backplane_ping_ms)
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A multiplexed connection to one server or to a cluster; clone it freely.
#[derive(Clone)]
pub struct RedisConn(Conn);

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A lazily connecting, self-reconnecting Redis connection. Creating it never
/// blocks or fails on an unreachable server: warmline starts without Redis
/// and picks it up when it appears.
#[derive(Clone)]
pub struct RedisLink {
    /// Clients of each configured server (a cluster: each seed node), for
    /// connections of their own (pub/sub).
    clients: Vec<redis::Client>,
    manager: RedisConn,
    /// A connection of its own for scans and bulk deletes (flushes,
    /// recovery): they may take longer than a lookup's timeout, and on the
    /// shared connection they would hold up the lookups queued behind them.
    bulk: RedisConn,
    command_timeout: Duration,
    shape: RedisShape,
}

/// How long one scan or bulk-delete command may take.
pub const BULK_TIMEOUT: Duration = Duration::from_secs(10);

impl RedisLink {
    pub fn new(settings: &RedisSettings) -> redis::RedisResult<Self> {
        let urls = settings.urls();
        let certs = || TlsCertificates {
            client_tls: None,
            root_cert: settings.ca_pem.clone(),
        };
        let clients = urls
            .iter()
            .map(|url| match &settings.ca_pem {
                Some(_) => redis::Client::build_with_tls(url.as_str(), certs()),
                None => redis::Client::open(url.as_str()),
            })
            .collect::<redis::RedisResult<Vec<_>>>()?;
        let Some(first) = clients.first().cloned() else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "REDIS_URL names no server",
            )));
        };
        let connect_timeout = settings.connect_timeout.max(settings.command_timeout);
        let (manager, bulk) = if settings.cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(urls.clone())
                .connection_timeout(connect_timeout)
                .retries(2);
            if settings.ca_pem.is_some() {
                builder = builder.certs(certs());
            }
            let cluster = builder.build()?;
            let config = |response_timeout: Duration| {
                redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(response_timeout)
            };
            (
                RedisConn(Conn::Cluster(
                    cluster
                        .get_pending_async_connection_with_config(config(settings.command_timeout)),
                )),
                RedisConn(Conn::Cluster(
                    cluster.get_pending_async_connection_with_config(config(BULK_TIMEOUT)),
                )),
            )
        } else {
            let config = |response_timeout: Duration| {
                ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout))
                    // Reconnect quickly in the background; callers never wait for
                    // it longer than the command timeout they wrap around each call.
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(1))
            };
            (
                RedisConn(Conn::Single(ConnectionManager::new_lazy_with_config(
                    first.clone(),
                    config(settings.command_timeout),
                )?)),
                RedisConn(Conn::Single(ConnectionManager::new_lazy_with_config(
                    first,
                    config(BULK_TIMEOUT),
                )?)),
            )
        };
        Ok(RedisLink {
            shape: RedisShape {
                mode: if settings.cluster {
                    "cluster"
                } else {
                    "single"
                },
                tls: settings.tls(),
                private_ca: settings.ca_pem.is_some(),
                nodes: clients.len(),
                command_timeout_ms: settings.command_timeout.as_millis() as u64,
                connect_timeout_ms: connect_timeout.as_millis() as u64,
                backplane_ping_ms: settings.backplane_ping.as_millis() as u64,
            },
            clients,
            manager,
            bulk,
            command_timeout: settings.command_timeout,
        })
    }

    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    pub fn shape(&self) -> &RedisShape {
        &self.shape
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.manager.0, Conn::Cluster(_))
    }

    /// The client of the `n`th configured server (modulo their number), for
    /// a connection of its own (pub/sub). In a cluster any node receives
    /// every PUBLISH, so a subscriber may use any seed node; after a failure
    /// the backplane tries the next.
    pub fn client(&self, n: usize) -> &redis::Client {
        &self.clients[n % self.clients.len()]
    }

    /// A clone of the multiplexed connection, for issuing commands.
    pub fn connection(&self) -> RedisConn {
        self.manager.clone()
    }

    /// The connection for scans and bulk deletes ([`BULK_TIMEOUT`]).
    pub fn bulk_connection(&self) -> RedisConn {
        self.bulk.clone()
    }

    /// Runs `cmd` on the server at `node` (a cluster's master from
    /// [`Self::masters`]); on a single server, on that server.
    pub async fn query_on<T: redis::FromRedisValue>(
        &self,
        node: &(String, u16),
        cmd: Cmd,
    ) -> redis::RedisResult<T> {
        match &self.bulk.0 {
            Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: node.0.clone(),
                    port: node.1,
                });
                let value = c.clone().route_command(cmd, routing).await?;
                redis::from_redis_value(value).map_err(Into::into)
            }
        }
    }

    /// The servers holding keys: a cluster's masters (`CLUSTER SLOTS`), or
    /// the one server (named `single`).
    pub async fn masters(&self) -> redis::RedisResult<Vec<(String, u16)>> {
        let Conn::Cluster(c) = &self.bulk.0 else {
            return Ok(vec![("single".into(), 0)]);
        };
        let slots: Vec<Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut c.clone())
            .await?;
        let mut masters = Vec::new();
        for range in slots {
            // [start, end, [host, port, id, …], replicas…]
            let Value::Array(parts) = range else { continue };
            let Some(Value::Array(master)) = parts.get(2) else {
                continue;
            };
            let host = match master.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            let Some(Value::Int(port)) = master.get(1) else {
                continue;
            };
            let node = (host, u16::try_from(*port).unwrap_or_default());
            if !masters.contains(&node) {
                masters.push(node);
            }
        }
        Ok(masters)
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
