//! End-to-end checks of the report: a fully filled run, an empty one, and degenerate data.

use std::path::PathBuf;

use neverust_lab::bench::stats::quantiles;
use neverust_lab::report::{render_html, write_report};
use neverust_lab::results::*;

const PLOT_IDS: [&str; 21] = [
    "plot-upload-cdf",
    "plot-upload-throughput",
    "plot-exchange-cdf",
    "plot-block-histogram",
    "plot-throughput-timeline",
    "plot-interop-transfers",
    "plot-cache-hit-ratio",
    "plot-cache-latency-cdf",
    "plot-cache-moved",
    "plot-reconcile-ratios",
    "plot-stress-histogram",
    "plot-scale-latency",
    "plot-scale-blocks",
    "plot-scale-rss",
    "plot-scale-cpu",
    "plot-chaos-timeline",
    "plot-partition-timeline",
    "plot-marketplace",
    "plot-resources-rss",
    "plot-resources-cpu",
    "plot-resources-bars",
];

const MIB: u64 = 1024 * 1024;

/// Deterministic noise, so the synthetic run looks measured but never changes.
struct Noise(u64);

impl Noise {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A latency-like sample: mostly near `base`, with a long right tail.
    fn latencies(&mut self, n: usize, base: f64) -> Vec<f64> {
        (0..n)
            .map(|_| base * (1.0 + 0.3 * self.unit()) / (1.0 - 0.9 * self.unit()))
            .collect()
    }
}

fn resources_summary(rss_mib: f64, cpu: f64) -> ResourceSummary {
    ResourceSummary {
        rss_mean_bytes: rss_mib * MIB as f64,
        rss_max_bytes: (rss_mib * 1.2 * MIB as f64) as u64,
        cpu_mean_percent: cpu,
        cpu_max_percent: cpu * 2.5,
    }
}

fn upload(noise: &mut Noise) -> UploadResult {
    let sizes = [(64 * 1024, 2.0), (MIB, 9.0), (16 * MIB, 120.0)]
        .into_iter()
        .map(|(size, base)| {
            let lat = noise.latencies(40, base);
            let throughput = size as f64 / MIB as f64 / (quantiles(&lat).mean / 1000.0);
            UploadSize {
                size_bytes: size,
                count: lat.len(),
                latency: quantiles(&lat),
                latencies_ms: lat,
                throughput_mib_s: throughput,
                ratio_to_sha256: throughput / 480.0,
                verified: 40,
            }
        })
        .collect();
    UploadResult {
        sizes,
        errors: vec!["upload 17: HTTP 503 <busy> & retry".into()],
    }
}

fn exchange(noise: &mut Noise) -> ExchangeResult {
    let ttfb = noise.latencies(50, 4.0);
    let file = noise.latencies(50, 35.0);
    let bounds = [0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, f64::MAX];
    let mut cumulative = 0;
    let buckets = bounds
        .iter()
        .enumerate()
        .map(|(i, b)| {
            cumulative += [0, 40, 310, 820, 400, 90, 12, 3, 1][i];
            (*b, cumulative)
        })
        .collect();
    ExchangeResult {
        file_bytes: 4 * MIB,
        pairs: 50,
        ttfb: quantiles(&ttfb),
        ttfb_ms: ttfb,
        file: quantiles(&file),
        file_ms: file,
        block_latency: Histogram {
            buckets,
            count: cumulative,
            p50_ms: 4.1,
            p99_ms: 31.0,
        },
        aggregate: Aggregate {
            concurrent: 8,
            downloads: 64,
            blocks: 4096,
            seconds: 3.2,
            blocks_per_s: 1280.0,
            mib_s: 80.0,
            ratio_to_loopback_tcp: 80.0 / 2900.0,
            node_cpu_us_per_block: Some(731.4),
            download_ms: vec![180.0, 220.0, 900.0],
        },
        verified: 50,
        errors: vec![],
    }
}

