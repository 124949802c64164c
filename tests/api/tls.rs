//! Managed Postgres and Redis require TLS: warmline connects through
//! `rediss://` (with `WARMLINE_REDIS_CA_FILE` for a private CA) and through
//! Postgres `sslmode=require | verify-full` with `sslrootcert=`, to servers
//! the tests start with certificates they make. `/ready` shows how each is
//! reached — never a password.

use std::time::Duration;

use warmline::cache::{Cache, CacheConfig, Namespace, Policies, RedisHealth, RedisLink, Tier};
use warmline::store::Store;

use crate::helpers::tls::{TestCerts, TlsRedis};
use crate::helpers::{PrivatePostgres, TestDb, settings_with, spawn_app_with, spawn_with_settings};

fn redis_link(vars: &[(&str, &str)]) -> RedisLink {
    let settings = settings_with(vars);
    RedisLink::new(settings.cache.redis.as_ref().expect("REDIS_URL set")).expect("redis link")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca_serves_l2_and_the_backplane_and_ready_shows_tls() {
    let Some(certs) = TestCerts::make() else {
        return;
    };
    let Some(redis) = TlsRedis::start(&certs).await else {
        return;
    };
    let ca = certs.ca.display().to_string();
    for host in ["localhost", "127.0.0.1"] {
        let url = redis.url(host);
        let vars = [
            ("REDIS_URL", url.as_str()),
            ("WARMLINE_REDIS_CA_FILE", ca.as_str()),
            ("WARMLINE_REDIS_TIMEOUT_MS", "2000"),
        ];
        let link = redis_link(&vars);
        assert_eq!(
            link.ping(Duration::from_secs(5)).await,
            RedisHealth::Ok,
            "{url}"
        );

        // L2 and the backplane, over TLS.
        let prefix = format!("wltls:{}:", uuid::Uuid::new_v4().simple());
        let cache = |link: RedisLink| {
            Cache::new(CacheConfig {
                policies: Policies::default(),
                redis: Some(link),
                redis_prefix: prefix.clone(),
                store: None,
            })
        };
        let (a, b) = (cache(link.clone()), cache(redis_link(&vars)));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !(a.backplane_connected() && b.backplane_connected()) {
            assert!(std::time::Instant::now() < deadline, "no TLS subscription");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a.namespace::<String>(Namespace::Memory)
            .set("acme:+14155550123", "over tls".into())
            .await;
        let got = b
            .namespace::<String>(Namespace::Memory)
            .get_or_load("acme:+14155550123", || async {
                Err(warmline::cache::LoadError::new("must come from L2"))
            })
            .await
            .expect("read through TLS");
        assert_eq!(got.tier, Tier::L2);
        assert_eq!(got.value.as_deref().map(String::as_str), Some("over tls"));
    }

    // A CA that did not sign the server's certificate: no connection.
    let other = certs.other_ca.display().to_string();
    let url = redis.url("localhost");
    let wrong = redis_link(&[
        ("REDIS_URL", url.as_str()),
        ("WARMLINE_REDIS_CA_FILE", other.as_str()),
    ]);
    assert_eq!(wrong.ping(Duration::from_secs(2)).await, RedisHealth::Error);

    // `/ready` says how Redis is reached, without the URL's password.
    let with_password = format!("rediss://:r3dis-s3cret@localhost:{}", redis.port);
    let app = spawn_app_with(
        TestDb::sqlite(),
        &[
            ("REDIS_URL", with_password.as_str()),
            ("WARMLINE_REDIS_CA_FILE", ca.as_str()),
            ("WARMLINE_REDIS_TIMEOUT_MS", "2000"),
            ("WARMLINE_REDIS_CONNECT_TIMEOUT_MS", "3000"),
        ],
    )
    .await;
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 200, "{body}");
    let shape = &body["redis_connection"];
    assert_eq!(shape["mode"], "single", "{body}");
    assert_eq!(shape["tls"], true, "{body}");
    assert_eq!(shape["private_ca"], true, "{body}");
    assert_eq!(shape["command_timeout_ms"], 2000, "{body}");
    assert_eq!(shape["connect_timeout_ms"], 3000, "{body}");
    assert!(!body.to_string().contains("r3dis-s3cret"), "{body}");
}

#[test]
fn a_ca_file_needs_rediss_and_must_hold_a_certificate() {
    let vars = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let err = warmline::settings::Settings::from_vars(&vars(&[
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("WARMLINE_REDIS_CA_FILE", "/etc/hostname"),
    ]))
    .err()
    .expect("plain redis:// with a CA");
    assert_eq!(err.var, "WARMLINE_REDIS_CA_FILE");
    let err = warmline::settings::Settings::from_vars(&vars(&[
        ("REDIS_URL", "rediss://127.0.0.1:6379"),
        ("WARMLINE_REDIS_CA_FILE", "/etc/hostname"),
    ]))
    .err()
    .expect("not a PEM");
    assert_eq!(err.var, "WARMLINE_REDIS_CA_FILE");
    assert!(err.reason.contains("no PEM certificate"), "{err}");
    let err = warmline::settings::Settings::from_vars(&vars(&[(
        "DATABASE_URL",
        "postgres://u:pw@db/app?sslmode=verify-everything",
    )]))
    .err()
    .expect("unknown sslmode");
    assert_eq!(err.var, "DATABASE_URL");
    assert!(!err.reason.contains("pw@"), "{err}");
}

/// A private Postgres with `ssl=on`, serving the test's certificate.
async fn postgres_with_tls(certs: &TestCerts) -> Option<PrivatePostgres> {
    let mut pg = PrivatePostgres::init()?;
    let tls = pg.dir().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(&certs.server_cert, tls.join("server.crt")).unwrap();
    std::fs::copy(&certs.server_key, tls.join("server.key")).unwrap();
    let path = tls.display();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "chown -R postgres {path} && chmod 600 {path}/server.key"
        ))
        .output();
    assert!(out.is_ok_and(|o| o.status.success()), "key permissions");
    pg.options =
        format!("-c ssl=on -c ssl_cert_file={path}/server.crt -c ssl_key_file={path}/server.key");
    pg.start_server().await;
    Some(pg)
}

