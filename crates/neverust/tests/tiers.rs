//! A node on a tiered store, end to end: the real binary with `--tier`, its tiers shown in
//! `/space`, `/debug/info` and `/metrics`, blocks moving between tiers, and nothing lost to
//! a `kill -9`.

mod common;

use std::time::Duration;

use common::{data, eventually, metric_sum, usage_error, TestNode};
use neverust_node::metrics::names;
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

fn tier_flags(dir: &std::path::Path) -> Vec<String> {
    let fast = dir.join("fast");
    let slow = dir.join("slow");
    vec![
        "--tier".into(),
        "memory:1MiB".into(),
        "--tier".into(),
        format!("ssd:{}:2MiB", fast.display()),
        "--tier".into(),
        format!("hdd:{}:1GiB:latency=1ms,bw=200MB/s", slow.display()),
    ]
}

#[tokio::test]
async fn a_tiered_node_serves_moves_and_keeps_every_block() {
    let dir = tempfile::tempdir().unwrap();
    let flags = tier_flags(dir.path());
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let node = TestNode::start(&dir.path().join("data"), &args);
    let payload = data(6 * MIB, 5);
    let cid = node.upload_ok(payload.clone()).await;
    for _ in 0..3 {
        let (status, body) = node.download(&cid).await;
        assert_eq!(status, 200);
        assert_eq!(Sha256::digest(&body), Sha256::digest(&payload));
    }

    let space = node.space().await;
    let tiers = space.tiers.as_ref().expect("/space lists the tiers");
    let kinds: Vec<&str> = tiers.iter().map(|t| t.tier.as_str()).collect();
    assert_eq!(kinds, ["memory", "ssd", "hdd"]);
    assert!(tiers[2].emulated);
    assert!(!tiers[1].emulated);
    // Every block (6 MiB of data and the manifest) has exactly one persistent copy.
    let persistent: u64 = tiers[1..].iter().map(|t| t.blocks).sum();
    assert_eq!(persistent, space.total_blocks);
    // The fast tier holds no more than its size; the rest went down.
    assert!(tiers[1].bytes <= 2 * MIB as u64, "{space:?}");
    assert!(tiers[2].blocks > 0, "{space:?}");
    let info = node.debug_info().await;
    assert_eq!(info.store.as_deref(), Some("tiered"));
    assert_eq!(info.tiers.map(|t| t.len()), Some(3));

    let text = node.metrics_text().await;
    assert_eq!(
        metric_sum(&text, names::TIER_BLOCKS) as u64,
        tiers.iter().map(|t| t.blocks).sum::<u64>()
    );
    assert!(metric_sum(&text, names::TIER_HITS_TOTAL) > 0.0, "{text}");
    assert!(
        text.contains("neverust_tier_read_latency_seconds_bucket{"),
        "{text}"
    );
    let slowest: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("neverust_tier_read_latency_seconds_bucket{") && l.contains("le=\"+Inf\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        slowest,
        metric_sum(&text, "neverust_tier_read_latency_seconds_count"),
        "the +Inf bucket counts every read once: {text}"
    );
    assert!(text.contains("emulated=\"true\""));

    // Reads of a slow tier's blocks bring some up within a few placement rounds.
    eventually(
        "a block to be promoted by repeated reads",
        Duration::from_secs(10),
        || async {
            let (_, body) = node.download(&cid).await;
            assert_eq!(body.len(), payload.len());
            let promoted = metric_sum(&node.metrics_text().await, names::TIER_PROMOTIONS_TOTAL);
            (promoted > 0.0).then_some(())
        },
    )
    .await;

    node.kill9();
    let node = TestNode::start(&dir.path().join("data"), &args);
    let (status, body) = node.download(&cid).await;
    assert_eq!(status, 200);
    assert_eq!(Sha256::digest(&body), Sha256::digest(&payload));
}

#[test]
fn bad_tier_specs_are_usage_errors_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    for (bad, says) in [
        (
            vec!["--tier".to_string(), "tape:/x:1GiB".into()],
            "unknown kind",
        ),
        (vec!["--tier".into(), "ssd:1GiB".into()], "--tier"),
        (vec!["--tier".into(), format!("ssd:{d}/a:0")], "--tier"),
        (
            vec![
                "--tier".into(),
                format!("ssd:{d}/a:1GiB"),
                "--tier".into(),
                format!("hdd:{d}/a:1GiB"),
            ],
            "--tier",
        ),
        (vec!["--tier".into(), "memory:1GiB".into()], "--tier"),
    ] {
        let mut args = vec![
            "start".to_string(),
            "--data-dir".into(),
            format!("{d}/data"),
        ];
        args.extend(bad.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = usage_error(&args);
        assert!(err.contains(says), "{bad:?}: {err}");
    }
}

/// `cluster`/`bench --node-tier`: every node of a cluster runs on tiers of its own.
#[test]
fn a_cluster_of_tiered_nodes_benches_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let ssd = format!("ssd:{}:4MiB", tmp.path().join("ssd").display());
    let hdd = format!(
        "hdd:{}:1GiB:latency=200us",
        tmp.path().join("hdd").display()
    );
    let r = common::bench(
        tmp.path(),
        &[
            "upload",
            "--nodes",
            "3",
            "--profile",
            "smoke",
            "--node-tier",
            "memory:2MiB",
            "--node-tier",
            &ssd,
            "--node-tier",
            &hdd,
            "--base-port",
            "23600",
            "--bootstrap-api-port",
            "23699",
        ],
    )
    .results;
    assert_eq!(r["checks"]["errors"], 0, "{}", r["checks"]);
    for i in 0..3 {
        for tier in ["ssd", "hdd"] {
            let dir = tmp.path().join(tier).join(format!("node-{i}"));
            assert!(
                dir.is_dir(),
                "node {i} has no {tier} tier at {}",
                dir.display()
            );
        }
    }
}

#[test]
fn bad_node_tiers_are_usage_errors_naming_the_flag() {
    let err = usage_error(&["cluster", "--node-tier", "tape:/x:1GiB"]);
    assert!(err.contains("--node-tier"), "{err}");
    let err = usage_error(&["cluster", "--node-tier", "memory:1GiB"]);
    assert!(err.contains("--node-tier"), "{err}");
}
