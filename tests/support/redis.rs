//! Real Redis servers for tests: `redis-server` on a free loopback port (standalone), or a
//! Cluster of three masters made with `redis-cli --cluster create`. Killed on drop.

use std::{net::TcpListener, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

/// A free loopback port (bound and released: good enough for a test process).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One `redis-server` process.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    cluster: bool,
}

impl Redis {
    /// A standalone server without persistence.
    pub async fn start() -> Redis {
        Redis::start_on(free_port(), false).await
    }

    async fn start_on(port: u16, cluster: bool) -> Redis {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Redis {
            port,
            child: None,
            dir,
            cluster,
        };
        r.restart().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port and waits until it answers PING.
    pub async fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--protected-mode", "no"])
        .current_dir(self.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]);
        }
        self.child = Some(
            cmd.spawn()
                .expect("redis-server runs (apt-get install redis-server)"),
        );
        for _ in 0..200 {
            if self.cli(&["PING"]).await.contains("PONG") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server on {} did not answer", self.port);
    }

    /// Kills the server (as a crash would).
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Runs `redis-cli` against this server; its stdout.
    pub async fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .await
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A Redis Cluster of three masters.
pub struct Cluster {
    pub nodes: Vec<Redis>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(Redis::start_on(free_port(), true).await);
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .await
            .expect("redis-cli --cluster create");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        for _ in 0..400 {
            let mut ok = 0;
            for n in &nodes {
                if n.cli(&["CLUSTER", "INFO"]).await.contains("cluster_state:ok") {
                    ok += 1;
                }
            }
            if ok == nodes.len() {
                return Cluster { nodes };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the cluster did not become ok");
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Redis::url).collect()
    }
}
