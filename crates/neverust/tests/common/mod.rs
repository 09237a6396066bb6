//! The one way tests start a node: the real `neverust` binary as a child process on
//! ephemeral loopback ports, with a client for its API.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use neverust_lab::client::NodeClient;
use neverust_node::api::answers::{self, DebugInfo, Space};

pub mod archivist;
pub mod eventually;
pub mod market;

#[allow(unused_imports)] // each test binary uses its own few
pub use eventually::{eventually, eventually_blocking, eventually_ok};

pub struct TestNode {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub peer_id: String,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
    /// The lab's client of the node's API: what the lab and the visualizer read, the
    /// tests read the same way.
    pub client: NodeClient,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_neverust")
}

/// Passes a node's log on to the test's own output, each line prefixed with the node's API
/// port: the test harness shows it only for a failing test, and tells the nodes apart.
fn forward_log(stderr: ChildStderr, label: Arc<OnceLock<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let who = label.get().map_or("starting", String::as_str);
            eprintln!("[node {who}] {line}");
        }
    });
}

impl TestNode {
    /// Starts a node on `data_dir` with extra flags and waits for its READY line.
    pub fn start(data_dir: &Path, extra: &[&str]) -> TestNode {
        TestNode::start_at("127.0.0.1", 0, data_dir, extra)
    }

    /// Like `start`, with everything bound to `ip` (any of 127.0.0.0/8) and the API on
    /// `api_port` (0: a free one): nodes on distinct addresses can share an API port, as
    /// deployed nodes do.
    pub fn start_at(ip: &str, api_port: u16, data_dir: &Path, extra: &[&str]) -> TestNode {
        let mut child = Command::new(binary())
            .arg("start")
            .args(["--api-port", &api_port.to_string()])
            .args(["--listen-port", "0", "--disc-port", "0"])
            .args([
                "--listen-ip",
                ip,
                "--api-bindaddr",
                ip,
                "--log-level",
                // NEVERUST_TEST_LOG=info shows what the nodes of a failing test did.
                &std::env::var("NEVERUST_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning neverust");
        let stdout = child.stdout.take().unwrap();
        let label = Arc::new(OnceLock::new());
        forward_log(child.stderr.take().unwrap(), label.clone());
        let mut lines = BufReader::new(stdout).lines();
        let ready = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("READY ") => break line,
                Some(Ok(_)) => continue,
                _ => {
                    let status = child.wait().unwrap();
                    panic!("node exited before READY: {status}");
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let field = |key: &str| {
            ready
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {ready:?}"))
                .to_string()
        };
        let base = field("api=");
        let _ = label.set(base.rsplit(':').next().unwrap_or_default().to_string());
        TestNode {
            client: NodeClient::new(base.clone()),
            base,
            peer_id: field("peer_id="),
            child,
            data_dir: data_dir.to_path_buf(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/archivist/v1{}", self.base, path)
    }

    pub async fn upload(&self, data: Vec<u8>) -> reqwest::Response {
        self.http
            .post(self.url("/data"))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Disposition", "attachment; filename=\"test.bin\"")
            .body(data)
            .send()
            .await
            .expect("upload request")
    }

    pub async fn upload_ok(&self, data: Vec<u8>) -> String {
        let resp = self.upload(data).await;
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "upload failed: {body}");
        body
    }

    pub async fn download(&self, cid: &str) -> (u16, Vec<u8>) {
        let resp = self
            .http
            .get(self.url(&format!("/data/{cid}")))
            .send()
            .await
            .expect("download request");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap().to_vec())
    }

    /// GET an API path (under the base path) and parse its JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The API address as `--bootstrap-node` takes it.
    pub fn api_host_port(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// GET `/data/{cid}/network/stream`: status and the whole body (empty if it was cut).
    pub async fn stream_network(&self, cid: &str) -> (u16, Vec<u8>) {
        let resp = self
            .http
            .get(self.url(&format!("/data/{cid}/network/stream")))
            .send()
            .await
            .expect("stream request");
        let status = resp.status().as_u16();
        (
            status,
            resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
        )
    }

    /// GET an API path and read its answer as the node's `api::answers` type `T`; a field
    /// missing or of the wrong type fails the test, named.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let url = self.url(path);
        let resp = self.http.get(&url).send().await.unwrap();
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        let text = resp.text().await.unwrap();
        answers::decode(&text).unwrap_or_else(|e| panic!("GET {url}: {e} in {text}"))
    }

    pub async fn debug_info(&self) -> DebugInfo {
        self.client
            .debug_info()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.base))
    }

