//! Durable state: the pool, the backend choice and one file per table family.
//!
//! Nothing outside `store/` writes SQL. The store speaks one dialect to both
//! backends through sqlx's `Any` driver: portable column types (TEXT, BIGINT,
//! DOUBLE PRECISION), `$N` placeholders and `ON CONFLICT … DO UPDATE` upserts.
//! We chose `Any` over an enum of native pools so each query is written — and
//! tested — once; the price is no native timestamp/JSON/bool types, which is
//! why timestamps are epoch milliseconds and documents are JSON text. Only the
//! migrations differ per backend (auto-increment ids are not portable).
//!
//! The pool connects lazily: warmline starts and answers from cache even when
//! the database is down, and [`Store::ping`] tells `/ready` the truth.

mod admin_sessions;
mod alerts;
mod appointments;
mod audit;
mod call_merge;
mod call_parties;
mod call_steps;
mod calls;
mod contacts;
mod daily_metrics;
mod last_good;
mod ledger;
mod many;
mod messages;
mod settings;
mod tenants;
mod timings;
mod writeback_queue;

pub use admin_sessions::AdminSession;
pub use alerts::{AlertRecord, NewAlert, TenantDay};
pub use appointments::{AppointmentRecord, NewAppointment};
pub use audit::{AuditEntry, NewAuditEntry};
pub use call_steps::{CallStep, ContextAnswered, MAX_STEP_TEXT, StepKind};
pub use calls::{
    CallFallback, CallFilter, CallOutcome, CallRecord, CallStatus, CallUpdate, CallUpsert,
};
pub use contacts::{CallerCounts, ContactCalls, ContactRecord, ContactUpdate, CountsAfter};
pub use daily_metrics::{DailyDelta, DailyMetrics};
pub use last_good::LastGood;
pub use messages::{MessageRecord, NewMessage};
pub use settings::{DEFAULT_DATABASE_URL, DatabaseSettings};
pub use tenants::{NewTenant, TenantRow};
pub use timings::{DailyTimings, Rollup};
pub use writeback_queue::{QueuedWriteBack, claim_writebacks_sql};

/// The `*_in` functions take a connection or transaction, so the write-behind
/// can apply many changes in one transaction (group commit).
pub mod tx {
    pub use super::appointments::insert_appointment_in;
    pub use super::call_merge::{end_calls_in, upsert_calls_in};
    pub use super::call_parties::{call_direction_in, call_parties_in};
    pub use super::call_steps::insert_call_steps_in;
    pub use super::calls::add_call_fallback_in;
    pub use super::contacts::{record_many_contact_calls_in, upsert_contact_in};
    pub use super::daily_metrics::add_daily_in;
    pub use super::ledger::{record_applied_in, record_applied_many_in};
    pub use super::messages::insert_message_in;
    pub use super::tenants::tenant_for_number_in;
    pub use super::writeback_queue::enqueue_writebacks_in;
}

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection as _};

use secrecy::ExposeSecret;

/// A pooled connection idle this long is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("DATABASE_URL is not a sqlite:// or postgres:// URL")]
    UnsupportedUrl,
    #[error("database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("stored {what} is invalid: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

impl StoreError {
    /// True when the database could not be reached at all (as opposed to a
    /// query it rejected): the caller should spill and retry later, not drop.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Timeout(_) => true,
            StoreError::Database(e) => sqlx_unavailable(e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sqlx_unavailable(e),
            _ => false,
        }
    }

    /// True when the database refused for now, not for good: busy or
    /// locked (SQLite), or a Postgres SQLSTATE of class 08 (connection), 40
    /// (serialization failure, deadlock), 53 (insufficient resources) or 57
    /// (operator intervention: shutting down, starting up). Retried with
    /// backoff, spilled when it goes on — never parked.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => sqlx_transient(e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sqlx_transient(e),
            _ => false,
        }
    }

    /// Worth trying again later: unreachable or transiently refused.
    pub fn is_retryable(&self) -> bool {
        self.is_unavailable() || self.is_transient()
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> Self {
        StoreError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    )
}

fn sqlx_transient(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    let Some(code) = db.code() else {
        return false;
    };
    is_transient_code(&code)
}