fn throughput() -> ThroughputResult {
    let mut timeline = Vec::new();
    for i in 0..30 {
        let t = i as f64 * 0.5;
        timeline.push(RatePoint {
            phase: "single".into(),
            t_s: t,
            mib_s: 90.0 + (t * 1.3).sin() * 15.0,
        });
        timeline.push(RatePoint {
            phase: "swarm".into(),
            t_s: 16.0 + t,
            mib_s: 210.0 + (t * 0.9).cos() * 30.0,
        });
    }
    ThroughputResult {
        dataset_bytes: 256 * MIB,
        single: Transfer {
            seconds: 2.8,
            mib_s: 91.4,
            ratio_to_loopback_tcp: 0.031,
        },
        swarm: Swarm {
            downloaders: 4,
            seconds: 4.9,
            aggregate_mib_s: 209.0,
            ratio_to_loopback_tcp: 0.072,
            per_node_seconds: vec![4.1, 4.5, 4.8, 4.9],
        },
        timeline,
    }
}

fn stress(noise: &mut Noise) -> StressResult {
    let up = noise.latencies(200, 15.0);
    let down = noise.latencies(200, 25.0);
    StressResult {
        operations: 200,
        concurrency: 16,
        file_bytes: 256 * 1024,
        uploads_ok: 199,
        downloads_ok: 198,
        verified: 198,
        error_count: 3,
        errors: vec![
            "download <script>alert(1)</script> timed out".into(),
            "upload: connection reset by peer".into(),
        ],
        upload: quantiles(&up),
        upload_ms: up,
        download: quantiles(&down),
        download_ms: down,
        seconds: 12.5,
    }
}

fn scale() -> ScaleResult {
    let points = [3usize, 10, 30, 100]
        .iter()
        .map(|&n| {
            let f = (n as f64).ln();
            ScalePoint {
                nodes: n,
                ready_seconds: 1.0 + f,
                download: Quantiles {
                    count: 20,
                    p50: 20.0 + 4.0 * f,
                    p99: 60.0 + 15.0 * f,
                    ..Quantiles::default()
                },
                blocks_per_s: 900.0 + 120.0 * f,
                mib_s: 56.0 + 7.0 * f,
                idle: resources_summary(38.0 + f, 0.8),
                loaded: resources_summary(52.0 + 2.0 * f, 14.0 + f),
                errors: usize::from(n == 100),
            }
        })
        .collect();
    ScaleResult { points }
}

fn ops(noise: &mut Noise, until: f64, fail_between: (f64, f64)) -> Vec<OpSample> {
    (0..80)
        .map(|i| {
            let t = until * i as f64 / 80.0;
            let ok = !(t > fail_between.0 && t < fail_between.1 && noise.unit() < 0.5);
            OpSample {
                t_s: t,
                kind: if i % 2 == 0 { "upload" } else { "download" }.into(),
                ok,
                ms: if ok {
                    10.0 + 40.0 * noise.unit()
                } else {
                    5000.0
                },
            }
        })
        .collect()
}

fn event(t_s: f64, kind: &str, detail: &str) -> Event {
    Event {
        t_s,
        kind: kind.into(),
        detail: detail.into(),
    }
}

fn chaos(noise: &mut Noise) -> ChaosResult {
    let partition = PartitionResult {
        group_a: 3,
        group_b: 2,
        split_seconds: 10.0,
        within_ok: 30,
        within_failed: 0,
        across_ok: 12,
        across_failed: 9,
        heal_seconds: Some(2.4),
        acknowledged: 14,
        lost: 0,
        events: vec![
            event(5.0, "cut", "a|b"),
            event(15.0, "restore", "a|b"),
            event(17.4, "healed", ""),
        ],
        ops: ops(noise, 25.0, (5.0, 17.4)),
    };
    ChaosResult {
        killed: vec![2, 4],
        acknowledged: 40,
        retrievable_network: 40,
        retrievable_origin: 38,
        lost: 1,
        failed_during_faults: 6,
        lost_details: vec!["zDv... through node 3: HTTP 404 <no providers>".into()],
        restart_seconds: vec![1.3, 1.7],
        events: vec![
            event(8.0, "kill", "node 2"),
            event(9.0, "kill", "node 4"),
            event(14.0, "restart", "node 2"),
            event(15.2, "restart", "node 4"),
        ],
        ops: ops(noise, 30.0, (8.0, 15.2)),
        partition: Some(partition),
        partition_skipped: None,
    }
}

