//! A Redis Cluster of three masters of the test's own (`redis-server
//! --cluster-enabled yes` ×3, `redis-cli --cluster create`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, skip};

pub struct PrivateCluster {
    pub ports: Vec<u16>,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// Starts three masters and joins them, or `None` (after [`skip`]) when
    /// `redis-server`/`redis-cli` cannot.
    pub async fn start() -> Option<PrivateCluster> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = PrivateCluster {
            ports: Vec::new(),
            children: Vec::new(),
            _dir: tempfile::tempdir().expect("temp dir"),
        };
        for n in 0..3 {
            let (port, bus) = (free_port(), free_port());
            let spawned = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                ])
                .arg("--cluster-config-file")
                .arg(dir.path().join(format!("nodes-{n}.conf")))
                .arg("--dir")
                .arg(dir.path())
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            match spawned {
                Ok(child) => cluster.children.push(child),
                Err(e) => {
                    skip("redis-server", &format!("cannot run redis-server: {e}"));
                    return None;
                }
            }
            cluster.ports.push(port);
        }
        for port in &cluster.ports {
            if let Err(e) = wait_for(*port, "PING", "PONG").await {
                skip("redis cluster", &e);
                return None;
            }
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output();
        match created {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                skip(
                    "redis cluster",
                    &format!(
                        "redis-cli --cluster create failed: {}",
                        String::from_utf8_lossy(&out.stdout)
                    ),
                );
                return None;
            }
            Err(e) => {
                skip("redis-cli", &format!("cannot run redis-cli: {e}"));
                return None;
            }
        }
        for port in &cluster.ports {
            if let Err(e) = wait_for(*port, "CLUSTER INFO", "cluster_state:ok").await {
                skip("redis cluster", &e);
                return None;
            }
        }
        cluster._dir = dir;
        Some(cluster)
    }

    /// Seed nodes for `REDIS_URL` (two of the three: the client finds the
    /// third itself).
    pub fn seeds(&self) -> String {
        format!(
            "redis://127.0.0.1:{},redis://127.0.0.1:{}",
            self.ports[0], self.ports[1]
        )
    }

    /// The keys of one node matching `pattern`.
    pub async fn keys_on(&self, port: u16, pattern: &str) -> Vec<String> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

/// Waits until `command` on the node at `port` answers something containing
/// `expect`.
async fn wait_for(port: u16, command: &str, expect: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = async {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            let mut cmd = redis::Cmd::new();
            for part in command.split(' ') {
                cmd.arg(part);
            }
            cmd.query_async::<String>(&mut conn).await.ok()
        }
        .await;
        if answer.is_some_and(|a| a.contains(expect)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "node {port} never answered {command} with {expect}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
