//! What this machine can do at best, measured in the same run as the scenarios: figures are
//! reported as ratios to these, because shared machines drift from minute to minute.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::BenchError;
use crate::results::Baseline;

pub async fn measure() -> Result<Baseline, BenchError> {
    let sha256_mib_s = tokio::task::spawn_blocking(sha256_speed)
        .await
        .map_err(|source| BenchError::Task {
            what: "measuring the sha256 baseline",
            source,
        })?;
    Ok(Baseline {
        sha256_mib_s,
        loopback_tcp_mib_s: loopback_tcp_speed().await?,
    })
}

/// sha256 over 64 KiB blocks (the node's per-block hash), for about half a second.
fn sha256_speed() -> f64 {
    let block = vec![0x5au8; 64 * 1024];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(500) {
        std::hint::black_box(Sha256::digest(&block));
        n += 1;
    }
    super::stats::mib_s(n * block.len() as u64, start.elapsed().as_secs_f64())
}

/// One TCP stream over 127.0.0.1 with 64 KiB writes, 512 MiB or one second.
async fn loopback_tcp_speed() -> Result<f64, BenchError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(BenchError::Loopback)?;
    let addr = listener.local_addr().map_err(BenchError::Loopback)?;
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Ok::<u64, std::io::Error>(total);
            }
            total += n as u64;
        }
    });
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(BenchError::Loopback)?;
    let block = vec![0xa5u8; 64 * 1024];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < 512 << 20 && start.elapsed() < Duration::from_secs(1) {
        s.write_all(&block).await.map_err(BenchError::Loopback)?;
        sent += block.len() as u64;
    }
    s.shutdown().await.map_err(BenchError::Loopback)?;
    let received = reader
        .await
        .map_err(|source| BenchError::Task {
            what: "reading the loopback TCP baseline",
            source,
        })?
        .map_err(BenchError::Loopback)?;
    Ok(super::stats::mib_s(received, start.elapsed().as_secs_f64()))
}
