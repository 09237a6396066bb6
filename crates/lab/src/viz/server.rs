//! The visualizer's HTTP server: the page, its assets, the latest snapshot as JSON, and a
//! WebSocket that pushes every new snapshot to every browser.
//!
//! One task polls the nodes and publishes each snapshot into a `watch` channel; each
//! browser has its own task that sends whatever is latest when its socket can take it.
//! Publishing never waits on a browser, so a slow one skips frames instead of slowing the
//! poll or the others, and one that cannot take a frame for [`SEND_LIMIT`] is dropped.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::assets;
use super::poll::{Poller, Source};
use super::snapshot::Snapshot;

/// How often the nodes are polled and browsers updated.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// A browser that has not taken one frame in this long is disconnected.
const SEND_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum VizError {
    #[error("cannot serve the visualizer on {addr}: port {port} is already in use (another visualizer, or another program, holds it)", port = addr.port())]
    PortInUse { addr: SocketAddr },
    #[error("cannot serve the visualizer on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The latest snapshot, serialized once and shared by every browser (cheap clones).
#[derive(Clone, Default)]
pub struct Frame {
    pub seq: u64,
    pub json: Utf8Bytes,
}

/// Binds the visualizer's port; done apart from serving so that a busy port is reported
/// before anything else starts.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, VizError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            VizError::PortInUse { addr }
        } else {
            VizError::Bind { addr, source }
        }
    })
}

/// A running visualizer: its poller and server tasks end when this is dropped.
pub struct Viz {
    pub addr: SocketAddr,
    frames: watch::Receiver<Frame>,
    tasks: Vec<JoinHandle<()>>,
}

impl Viz {
    /// Starts polling `source` every `interval` and serving on `listener`.
    pub fn start(listener: TcpListener, source: Source, interval: Duration) -> Viz {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let (tx, frames) = watch::channel(Frame::default());
        let poller = tokio::spawn(poll_forever(Poller::new(source, interval), interval, tx));
        let server = tokio::spawn({
            let frames = frames.clone();
            async move { serve(listener, frames).await }
        });
        Viz {
            addr,
            frames,
            tasks: vec![poller, server],
        }
    }

    /// `http://ADDR/`, with `localhost` for an unspecified address.
    pub fn url(&self) -> String {
        url(self.addr)
    }

    /// Waits for the next snapshot after `seq` (0: the first one).
    pub async fn snapshot_after(&mut self, seq: u64) -> Option<Snapshot> {
        let frame = self.frames.wait_for(|f| f.seq > seq).await.ok()?.clone();
        serde_json::from_str(&frame.json).ok()
    }
}

impl Drop for Viz {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub fn url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}/", addr.port())
    } else {
        format!("http://{addr}/")
    }
}

async fn poll_forever(mut poller: Poller, interval: Duration, tx: watch::Sender<Frame>) {
    let mut tick = tokio::time::interval(interval);
    // A poll slower than the interval (a 200-node cluster under load) delays the next
    // one rather than firing a burst to catch up.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snapshot = poller.poll().await;
        let json = serde_json::to_string(&snapshot).expect("a snapshot serializes");
        tx.send_replace(Frame {
            seq: snapshot.seq,
            json: json.into(),
        });
    }
}

pub fn router(frames: watch::Receiver<Frame>) -> Router {
    Router::new()
        .route("/", get(|| async { asset("index.html") }))
        .route(
            "/{file}",
            get(|axum::extract::Path(f): axum::extract::Path<String>| async move { asset(&f) }),
        )
        .route("/snapshot.json", get(snapshot_json))
        .route("/ws", get(ws))
        .route("/health", get(|| async { "ok" }))
        .with_state(frames)
}

async fn serve(listener: TcpListener, frames: watch::Receiver<Frame>) {
    // axum's server retries failed accepts by itself and only returns when the task ends.
    let _ = axum::serve(listener, router(frames)).await;
}