fn node(index: usize, mode: &str, noise: &mut Noise) -> NodeResources {
    let t_s: Vec<f64> = (0..120).map(|i| i as f64 * 0.5).collect();
    let base = if mode == "marketplace" { 70.0 } else { 45.0 };
    NodeResources {
        index,
        mode: mode.into(),
        rss_bytes: t_s
            .iter()
            .map(|t| ((base + t * 0.2 + 3.0 * noise.unit()) * MIB as f64) as u64)
            .collect(),
        cpu_percent: t_s
            .iter()
            .map(|t| 5.0 + 20.0 * (t / 10.0).sin().abs() * noise.unit())
            .collect(),
        t_s,
    }
}

fn interop(noise: &mut Noise) -> InteropResult {
    let kinds = ["neverust", "archivist"];
    let sizes = [64 * 1024, MIB, 100 * MIB]
        .into_iter()
        .map(|size_bytes| InteropSize {
            size_bytes,
            uploads: kinds
                .iter()
                .enumerate()
                .map(|(i, k)| InteropUpload {
                    implementation: k.to_string(),
                    latency: quantiles(&[10.0 + noise.unit(), 12.0]),
                    throughput_mib_s: 400.0 / (i + 1) as f64,
                })
                .collect(),
            transfers: kinds
                .iter()
                .flat_map(|from| kinds.iter().map(move |to| (from, to)))
                .map(|(from, to)| {
                    let latencies_ms = vec![20.0 + noise.unit(), 25.0];
                    InteropTransfer {
                        from: from.to_string(),
                        to: to.to_string(),
                        count: 2,
                        verified: 2,
                        latency: quantiles(&latencies_ms),
                        latencies_ms,
                        throughput_mib_s: 90.0 + 10.0 * noise.unit(),
                    }
                })
                .collect(),
        })
        .collect();
    InteropResult {
        skipped: None,
        kinds: kinds
            .iter()
            .map(|k| InteropKind {
                implementation: k.to_string(),
                nodes: 4,
                idle: resources_summary(20.0, 0.2),
            })
            .collect(),
        sizes,
        errors: vec!["z123 through node 4: <test>".into()],
    }
}

fn cache(noise: &mut Noise) -> CacheResult {
    let node = |store: &str, latencies_ms: Vec<f64>| CacheNode {
        store: store.into(),
        reads: latencies_ms.len(),
        verified: latencies_ms.len(),
        latency: quantiles(&latencies_ms),
        steady: quantiles(&latencies_ms[latencies_ms.len() / 2..]),
        latencies_ms,
    };
    let t_s: Vec<f64> = (1..=10).map(|i| i as f64 * 0.6).collect();
    let tier = |name: &str, emulated: bool, share: f64, p50_ms: f64| CacheTier {
        tier: name.into(),
        emulated,
        capacity_bytes: 64 * MIB / 10,
        hits: (2000.0 * share) as u64,
        hit_ratio: share,
        promotions: 40,
        demotions: 12,
        moved_in_bytes: 40 * 65536,
        moved_out_bytes: 12 * 65536,
        read_latency: Histogram {
            buckets: vec![(p50_ms, 10), (10.0 * p50_ms, 20), (f64::MAX, 20)],
            count: 20,
            p50_ms,
            p99_ms: 9.0 * p50_ms,
        },
        hit_ratio_over_time: t_s.iter().map(|t| share * (0.5 + t / 12.0)).collect(),
        moved_bytes_over_time: (1..=10).map(|i| i * 5 * 65536).collect(),
        t_s: t_s.clone(),
    };
    CacheResult {
        skew: 1.0,
        files: 1000,
        dataset_bytes: 1000 * 65536,
        reads: 200,
        concurrency: 4,
        tier_specs: vec![
            "memory:6553600".into(),
            "ssd:/w/ssd:19660800:latency=100us,bw=1GB/s".into(),
            "hdd:/w/hdd:131072000:latency=8ms,bw=150MB/s".into(),
        ],
        tiers: vec![
            tier("memory0", false, 0.8, 0.004),
            tier("ssd1", true, 0.15, 0.2),
            tier("hdd2", true, 0.05, 8.6),
        ],
        memory_hit_ratio_steady: 0.82,
        memory_hit_ratio_ideal: 0.69,
        tiered: node("tiered", noise.latencies(200, 0.9)),
        memory: node("memory", noise.latencies(200, 0.7)),
        p50_ratio: 1.3,
        p99_ratio: 4.1,
        errors: vec!["z9 on <node>: read back 3 bytes".into()],
    }
}