/// A Postgres SQLSTATE (five characters) or a SQLite result code (a number
/// below 10000; extended codes keep the primary one in their low byte: 5
/// busy, 6 locked).
fn is_transient_code(code: &str) -> bool {
    if code.len() == 5 {
        return matches!(&code[..2], "08" | "40" | "53" | "57");
    }
    code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

#[cfg(test)]
mod tests {
    #[test]
    fn transient_codes_are_told_from_permanent_ones() {
        for code in [
            "08006", "40001", "40P01", "53300", "57P01", "57P03", "5", "6", "517", "262",
        ] {
            assert!(super::is_transient_code(code), "{code}");
        }
        for code in ["23505", "22021", "42P01", "1", "19", "2067", "11"] {
            assert!(!super::is_transient_code(code), "{code}");
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The handle every part of warmline uses to reach the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Queries made on behalf of a request (inside an attribution scope):
    /// what shows that a path answered from memory.
    request_queries: Arc<AtomicU64>,
    shape: PoolShape,
}

/// How the pool is configured and how full it is, for `/ready`: never the
/// URL, a host or a password.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PoolShape {
    /// Postgres `sslmode` (`prefer` when unset); `none` for SQLite.
    pub tls: String,
    /// Whether `sslrootcert` names a CA of its own.
    pub private_ca: bool,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_lifetime_ms: u64,
    /// Connections open now, and of those idle.
    pub open: u32,
    pub idle: usize,
}

impl Store {
    /// Builds the pool without connecting: the first query connects.
    pub fn connect_lazy(settings: &DatabaseSettings) -> Result<Self> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let raw = settings.url.expose_secret();
        let backend = Backend::from_url(raw).ok_or(StoreError::UnsupportedUrl)?;
        let url = match backend {
            // Create the file when missing: the embedded default must just work.
            Backend::Sqlite if !raw.contains("mode=") && !raw.contains(":memory:") => {
                let sep = if raw.contains('?') { '&' } else { '?' };
                format!("{raw}{sep}mode=rwc")
            }
            _ => raw.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(Some(settings.idle_timeout))
            .max_lifetime(Some(settings.max_lifetime))
            // A connection handed out again at once is not pinged first: that
            // is a round trip before every query a caller waits on (about a
            // millisecond to a managed database in another zone), and sqlx
            // already pings each connection when it is released. One idle for
            // a while may have been dropped by the server or a proxy, and is.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            });
        if backend == Backend::Sqlite {
            if url.contains(":memory:") {
                // Every connection to `:memory:` is its own empty database.
                pool = pool
                    .min_connections(1)
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets the admin read while webhooks write; FULL sync
                    // because an acknowledged event must survive power loss;
                    // busy_timeout makes concurrent writers queue, not fail.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA busy_timeout = 5000",
                        "PRAGMA foreign_keys = ON",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        }
        let shape = PoolShape {
            tls: settings.tls_mode(),
            private_ca: settings.private_ca(),
            max_connections: settings.max_connections,
            min_connections: settings.min_connections,
            acquire_timeout_ms: settings.acquire_timeout.as_millis() as u64,
            idle_timeout_ms: settings.idle_timeout.as_millis() as u64,
            max_lifetime_ms: settings.max_lifetime.as_millis() as u64,
            open: 0,
            idle: 0,
        };
        Ok(Store {
            pool: pool.connect_lazy_with(options),
            backend,
            request_queries: Arc::default(),
            shape,
        })
    }

    /// The pool's configuration and its connections now.
    pub fn pool_shape(&self) -> PoolShape {
        PoolShape {
            open: self.pool.size(),
            idle: self.pool.num_idle(),
            ..self.shape.clone()
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for a query: counted when a request makes it.
    pub fn pool(&self) -> &AnyPool {
        self.count_query();
        &self.pool
    }

    /// Counts one query if a request (an attribution scope) is making it.
    fn count_query(&self) {
        if crate::support::attribution::query() {
            self.request_queries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many queries requests have made through this store (background
    /// work is not counted): a test's proof that a path stays off the
    /// database.
    pub fn request_queries(&self) -> u64 {
        self.request_queries.load(Ordering::Relaxed)
    }

    /// Applies the migrations of this backend; a no-op when they are applied.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// One round trip, bounded by `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<()> {
        let probe = async {
            let mut conn = self.pool.acquire().await?;
            conn.ping().await?;
            Ok::<_, StoreError>(())
        };
        tokio::time::timeout(timeout, probe)
            .await
            .map_err(|_| StoreError::Timeout(timeout))?
    }

    /// A transaction for group commit: the `*_in` functions of each table
    /// family take `&mut AnyConnection`, which a transaction derefs to.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        self.count_query();
        Ok(self.pool.begin().await?)
    }

    pub(crate) async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        self.count_query();
        Ok(self.pool.acquire().await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

use crate::support::now_ms;

pub(crate) fn bool_to_i64(b: bool) -> i64 {
    i64::from(b)
}

/// What the `*_in` functions write through: a pooled connection or a
/// transaction (both deref to it).
pub type Conn = AnyConnection;