/// Whether the store's connection is encrypted, as the server sees it.
async fn encrypted(store: &Store) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .expect("pg_stat_ssl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_with_sslmode_require_and_verify_full_and_a_clear_error_for_a_wrong_ca() {
    let Some(certs) = TestCerts::make() else {
        return;
    };
    let Some(pg) = postgres_with_tls(&certs).await else {
        return;
    };
    let ca = certs.ca.display().to_string();
    let base = |host: &str| format!("postgres://postgres:pg-s3cret@{host}:{}/postgres", pg.port);

    for url in [
        format!("{}?sslmode=require", base("127.0.0.1")),
        format!("{}?sslmode=verify-ca&sslrootcert={ca}", base("127.0.0.1")),
        format!("{}?sslmode=verify-full&sslrootcert={ca}", base("localhost")),
        format!("{}?sslmode=verify-full&sslrootcert={ca}", base("127.0.0.1")),
    ] {
        let store = TestDb::External(url.clone()).store().await;
        assert!(encrypted(&store).await, "{url}: not encrypted");
        store.close().await;
    }

    // The app on verify-full: migrated, ready, and `/ready` shows the pool
    // and its TLS mode, not the password.
    let url = format!("{}?sslmode=verify-full&sslrootcert={ca}", base("localhost"));
    let app = spawn_app_with(
        TestDb::External(url),
        &[
            ("WARMLINE_DB_MAX_CONNECTIONS", "7"),
            ("WARMLINE_DB_MIN_CONNECTIONS", "1"),
            ("WARMLINE_DB_ACQUIRE_TIMEOUT_MS", "1500"),
            ("WARMLINE_DB_MAX_LIFETIME_MS", "600000"),
        ],
    )
    .await;
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "ok", "{body}");
    let pool = &body["database_pool"];
    assert_eq!(pool["tls"], "verify-full", "{body}");
    assert_eq!(pool["private_ca"], true, "{body}");
    assert_eq!(pool["max_connections"], 7, "{body}");
    assert_eq!(pool["min_connections"], 1, "{body}");
    assert_eq!(pool["acquire_timeout_ms"], 1500, "{body}");
    assert_eq!(pool["max_lifetime_ms"], 600000, "{body}");
    assert!(!body.to_string().contains("pg-s3cret"), "{body}");
    assert!(encrypted(&app.store).await);

    // The wrong CA: warmline starts degraded and says why.
    let other = certs.other_ca.display().to_string();
    let wrong = format!(
        "{}?sslmode=verify-full&sslrootcert={other}",
        base("localhost")
    );
    let settings = settings_with(&[
        ("DATABASE_URL", wrong.as_str()),
        ("WARMLINE_DB_ACQUIRE_TIMEOUT_MS", "1000"),
    ]);
    let app = spawn_with_settings(settings).await;
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "error", "{body}");
    let error = body["database_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("certificate") || error.contains("UnknownIssuer"),
        "the error names the certificate problem: {error}"
    );
    assert!(!body.to_string().contains("pg-s3cret"), "{body}");
}