fn cost(bytes: u64, round_trips: u32, wall_ms: f64) -> MethodCost {
    MethodCost {
        bytes,
        round_trips,
        messages: 0,
        wall_ms,
        cpu_ms: wall_ms * 1.5,
        by_runs: false,
    }
}

fn reconcile() -> ReconcileResult {
    let pairs = [10_000u64, 100_000]
        .iter()
        .flat_map(|&n| {
            [0.001, 0.01, 0.1].into_iter().map(move |share| {
                let d = (n as f64 * share) as u64;
                let (r, p) = (
                    cost(d * 36, 3, 1.0 + d as f64 / 100.0),
                    cost(n * 224, 1, n as f64 / 600.0),
                );
                ReconcilePair {
                    set_size: n,
                    difference_share: share,
                    difference: d,
                    correct: true,
                    bytes_ratio: p.bytes as f64 / r.bytes as f64,
                    time_ratio: p.wall_ms / r.wall_ms,
                    cpu_ratio: p.cpu_ms / r.cpu_ms,
                    reconcile: r,
                    plain: p,
                }
            })
        })
        .collect();
    ReconcileResult {
        repetitions: 3,
        pairs,
        heal: Some(ReconcileHeal {
            nodes: 8,
            dataset_blocks: 100_000,
            sessions: 16,
            correct: true,
            reconcile: cost(1_800_000, 8, 330.0),
            plain: cost(173_000_000, 1, 1_200.0),
            bytes_ratio: 96.1,
            time_ratio: 3.6,
        }),
        swarm: Some(ReconcileSwarm {
            downloaders: 6,
            dataset_bytes: 64 * MIB,
            runs: vec![
                SwarmRun {
                    method: "reconciliation".into(),
                    seconds: 2.5,
                    verified: 6,
                    wantlist_bytes: 667_044,
                    presence_bytes: 0,
                    reconcile_bytes: 5_731,
                    blocks_from_seed: 4_440,
                    blocks_from_peers: 3_491,
                    errors: vec![],
                },
                SwarmRun {
                    method: "want-have".into(),
                    seconds: 11.4,
                    verified: 5,
                    wantlist_bytes: 11_420_093,
                    presence_bytes: 10_014_510,
                    reconcile_bytes: 0,
                    blocks_from_seed: 5_056,
                    blocks_from_peers: 2_683,
                    errors: vec!["a copy <differs>".into()],
                },
            ],
        }),
        errors: vec![],
    }
}

fn marketplace() -> MarketplaceResult {
    let request =
        |client: usize, hosts: [usize; 3], lost: usize, by: usize, repair_s| MarketRequest {
            client,
            cid: format!("zDv{client}"),
            request_id: Some(format!("0x{}", format!("{client:02x}").repeat(32))),
            accepted_s: Some(0.5),
            started_s: Some(1.5 + client as f64),
            holders: SlotHolder::in_slot_order(&hosts),
            lost: Some(LostSlot {
                node: lost,
                slot_index: 0,
                repair_s,
                repaired_by: repair_s.map(|_| by),
            }),
            state: "started".into(),
            downloaded: true,
            reader: Some(0),
        };
    MarketplaceResult {
        marketplace_nodes: 7,
        hosts: 7,
        dataset_bytes: 4 * MIB,
        slots: 3,
        tolerance: 1,
        requests: vec![
            request(1, [4, 2, 3], 4, 6, Some(11.5)),
            request(2, [5, 1, 7], 5, 4, None),
        ],
        killed: vec![4, 5],
        restart_seconds: vec![0.2, 0.3],
        started: 2,
        repaired: 1,
        kept: 0,
        downloadable: 2,
        proofs: ProofCounts {
            verified: 44,
            missed: 2,
            invalid: 0,
        },
        slots_filled: 6,
        slots_repaired: 1,
        slots_rebuilt: 0,
        events: vec![event(9.0, "kill", "node 4 (kill -9)")],
        errors: vec!["slot 0 of node 2's request <not repaired>".into()],
        ..Default::default()
    }
}

