//! A real Archivist node for the interop tests, from the binary `ARCHIVIST_BIN` names.
//!
//! CI cannot build Archivist (and its code and build scripts stay out of this repository),
//! so these tests run only where someone points `ARCHIVIST_BIN` at a binary they built; they
//! say plainly that they were skipped otherwise.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// The Archivist binary, or None after saying the test is skipped.
pub fn binary(test: &str) -> Option<PathBuf> {
    match std::env::var_os("ARCHIVIST_BIN") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "ARCHIVIST_BIN={} is not a file", p.display());
            Some(p)
        }
        _ => {
            eprintln!("SKIPPED {test}: ARCHIVIST_BIN is not set (point it at an Archivist node binary to run the interop checks)");
            None
        }
    }
}

pub struct ArchivistNode {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub peer_id: String,
    pub listen_port: u16,
}

impl ArchivistNode {
    /// Starts a node on loopback with its data in `dir` and waits until its API answers.
    pub async fn start(binary: &Path, dir: &Path) -> ArchivistNode {
        ArchivistNode::start_with(binary, dir, &[]).await
    }

    /// Like `start`, with more flags (`--bootstrap-node=spr:…`, say).
    pub async fn start_with(binary: &Path, dir: &Path, extra: &[String]) -> ArchivistNode {
        use std::os::unix::fs::PermissionsExt;
        let data = dir.join("archivist-data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        let (api, listen, disc) = (free_port(), free_port(), free_port());
        let log = std::fs::File::create(dir.join("archivist.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-addrs=/ip4/127.0.0.1/tcp/{listen}"))
            .arg("--nat=extip:127.0.0.1")
            .arg(format!("--disc-port={disc}"))
            .arg("--api-bindaddr=127.0.0.1")
            .arg(format!("--api-port={api}"))
            .arg("--log-level=INFO")
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning the Archivist binary");
        let base = format!("http://127.0.0.1:{api}");
        let mut node = ArchivistNode {
            child,
            base,
            peer_id: String::new(),
            listen_port: listen,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http
                .get(format!("{}/api/archivist/v1/peerid", node.base))
                .header("Accept", "text/plain")
                .send()
                .await
            {
                if r.status().is_success() {
                    node.peer_id = r.text().await.unwrap().trim().to_string();
                    return node;
                }
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!(
                    "the Archivist node exited ({status}); see {}",
                    dir.join("archivist.log").display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the Archivist node did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn api(&self) -> String {
        format!("{}/api/archivist/v1", self.base)
    }

    /// `/ip4/127.0.0.1/tcp/PORT`: where a peer dials this node.
    pub fn dial_addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.listen_port)
    }
}

impl Drop for ArchivistNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
