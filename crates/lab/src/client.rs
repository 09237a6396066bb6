//! The lab talks to nodes only as a user would: their REST API and `/metrics`.

mod market;

pub use market::HeldSlot;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use neverust_node::api::answers::{self, AnswerError, DebugInfo, PeerIdAnswer};
use sha2::{Digest, Sha256};

use crate::topology::cluster_file::{Implementation, NodeEntry};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: took longer than {limit:?}")]
    Timeout { url: String, limit: Duration },
    /// The node answered, but not in the shape `api::answers` defines.
    #[error("{url}: unexpected answer: {source}")]
    Answer {
        url: String,
        #[source]
        source: AnswerError,
    },
}

#[derive(Clone, Debug)]
pub struct NodeClient {
    /// `http://HOST:PORT`
    pub base: String,
    /// Where the node's Prometheus metrics are.
    metrics_url: String,
    /// Archivist nodes have no `/health`: their health is an answer from the API.
    has_health_route: bool,
    http: reqwest::Client,
}

/// A download read to the end: its digest, size and timings.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub sha256: [u8; 32],
    pub bytes: u64,
    pub ttfb: Duration,
    pub total: Duration,
}

impl NodeClient {
    /// A Neverust node's API at `base`.
    pub fn new(base: impl Into<String>) -> NodeClient {
        let base = base.into();
        NodeClient {
            metrics_url: format!("{base}/metrics"),
            base,
            has_health_route: true,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(16)
                .connect_timeout(Duration::from_secs(3))
                .build()
                .expect("building an HTTP client"),
        }
    }

    /// The same node, its metrics read from `url`.
    pub fn metrics_at(self, url: String) -> NodeClient {
        NodeClient {
            metrics_url: url,
            ..self
        }
    }

    /// The node of a cluster entry, whichever software it runs.
    pub fn of(entry: &NodeEntry) -> NodeClient {
        NodeClient {
            metrics_url: entry.metrics_url(),
            has_health_route: entry.implementation == Implementation::Neverust,
            ..NodeClient::new(entry.api_url.clone())
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/archivist/v1{}", self.base, path)
    }

    async fn checked(url: &str, r: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        Err(ClientError::Status {
            url: url.to_string(),
            status,
            body: body.chars().take(300).collect(),
        })
    }

    async fn get_text(&self, url: String, limit: Duration) -> Result<String, ClientError> {
        let http = |source| ClientError::Http {
            url: url.clone(),
            source,
        };
        let r = self
            .http
            .get(&url)
            .timeout(limit)
            .send()
            .await
            .map_err(http)?;
        Self::checked(&url, r).await?.text().await.map_err(http)
    }

    /// POSTs `body` as JSON; the answer's text.
    async fn post_json<T: serde::Serialize>(
        &self,
        url: String,
        body: &T,
        limit: Duration,
    ) -> Result<String, ClientError> {
        let r = self
            .http
            .post(&url)
            .timeout(limit)
            .json(body)
            .send()
            .await
            .map_err(|e| timeout_or(e, &url, limit))?;
        Self::checked(&url, r)
            .await?
            .text()
            .await
            .map_err(|source| ClientError::Http { url, source })
    }

    pub async fn healthy(&self) -> bool {
        let url = if self.has_health_route {
            format!("{}/health", self.base)
        } else {
            self.url("/peerid")
        };
        self.get_text(url, Duration::from_secs(2)).await.is_ok()
    }

    pub async fn peer_id(&self) -> Result<String, ClientError> {
        let url = self.url("/peerid");
        let text = self.get_text(url.clone(), Duration::from_secs(5)).await?;
        // Archivist answers `{"id": "..."}`; older nodes answered the bare id. A JSON answer
        // without its `id` is an error, not an id.
        if !text.trim_start().starts_with('{') {
            return Ok(text.trim().to_string());
        }
        let answer: PeerIdAnswer =
            answers::decode(&text).map_err(|source| ClientError::Answer { url, source })?;
        Ok(answer.id)
    }

    pub async fn metrics(&self) -> Result<String, ClientError> {
        self.get_text(self.metrics_url.clone(), Duration::from_secs(5))
            .await
    }

    /// `/debug/info`; Neverust's own fields are `None` on an Archivist node.
    pub async fn debug_info(&self) -> Result<DebugInfo, ClientError> {
        let url = self.url("/debug/info");
        let text = self.get_text(url.clone(), Duration::from_secs(5)).await?;
        answers::decode(&text).map_err(|source| ClientError::Answer { url, source })
    }

    /// Asks the node to connect to a peer at `addr` (Archivist's `/connect`).
    pub async fn connect(&self, peer_id: &str, addr: &str) -> Result<(), ClientError> {
        let url = self.url(&format!("/connect/{peer_id}?addrs={addr}"));
        self.get_text(url, Duration::from_secs(20)).await.map(drop)
    }

    /// The node's signed peer record (`spr:...`).
    pub async fn spr(&self) -> Result<String, ClientError> {
        let text = self
            .get_text(self.url("/spr"), Duration::from_secs(5))
            .await?;
        Ok(neverust_node::identity::spr_from_body(&text))
    }

    /// Uploads `data`; the manifest CID once the node acknowledged it (stored durably).
    pub async fn upload(&self, data: Bytes, limit: Duration) -> Result<String, ClientError> {
        let url = self.url("/data");
        let http = |source| ClientError::Http {
            url: url.clone(),
            source,
        };
        let r = self
            .http
            .post(&url)
            .timeout(limit)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Disposition", "attachment; filename=\"bench.bin\"")
            .body(data)
            .send()
            .await
            .map_err(|e| timeout_or(e, &url, limit))?;
        let cid = Self::checked(&url, r).await?.text().await.map_err(http)?;
        Ok(cid.trim().to_string())
    }

    /// Reads a dataset the node holds.
    pub async fn get_local(&self, cid: &str, limit: Duration) -> Result<Fetched, ClientError> {
        self.fetch(self.url(&format!("/data/{cid}")), limit).await
    }

    /// Reads a dataset through the node, which fetches from its peers what it lacks.
    pub async fn get_network(&self, cid: &str, limit: Duration) -> Result<Fetched, ClientError> {
        self.fetch(self.url(&format!("/data/{cid}/network/stream")), limit)
            .await
    }

    async fn fetch(&self, url: String, limit: Duration) -> Result<Fetched, ClientError> {
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + limit;
        let work = async {
            let r = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|source| ClientError::Http {
                    url: url.clone(),
                    source,
                })?;
            let r = Self::checked(&url, r).await?;
            let mut body = r.bytes_stream();
            let mut hasher = Sha256::new();
            let mut bytes = 0u64;
            let mut ttfb = None;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|source| ClientError::Http {
                    url: url.clone(),
                    source,
                })?;
                if ttfb.is_none() && !chunk.is_empty() {
                    ttfb = Some(start.elapsed());
                }
                bytes += chunk.len() as u64;
                hasher.update(&chunk);
            }
            Ok(Fetched {
                sha256: hasher.finalize().into(),
                bytes,
                ttfb: ttfb.unwrap_or_else(|| start.elapsed()),
                total: start.elapsed(),
            })
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout { url, limit }),
        }
    }
}

fn timeout_or(e: reqwest::Error, url: &str, limit: Duration) -> ClientError {
    if e.is_timeout() {
        ClientError::Timeout {
            url: url.to_string(),
            limit,
        }
    } else {
        ClientError::Http {
            url: url.to_string(),
            source: e,
        }
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}