/// What a binary built without the page answers for it.
pub const NO_PAGE: &str = "this neverust binary was built without the visualizer's page \
     (cargo feature `viz-page`, which needs npm): /snapshot.json and /ws still serve the \
     cluster. Run a binary built with default features, or the image's `visualizer` target.";

fn asset(name: &str) -> Response {
    if !assets::EMBEDDED {
        return (StatusCode::SERVICE_UNAVAILABLE, NO_PAGE).into_response();
    }
    match assets::get(name) {
        Some((body, mime)) => (
            [
                (header::CONTENT_TYPE, mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no such file: {name}")).into_response(),
    }
}

async fn snapshot_json(State(frames): State<watch::Receiver<Frame>>) -> Response {
    let frame = frames.borrow().clone();
    if frame.seq == 0 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no snapshot yet: the first poll is under way",
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        // Shares the frame's buffer: a 200-node snapshot is megabytes.
        bytes::Bytes::from(frame.json),
    )
        .into_response()
}

async fn ws(upgrade: WebSocketUpgrade, State(frames): State<watch::Receiver<Frame>>) -> Response {
    upgrade.on_upgrade(move |socket| push(socket, frames))
}

/// Sends this browser the latest frame whenever there is a newer one than it has.
async fn push(mut socket: WebSocket, mut frames: watch::Receiver<Frame>) {
    let mut sent = 0;
    loop {
        let frame = frames.borrow_and_update().clone();
        if frame.seq > sent {
            match tokio::time::timeout(SEND_LIMIT, socket.send(Message::Text(frame.json))).await {
                Ok(Ok(())) => sent = frame.seq,
                // Gone, or too slow to take one frame: its task ends, nobody else waits.
                _ => return,
            }
        }
        tokio::select! {
            changed = frames.changed() => if changed.is_err() { return },
            // The page sends nothing; reading notices a closed socket without waiting for
            // the next frame.
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};

    /// A browser that never reads does not hold up the others: the publisher never
    /// waits, and a reading browser gets the latest frame each time.
    #[tokio::test]
    async fn a_slow_browser_does_not_slow_the_others() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, frames) = watch::channel(Frame::default());
        tokio::spawn(serve(listener, frames));
        let url = format!("ws://{addr}/ws");
        // Connected and never read from: its socket buffers fill with 1 MiB frames.
        let (_slow, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let (mut fast, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let big = "x".repeat(1 << 20);
        for seq in 1..=40u64 {
            tx.send_replace(Frame {
                seq,
                json: format!("{{\"seq\":{seq},\"pad\":\"{big}\"}}").into(),
            });
            // The fast browser sees this very frame (or a later one) promptly.
            let got = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    let msg = fast.next().await.unwrap().unwrap();
                    let text = msg.into_text().unwrap();
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if v["seq"].as_u64().unwrap() >= seq {
                        return v["seq"].as_u64().unwrap();
                    }
                }
            })
            .await
            .expect("the reading browser was held up");
            assert_eq!(got, seq);
        }
        fast.send(tokio_tungstenite::tungstenite::Message::Close(None))
            .await
            .unwrap();
    }

    /// A binary without the page says so, rather than a 404 that looks like a wrong URL.
    #[cfg(not(feature = "viz-page"))]
    #[tokio::test]
    async fn without_the_page_the_visualizer_says_how_it_was_built() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_tx, frames) = watch::channel(Frame::default());
        tokio::spawn(serve(listener, frames));
        for path in ["/", "/app.js"] {
            let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
            assert!(r.text().await.unwrap().contains("viz-page"));
        }
    }

    #[tokio::test]
    async fn a_busy_port_is_named() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let e = bind(addr).await.unwrap_err();
        assert!(matches!(e, VizError::PortInUse { .. }));
        assert!(
            e.to_string().contains(&format!("port {}", addr.port())),
            "{e}"
        );
    }
}
