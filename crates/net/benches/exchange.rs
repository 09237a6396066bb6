//! Block exchange speed on loopback, every figure beside a baseline measured in the same run:
//! raw libp2p stream throughput (TCP + Noise + yamux, no storage, no protocol), then a single
//! 64 KiB block fetch between two connected nodes, a 256 MiB dataset download from one
//! provider and from four. Run: `cargo bench -p neverust-net --bench exchange`
//! (`EXCHANGE_MIB=64` for a shorter run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{bare_swarm, memory_store, Dataset};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::StreamProtocol;
use neverust_content::{block_cid, BLOCK_SIZE};
use neverust_net::blockexc::{BlockAddress, Message, WantEntry, Wantlist};
use neverust_net::download::DownloadProgress;
use neverust_net::{NetConfig, Network, WantEvent};
use neverust_store::MemoryStore;

#[path = "../tests/common/mod.rs"]
mod common;

const MIB: usize = 1 << 20;

/// MiB/s of one stream pushing `mib` MiB from one swarm to another.
async fn raw_baseline(mib: usize) -> f64 {
    let proto = StreamProtocol::new("/bench/raw/1.0.0");
    let mut server = bare_swarm();
    server
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
            break address;
        }
    };
    let server_id = *server.local_peer_id();
    let mut incoming = server
        .behaviour()
        .new_control()
        .accept(proto.clone())
        .unwrap();
    tokio::spawn(async move {
        loop {
            server.select_next_some().await;
        }
    });
    let mut client = bare_swarm();
    let mut control = client.behaviour().new_control();
    client.dial(addr).unwrap();
    while !matches!(
        client.select_next_some().await,
        SwarmEvent::ConnectionEstablished { .. }
    ) {}
    tokio::spawn(async move {
        loop {
            client.select_next_some().await;
        }
    });
    let reader = tokio::spawn(async move {
        let (_, mut s) = incoming.next().await.unwrap();
        let mut buf = vec![0u8; MIB];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
    });
    let mut s = control.open_stream(server_id, proto).await.unwrap();
    let chunk = vec![7u8; MIB];
    let started = Instant::now();
    for _ in 0..mib {
        s.write_all(&chunk).await.unwrap();
    }
    s.close().await.unwrap();
    let total = reader.await.unwrap();
    assert_eq!(total, mib * MIB);
    mib as f64 / started.elapsed().as_secs_f64()
}

async fn node(store: Arc<MemoryStore>) -> Network {
    common::node_with(NetConfig::loopback("neverust-bench"), store).await
}

async fn provider(d: &Dataset) -> Network {
    let store = memory_store();
    d.store_in(store.as_ref());
    let net = node(store).await;
    net.provide(&d.manifest.cid()).await;
    net
}

/// Seconds for `downloader` to fetch the dataset from whoever provides it.
async fn download(downloader: &Network, d: &Dataset) -> f64 {
    let started = Instant::now();
    downloader
        .download_dataset(
            d.manifest.cid(),
            d.manifest.clone(),
            d.manifest_bytes.clone(),
            None,
            Arc::new(DownloadProgress::default()),
        )
        .await
        .unwrap();
    started.elapsed().as_secs_f64()
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; there is nothing to list.
    }
    let mib: usize = std::env::var("EXCHANGE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    println!("baseline: raw libp2p stream (TCP + Noise + yamux), {mib} MiB ...");
    let baseline = raw_baseline(mib).await;
    println!("  {baseline:.0} MiB/s");

    let d = Dataset::new(mib * MIB / BLOCK_SIZE, 7);
    let p = provider(&d).await;
    let dl = node(memory_store()).await;
    dl.dial(Some(p.local_peer_id()), p.listen_addrs())
        .await
        .unwrap();

    // Single-block latency between connected peers: want-block → verified delivery.
    let single = Bytes::from(vec![3u8; BLOCK_SIZE]);
    let single_cid = block_cid(&single);
    p.store().put_block(&single_cid, single).unwrap();
    let (_guard, mut events) = dl.engine().want(single_cid);
    let mut lat = Vec::new();
    for _ in 0..300 {
        let msg = Message {
            wantlist: Wantlist {
                entries: vec![WantEntry::block(BlockAddress::Cid(single_cid))],
                full: false,
            },
            ..Message::default()
        };
        let t = Instant::now();
        dl.engine().send(p.local_peer_id(), msg).await;
        loop {
            if let Some(WantEvent::Block { .. }) = events.recv().await {
                break;
            }
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    let (p50, p99) = (quantile(&lat, 0.5), quantile(&lat, 0.99));
    println!("block fetch 64 KiB: p50 {p50:?}  p99 {p99:?}  (targets: 1 ms, 5 ms)");

    let one = download(&dl, &d).await;
    let one_rate = mib as f64 / one;
    println!(
        "download {mib} MiB from 1 provider: {one_rate:.0} MiB/s = {:.0}% of baseline (target 60%)",
        100.0 * one_rate / baseline
    );

    let mut providers = vec![p];
    for _ in 0..3 {
        providers.push(provider(&d).await);
    }
    let dl4 = node(memory_store()).await;
    for p in &providers {
        dl4.dial(Some(p.local_peer_id()), p.listen_addrs())
            .await
            .unwrap();
    }
    let four = download(&dl4, &d).await;
    let four_rate = mib as f64 / four;
    println!(
        "download {mib} MiB from 4 providers: {four_rate:.0} MiB/s = {:.0}% of baseline",
        100.0 * four_rate / baseline
    );
}