/// A run with every section filled.
fn full() -> Results {
    let mut noise = Noise(42);
    let resources = (0..8)
        .map(|i| {
            let mode = match i {
                0 => "bootstrap",
                1 | 2 => "marketplace",
                _ => "altruistic",
            };
            node(i, mode, &mut noise)
        })
        .collect();
    Results {
        schema_version: SCHEMA_VERSION,
        started_at: "2025-11-25T06:35:00Z".into(),
        seconds: 187.3,
        machine: Machine {
            cores: 2,
            memory_bytes: 24 * 1024 * MIB,
            kernel: "Linux 6.1.0 <test>".into(),
        },
        settings: Settings {
            scenarios: vec![
                "upload".into(),
                "exchange".into(),
                "throughput".into(),
                "stress".into(),
                "scale".into(),
                "chaos".into(),
            ],
            nodes: 8,
            quick: true,
            seed: 7,
        },
        baseline: Baseline {
            sha256_mib_s: 480.0,
            loopback_tcp_mib_s: 2900.0,
        },
        cluster: Some(ClusterSummary {
            nodes: 8,
            marketplace_nodes: 2,
            ready_seconds: 3.4,
            idle: resources_summary(44.0, 1.1),
        }),
        upload: Some(upload(&mut noise)),
        exchange: Some(exchange(&mut noise)),
        throughput: Some(throughput()),
        stress: Some(stress(&mut noise)),
        scale: Some(scale()),
        chaos: Some(chaos(&mut noise)),
        interop: Some(interop(&mut noise)),
        cache: Some(cache(&mut noise)),
        reconcile: Some(reconcile()),
        marketplace: Some(marketplace()),
        resources,
        checks: Checks {
            uploads_acknowledged: 160,
            uploads_verified: 160,
            downloads_verified: 410,
            acknowledged_lost: 1,
            errors: 4,
        },
        visualizer: Some(VisualizerShot {
            png: None,
            nodes: 8,
            active_nodes: 7,
            edges: 21,
            note: Some("no picture: Chromium is not installed <test>".into()),
        }),
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("report-scratch-{}-{name}", std::process::id()))
}