    /// Peer ids this node holds a live connection to, from `/debug/info`.
    pub async fn connected_peers(&self) -> Vec<String> {
        let info = self.debug_info().await;
        info.table
            .nodes
            .into_iter()
            .filter(|n| n.seen)
            .map(|n| n.peer_id)
            .collect()
    }

    /// Waits (bounded) until this node is connected to `peer`.
    pub async fn wait_connected(&self, peer: &str) {
        let what = format!("{} to connect to {peer}", self.peer_id);
        eventually(&what, Duration::from_secs(10), || async {
            self.connected_peers()
                .await
                .iter()
                .any(|p| p == peer)
                .then_some(())
        })
        .await
    }

    /// The node's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.client
            .metrics()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.base))
    }

    /// The sum of every series of a metric in `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        metric_sum(&self.metrics_text().await, name)
    }

    pub async fn space(&self) -> Space {
        self.get("/space").await
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic, incompressible-looking test data.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The sum of every series of metric `name` in a Prometheus text page (0 when absent),
/// read by the lab's parser (the one the bench and the cluster use).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    neverust_lab::metrics::sum(&neverust_lab::metrics::parse(text), name)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A long-running child (a cluster launcher, a Prometheus) stopped when the test ends,
/// pass or fail: SIGTERM, so it stops what it started, then SIGKILL after 15 s.
pub struct Terminated(pub Child);

impl Drop for Terminated {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Uploads `body` to the node whose API is at `api` (`http://HOST:PORT`); its CID.
pub async fn upload_to(http: &reqwest::Client, api: &str, body: Vec<u8>) -> String {
    let r = http
        .post(format!("{api}/api/archivist/v1/data"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "upload to {api}: {}", r.status());
    r.text().await.unwrap()
}

/// Downloads `cid` through the node at `api`, from the network if it lacks it.
pub async fn download_through(http: &reqwest::Client, api: &str, cid: &str) -> bytes::Bytes {
    let r = http
        .get(format!("{api}/api/archivist/v1/data/{cid}/network/stream"))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "download from {api}: {}",
        r.status()
    );
    r.bytes().await.unwrap()
}

/// The `/metrics` page of the node at `api`.
pub async fn metrics_of(http: &reqwest::Client, api: &str) -> String {
    http.get(format!("{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `name` from PATH, or a failure that says how to get it.
pub fn tool(name: &str) -> Command {
    assert!(
        neverust_lab::on_path(name).is_some(),
        "`{name}` is not installed: run scripts/setup.sh (it installs scripts/apt-packages.txt and scripts/requirements.txt)"
    );
    Command::new(name)
}

/// A `neverust bench` run that succeeded: what it printed and its `results.json`.
pub struct Bench {
    pub stdout: String,
    pub stderr: String,
    pub results: serde_json::Value,
    /// Where `results.json` and `report.html` are.
    pub report: PathBuf,
}

/// Runs `neverust bench ARGS` on a cluster it starts under `dir` (its nodes logging
/// warnings only), its report in `dir/report`; fails the test when the run fails.
pub fn bench(dir: &Path, args: &[&str]) -> Bench {
    let report = dir.join("report");
    let out = Command::new(binary())
        .arg("bench")
        .args(args)
        .args(["--node-log-level", "warn", "--dir"])
        .arg(dir.join("cluster"))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    let text = std::fs::read_to_string(report.join("results.json")).unwrap();
    Bench {
        stdout,
        stderr,
        results: serde_json::from_str(&text).unwrap(),
        report,
    }
}

/// Runs `neverust ARGS`, which must refuse them as a usage error (exit 2); its stderr.
pub fn usage_error(args: &[&str]) -> String {
    let out = Command::new(binary()).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    err
}