#[test]
fn full_run_has_every_plot() {
    let html = render_html(&full());
    for id in PLOT_IDS {
        assert!(
            html.contains(&format!("<figure class=\"plot\" id=\"{id}\">")),
            "missing {id}"
        );
    }
    assert_eq!(html.matches("<svg").count(), PLOT_IDS.len());
    assert_eq!(html.matches("</svg>").count(), PLOT_IDS.len());
    assert_eq!(html.matches("<figcaption>").count(), PLOT_IDS.len());
    assert!(!html.contains("NaN"));
    assert!(!html.contains("inf<") && !html.contains(">inf"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert!(
        html.contains("Neverust uploads at 2.000× the speed of Archivist"),
        "the interop section sets the two implementations side by side"
    );
    assert!(
        html.contains("node CPU per block (µs)") && html.contains(">731<"),
        "the aggregate's CPU per block is shown"
    );
    assert!(
        html.contains("82.0 % (target ≥ 85.0 %; ideal 69.0 %)")
            && html.contains("1.300× (target ≤ 1.500×)"),
        "the cache section sets its figures beside the targets"
    );
    assert!(
        html.contains("<td>emulated: latency=8ms,bw=150MB/s</td>"),
        "an emulated tier says so"
    );
    assert!(
        html.contains("622.222× (target ≥ 10.000×)"),
        "the reconcile section sets the bytes ratio at 1 % of 10^5 beside its target"
    );
    assert!(
        html.contains("a copy &lt;differs&gt;"),
        "a swarm run's errors are shown, escaped"
    );
    assert!(
        html.contains("<td>0x0101…0101</td>") && html.contains("<td>node 6</td>"),
        "each request is a row: its id, who repaired its lost slot"
    );
    assert!(
        html.contains("<td>1 of 2</td>"),
        "lost slots repaired, out of those lost"
    );
    assert!(html.contains("node 2&#39;s request &lt;not repaired&gt;"));
}

#[test]
fn a_skipped_marketplace_says_why() {
    let results = Results {
        marketplace: Some(MarketplaceResult {
            skipped: Some("the cluster has 1 marketplace nodes".into()),
            ..Default::default()
        }),
        ..Results::default()
    };
    let html = render_html(&results);
    assert!(html.contains("Skipped: the cluster has 1 marketplace nodes."));
    assert!(!html.contains("<svg"));
}

#[test]
fn full_run_is_self_contained_and_escaped() {
    let html = render_html(&full());
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("Linux 6.1.0 &lt;test&gt;"));
    assert!(
        html.contains("HTTP 404 &lt;no providers&gt;"),
        "lost details are listed, escaped"
    );
    assert!(!html.contains("<link"));
    assert!(!html.contains("src=\"http"));
    // The lost upload is highlighted.
    assert!(html.contains("<div class=\"check bad\"><span class=\"v\">1</span>"));
    assert!(html.contains("Neverust benchmark report"));
}

#[test]
fn the_visualizer_picture_is_embedded_or_its_absence_explained() {
    let html = render_html(&full());
    assert!(html.contains("id=\"visualizer\""));
    assert!(html.contains("Chromium is not installed &lt;test&gt;"));
    let dir = scratch_dir("shot");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("visualizer.png");
    std::fs::write(&png, b"\x89PNG not really").unwrap();
    let mut r = full();
    r.visualizer = Some(VisualizerShot {
        png: Some(png),
        note: None,
        ..Default::default()
    });
    let html = render_html(&r);
    assert!(html.contains("src=\"data:image/png;base64,iVBORyBub3QgcmVhbGx5\""));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn write_report_writes_both_files_and_json_round_trips() {
    let dir = scratch_dir("write");
    let results = full();
    let path = write_report(&results, &dir.join("nested")).expect("write report");
    assert_eq!(path, dir.join("nested").join("report.html"));
    let html = std::fs::read_to_string(&path).unwrap();
    assert_eq!(html, render_html(&results));
    let json = std::fs::read_to_string(dir.join("nested").join("results.json")).unwrap();
    let back: Results = serde_json::from_str(&json).expect("results.json parses");
    let written = serde_json::to_value(&results).unwrap();
    let read = serde_json::to_value(&back).unwrap();
    assert!(
        same_json(&written, &read),
        "results.json does not round-trip"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Kept (in the build directory) for a person to look at.
    let example = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("example-report.html");
    std::fs::write(example, html).unwrap();
}

/// Equal JSON trees, numbers within a relative 1e-12: serde_json's default float parser
/// may be one ulp off (its `float_roundtrip` feature makes it exact).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Object(x), Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn empty_run_renders_without_charts() {
    let html = render_html(&Results::default());
    assert!(!html.contains("<svg"));
    assert!(!html.contains("NaN"));
    assert!(html.contains("Checks"));
    assert!(html.contains("What the figures mean"));
}

#[test]
fn empty_vectors_in_present_sections_render_without_charts() {
    let results = Results {
        cluster: Some(ClusterSummary::default()),
        upload: Some(UploadResult::default()),
        exchange: Some(ExchangeResult::default()),
        throughput: Some(ThroughputResult::default()),
        stress: Some(StressResult::default()),
        scale: Some(ScaleResult::default()),
        chaos: Some(ChaosResult {
            partition: Some(PartitionResult::default()),
            partition_skipped: Some("not root & no `ip`".into()),
            ..ChaosResult::default()
        }),
        interop: Some(InteropResult::default()),
        cache: Some(CacheResult::default()),
        reconcile: Some(ReconcileResult {
            heal: Some(ReconcileHeal::default()),
            swarm: Some(ReconcileSwarm::default()),
            ..ReconcileResult::default()
        }),
        marketplace: Some(MarketplaceResult::default()),
        resources: vec![NodeResources::default()],
        ..Results::default()
    };
    let html = render_html(&results);
    assert!(!html.contains("<svg"));
    assert!(!html.contains("NaN"));
    assert!(html.contains("Partition test skipped: not root &amp; no `ip`"));
}

/// One sample everywhere, all values equal, zero throughput, NaN and infinities.
fn degenerate() -> Results {
    let mut r = full();
    for s in &mut r.upload.as_mut().unwrap().sizes {
        s.latencies_ms = vec![5.0];
        s.throughput_mib_s = 0.0;
        s.ratio_to_sha256 = f64::NAN;
        s.latency = Quantiles {
            p50: f64::NAN,
            ..Quantiles::default()
        };
    }
    let e = r.exchange.as_mut().unwrap();
    e.ttfb_ms = vec![3.0; 10];
    e.file_ms = vec![0.0, f64::NAN, f64::INFINITY];
    e.block_latency.buckets = vec![(f64::MAX, 7)];
    e.aggregate.ratio_to_loopback_tcp = f64::INFINITY;
    let t = r.throughput.as_mut().unwrap();
    t.timeline.truncate(1);
    t.timeline[0].mib_s = 0.0;
    let s = r.stress.as_mut().unwrap();
    s.upload_ms = vec![7.0; 5];
    s.download_ms = vec![];
    let sc = r.scale.as_mut().unwrap();
    sc.points.truncate(1);
    sc.points[0].blocks_per_s = 0.0;
    let c = r.chaos.as_mut().unwrap();
    c.ops.truncate(1);
    c.events.truncate(1);
    c.events[0].t_s = c.ops[0].t_s;
    let p = c.partition.as_mut().unwrap();
    p.ops.clear();
    let k = r.cache.as_mut().unwrap();
    k.memory.latencies_ms = vec![f64::NAN];
    k.p50_ratio = f64::NAN;
    k.memory_hit_ratio_steady = f64::INFINITY;
    k.tiers[0].hit_ratio_over_time = vec![f64::NAN; 10];
    k.tiers.truncate(1);
    let rc = r.reconcile.as_mut().unwrap();
    rc.pairs.truncate(1);
    rc.pairs[0].bytes_ratio = f64::INFINITY;
    rc.pairs[0].time_ratio = f64::NAN;
    rc.heal.as_mut().unwrap().time_ratio = f64::NAN;
    let m = r.marketplace.as_mut().unwrap();
    m.requests.truncate(1);
    m.requests[0].started_s = Some(f64::NAN);
    m.requests[0].lost = None;
    for n in &mut r.resources {
        n.t_s.truncate(1);
        n.rss_bytes = vec![0];
        n.cpu_percent = vec![f64::NAN];
    }
    r.baseline = Baseline::default();
    r
}

#[test]
fn degenerate_inputs_render_without_panic_or_nan() {
    let html = render_html(&degenerate());
    assert!(!html.contains("NaN"));
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    // A partition with events but no operations still shows its timeline of events.
    assert!(html.contains("id=\"plot-partition-timeline\""));
}

#[test]
fn all_equal_values_render() {
    let mut r = full();
    let s = r.stress.as_mut().unwrap();
    s.upload_ms = vec![0.0; 50];
    s.download_ms = vec![0.0; 50];
    for p in &mut r.scale.as_mut().unwrap().points {
        p.download.p50 = 10.0;
        p.download.p99 = 10.0;
        p.nodes = 5;
    }
    for n in &mut r.resources {
        n.rss_bytes.iter_mut().for_each(|b| *b = 0);
        n.cpu_percent.iter_mut().for_each(|c| *c = 0.0);
    }
    let html = render_html(&r);
    assert!(!html.contains("NaN"));
    assert_eq!(html.matches("<svg").count(), PLOT_IDS.len());
}
