//! The lab end to end with the real binary: a native cluster's lifecycle, and a short
//! `bench all` (kill -9 and restart, a partition between network namespaces) judged by its
//! `results.json`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::eventually_blocking;
use serde_json::Value;

fn neverust() -> Command {
    Command::new(common::binary())
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn cluster_lifecycle_status_stale_refusal_and_keep_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let args = |keep: bool| {
        let mut c = neverust();
        c.args(["cluster", "--nodes", "3", "--base-port", "23100"])
            .args(["--bootstrap-api-port", "23199", "--node-log-level", "warn"])
            .arg("--no-viz")
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if keep {
            c.arg("--keep-data");
        }
        c
    };
    let mut launcher = args(true).spawn().unwrap();
    let file = dir.join("cluster.json");
    eventually_blocking("cluster.json", Duration::from_secs(60), || {
        file.exists().then_some(())
    });
    let cluster = read_json(&file);
    let nodes = cluster["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0]["role"], "bootstrap");
    assert_eq!(nodes[0]["api_port"], 23199);
    assert!(nodes
        .iter()
        .all(|n| n["peer_id"].as_str().unwrap().starts_with("16U")));
    let pids: Vec<u32> = nodes
        .iter()
        .map(|n| n["pid"].as_u64().unwrap() as u32)
        .collect();

    let status = neverust()
        .args(["cluster", "status", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(text.contains("3/3 nodes up"), "{text}");

    // A second launcher on the same directory is refused while the first holds it.
    let second = args(false).stderr(Stdio::piped()).output().unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("already runs a cluster") && err.contains(&launcher.id().to_string()),
        "{err}"
    );

    // A launcher that dies hard leaves its nodes: they are found and refused, then stopped.
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    let refused = args(false).stderr(Stdio::piped()).output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("still running") && err.contains(&pids[1].to_string()),
        "{err}"
    );
    let stop = neverust()
        .args(["cluster", "stop", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(stop.status.success());
    eventually_blocking("nodes to stop", Duration::from_secs(15), || {
        pids.iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists() || zombie(*p))
            .then_some(())
    });
    assert!(dir.join("node-1/data").exists(), "stop keeps the data");

    assert!(!file.exists(), "stop removes the stale cluster.json");

    // A graceful stop (SIGTERM) without --keep-data removes data, keeps logs.
    let launcher = args(false).spawn().unwrap();
    eventually_blocking("cluster.json", Duration::from_secs(60), || {
        file.exists().then_some(())
    });
    assert_eq!(read_json(&file)["launcher_pid"], launcher.id());
    Command::new("kill")
        .args(["-TERM", &launcher.id().to_string()])
        .status()
        .unwrap();
    let mut launcher = launcher;
    assert!(launcher.wait().unwrap().success());
    assert!(!dir.join("node-1/data").exists());
    assert!(dir.join("node-1/node.log").exists());
    assert!(!file.exists());
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z"))
        .unwrap_or(true)
}

#[test]
fn bad_cluster_flags_name_the_flag() {
    assert!(common::usage_error(&["cluster", "--nodes", "1"]).contains("--nodes"));
    let err = common::usage_error(&["cluster", "--nodes", "5", "--base-port", "9084"]);
    assert!(err.contains("--base-port") && err.contains("9090"), "{err}");
    assert!(common::usage_error(&["bench", "everything"]).contains("unknown scenario"));
    for skew in ["0", "-1", "x", "NaN"] {
        let err = common::usage_error(&["bench", "cache", "--cache-skew", skew]);
        assert!(err.contains("--cache-skew"), "{skew}: {err}");
    }
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let out = neverust()
        .args([
            "cluster",
            "--nodes",
            "2",
            "--bootstrap-api-port",
            &port.to_string(),
            "--no-viz",
        ])
        .args(["--base-port", "23300", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("port {port}")) && err.contains("in use"),
        "{err}"
    );
}

/// The end-to-end test: 5 nodes, every scenario in its smoke profile.
#[test]
fn bench_all_on_five_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = common::bench(
        tmp.path(),
        &[
            "all",
            "--nodes",
            "5",
            "--profile",
            "smoke",
            "--scale-nodes",
            "2,3",
            "--base-port",
            "23400",
            "--bootstrap-api-port",
            "23499",
        ],
    );
    let (r, report, stderr) = (&run.results, &run.report, &run.stderr);
    assert!(run.stdout.contains("report.html"), "{}", run.stdout);

    let checks = &r["checks"];
    assert_eq!(checks["acknowledged_lost"], 0, "{checks}");
    assert_eq!(checks["errors"], 0, "{checks}\n{stderr}");
    assert!(checks["uploads_acknowledged"].as_u64().unwrap() > 50);
    assert!(checks["downloads_verified"].as_u64().unwrap() > 40);
    assert!(r["baseline"]["sha256_mib_s"].as_f64().unwrap() > 0.0);
    assert!(r["baseline"]["loopback_tcp_mib_s"].as_f64().unwrap() > 0.0);

    for size in r["upload"]["sizes"].as_array().unwrap() {
        assert_eq!(size["verified"], size["count"], "{size}");
    }
    assert_eq!(r["exchange"]["verified"], r["exchange"]["pairs"]);
    assert!(r["exchange"]["block_latency"]["count"].as_u64().unwrap() > 0);
    assert!(r["exchange"]["aggregate"]["blocks_per_s"].as_f64().unwrap() > 0.0);
    assert!(r["throughput"]["single"]["mib_s"].as_f64().unwrap() > 0.0);
    assert!(
        r["interop"]["skipped"]
            .as_str()
            .unwrap()
            .contains("no Archivist nodes"),
        "a cluster without Archivist nodes says interop was skipped: {}",
        r["interop"]
    );
    assert_eq!(r["throughput"]["swarm"]["downloaders"], 3);
    assert!(
        r["marketplace"]["skipped"]
            .as_str()
            .unwrap()
            .contains("1 marketplace nodes"),
        "one marketplace node of five is too few, and the report says so: {}",
        r["marketplace"]
    );
    let stress = &r["stress"];
    assert_eq!(stress["verified"], stress["operations"], "{stress}");
    let points: Vec<u64> = r["scale"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodes"].as_u64().unwrap())
        .collect();
    assert_eq!(points, vec![2, 3]);

    let chaos = &r["chaos"];
    assert_eq!(chaos["lost"], 0, "{chaos}");
    let killed = chaos["killed"].as_array().unwrap();
    assert_eq!(
        killed.len(),
        1,
        "20 % of the 4 non-bootstrap nodes, rounded up"
    );
    assert_ne!(killed[0], 0, "the bootstrap is spared");
    assert_eq!(chaos["restart_seconds"].as_array().unwrap().len(), 1);
    assert_eq!(chaos["retrievable_origin"], chaos["acknowledged"]);
    assert_eq!(chaos["retrievable_network"], chaos["acknowledged"]);
    assert!(chaos["acknowledged"].as_u64().unwrap() > 0);
    if chaos["partition_skipped"].is_null() {
        let p = &chaos["partition"];
        assert_eq!(p["lost"], 0, "{p}");
        assert!(
            p["heal_seconds"].as_f64().is_some(),
            "the partition never healed: {p}"
        );
        assert!(
            p["across_failed"].as_u64().unwrap() > 0,
            "a cut link must stop transfers across: {p}"
        );
        assert!(
            p["within_ok"].as_u64().unwrap() > 0,
            "each side keeps working: {p}"
        );
        let kinds: Vec<&str> = p["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, vec!["cut", "restore", "healed"]);
    } else {
        eprintln!("partition skipped: {}", chaos["partition_skipped"]);
    }
    let cache = &r["cache"];
    assert_eq!(cache["skew"], 1.0, "{cache}");
    assert_eq!(cache["errors"].as_array().unwrap().len(), 0, "{cache}");
    for node in ["tiered", "memory"] {
        let n = &cache[node];
        assert!(n["reads"].as_u64().unwrap() > 0, "{n}");
        assert_eq!(n["verified"], n["reads"], "every read verified: {n}");
    }
    let tiers = cache["tiers"].as_array().unwrap();
    let names: Vec<&str> = tiers.iter().map(|t| t["tier"].as_str().unwrap()).collect();
    assert_eq!(names, ["memory0", "ssd1", "hdd2"]);
    let mut shares = 0.0;
    for t in tiers {
        let share = t["hit_ratio"].as_f64().unwrap();
        shares += share;
        assert!((0.0..=1.0).contains(&share), "{t}");
        for h in t["hit_ratio_over_time"].as_array().unwrap() {
            assert!((0.0..=1.0).contains(&h.as_f64().unwrap()), "{t}");
        }
    }
    assert!(
        (shares - 1.0).abs() < 1e-6,
        "every block read served by one tier: {cache}"
    );
    assert!(tiers[0]["hits"].as_u64().unwrap() > 0, "{cache}");
    for ratio in ["memory_hit_ratio_steady", "memory_hit_ratio_ideal"] {
        assert!(
            (0.0..=1.0).contains(&cache[ratio].as_f64().unwrap()),
            "{cache}"
        );
    }
    assert!(cache["p50_ratio"].as_f64().unwrap() > 0.0, "{cache}");

    let rec = &r["reconcile"];
    assert_eq!(rec["errors"].as_array().unwrap().len(), 0, "{rec}");
    let pairs = rec["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 3, "one set size, three differences: {rec}");
    for p in pairs {
        assert_eq!(p["correct"], true, "{p}");
        let (r_bytes, p_bytes) = (
            p["reconcile"]["bytes"].as_u64().unwrap(),
            p["plain"]["bytes"].as_u64().unwrap(),
        );
        assert!(r_bytes > 0 && p_bytes > 0, "{p}");
        // A want-have and a presence per block lacked: tens of bytes per block.
        assert!(p_bytes > 10 * p["set_size"].as_u64().unwrap(), "{p}");
    }
    assert_eq!(rec["heal"]["correct"], true, "{rec}");
    let runs = rec["swarm"]["runs"].as_array().unwrap();
    let methods: Vec<&str> = runs.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["reconciliation", "want-have"]);
    for run in runs {
        assert_eq!(run["verified"], rec["swarm"]["downloaders"], "{run}");
    }
    assert!(runs[0]["reconcile_bytes"].as_u64().unwrap() > 0, "{rec}");
    assert_eq!(
        runs[1]["reconcile_bytes"], 0,
        "--reconcile false sends none: {rec}"
    );
    assert!(runs[1]["presence_bytes"].as_u64().unwrap() > 0, "{rec}");

    let samples = r["resources"].as_array().unwrap();
    assert_eq!(samples.len(), 5);
    assert!(samples
        .iter()
        .all(|s| !s["rss_bytes"].as_array().unwrap().is_empty()));

    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    for id in [
        "plot-upload-cdf",
        "plot-exchange-cdf",
        "plot-block-histogram",
        "plot-throughput-timeline",
        "plot-stress-histogram",
        "plot-cache-hit-ratio",
        "plot-cache-latency-cdf",
        "plot-reconcile-ratios",
        "plot-scale-latency",
        "plot-chaos-timeline",
        "plot-resources-rss",
    ] {
        assert!(html.contains(id), "report lacks {id}");
    }
    assert!(html.matches("<svg").count() >= 8);
    // The visualizer's picture, taken while the cluster still ran (or why there is none).
    let shot = &r["visualizer"];
    assert_eq!(shot["nodes"], 5, "{shot}");
    assert!(shot["edges"].as_u64().unwrap() >= 4, "{shot}");
    if shot["png"].is_string() {
        assert!(html.contains("data:image/png;base64,"));
        assert!(report.join("visualizer.png").is_file());
    } else {
        assert!(html.contains("no picture"), "{shot}");
    }
    // Outside the embedded picture, whose base64 may spell "NaN" by chance.
    let text: String = html
        .split("data:image/png;base64,")
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part
            } else {
                part.split_once('"').map_or("", |(_, rest)| rest)
            }
        })
        .collect();
    assert!(!text.contains("NaN"));
    // Nothing of the bench is left running.
    assert!(neverust_procs(tmp.path()).is_empty());
}

/// `bench marketplace` on five marketplace nodes, the fewest it runs on: a client's request
/// starts on three hosts, one of them is killed, its slot is repaired on the fifth, the
/// dataset reads back, the validators counted proofs. (Which hosts die when several
/// clients' slots overlap is for `plan`'s unit tests.)
#[test]
fn bench_marketplace_on_six_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = common::bench(
        tmp.path(),
        &[
            "marketplace",
            "--nodes",
            "6",
            "--marketplace-every",
            "1",
            "--profile",
            "smoke",
            "--seed",
            "3",
            // Debug builds sharing two cores with the other tests prove in seconds, not
            // milliseconds: a live host must not miss its proofs.
            "--node-proof-period",
            "4s",
            "--node-proof-timeout",
            "15s",
            "--base-port",
            "27800",
            "--bootstrap-api-port",
            "27899",
        ],
    );
    let (r, report) = (&run.results, &run.report);
    let m = &r["marketplace"];
    assert!(m["skipped"].is_null(), "{m}");
    assert_eq!(m["marketplace_nodes"], 5, "{m}");
    assert_eq!(m["hosts"], 5, "every marketplace node offers storage: {m}");
    let requests = m["requests"].as_array().unwrap();
    assert_eq!(
        requests.len(),
        1,
        "five nodes leave room for one client: {m}"
    );
    assert_eq!(m["started"], 1, "{m}");
    assert_eq!(m["downloadable"], 1, "{m}");
    assert_eq!(m["errors"].as_array().unwrap().len(), 0, "{m}");
    let killed: Vec<u64> = m["killed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_u64().unwrap())
        .collect();
    assert_eq!(killed.len(), 1, "one slot host is killed: {m}");
    for q in requests {
        assert_eq!(q["state"], "started", "{q}");
        assert_eq!(q["holders"].as_array().unwrap().len(), 3, "{q}");
        assert!(!killed.contains(&q["client"].as_u64().unwrap()), "{m}");
        assert_ne!(q["reader"], q["client"], "{q}");
        if let Some(lost) = q["lost"].as_object() {
            assert!(lost["repair_s"].as_f64().unwrap() > 0.0, "{q}");
            assert_ne!(lost["repaired_by"], lost["node"], "{q}");
        }
    }
    assert_eq!(m["repaired"], 1, "{m}");
    assert!(m["slots_repaired"].as_u64().unwrap() >= 1, "{m}");
    assert!(m["proofs"]["verified"].as_u64().unwrap() > 0, "{m}");
    assert!(
        m["proofs"]["missed"].as_u64().unwrap() >= 1,
        "the dead host's proofs are missed: {m}"
    );
    assert_eq!(m["proofs"]["invalid"], 0, "{m}");
    assert_eq!(m["restart_seconds"].as_array().unwrap().len(), killed.len());
    assert_eq!(r["checks"]["acknowledged_lost"], 0, "{}", r["checks"]);
    assert_eq!(r["checks"]["errors"], 0, "{}", r["checks"]);
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(
        html.contains("plot-marketplace"),
        "the report draws the scenario"
    );
    assert!(neverust_procs(tmp.path()).is_empty());
}

fn neverust_procs(dir: &Path) -> Vec<String> {
    let needle = std::fs::canonicalize(dir)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle) && c.contains(" start "))
        .collect()
}

/// The README's main command in small: `cluster --restart` in one process, `bench
/// --cluster` in another; chaos kills a node and the launcher brings it back.
#[test]
fn bench_against_a_running_cluster_with_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let mut launcher = neverust()
        .args([
            "cluster",
            "--nodes",
            "4",
            "--restart",
            "--no-viz",
            "--base-port",
            "23600",
        ])
        .args([
            "--bootstrap-api-port",
            "23699",
            "--node-log-level",
            "warn",
            "--dir",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let file = dir.join("cluster.json");
    eventually_blocking("cluster.json", Duration::from_secs(60), || {
        file.exists().then_some(())
    });
    let before = read_json(&file);
    let report = tmp.path().join("report");
    let out = neverust()
        .args([
            "bench",
            "upload",
            "chaos",
            "--profile",
            "smoke",
            "--seed",
            "7",
            "--cluster",
        ])
        .arg(&file)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let after = read_json(&file);
    Command::new("kill")
        .args(["-TERM", &launcher.id().to_string()])
        .status()
        .unwrap();
    assert!(launcher.wait().unwrap().success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let r = read_json(&report.join("results.json"));
    assert_eq!(r["settings"]["seed"], 7);
    let ready = r["cluster"]["ready_seconds"].as_f64().unwrap();
    assert!(
        ready > 0.0,
        "the launcher's ready time reaches an attached bench"
    );
    assert_eq!(
        r["settings"]["scenarios"],
        serde_json::json!(["upload", "chaos"])
    );
    assert!(r["exchange"].is_null(), "only the scenarios asked for run");
    let chaos = &r["chaos"];
    assert_eq!(chaos["lost"], 0, "{chaos}");
    let killed = chaos["killed"][0].as_u64().unwrap() as usize;
    assert_ne!(
        before["nodes"][killed]["pid"], after["nodes"][killed]["pid"],
        "the launcher restarted node {killed} under a new pid"
    );
    assert_eq!(
        before["nodes"][killed]["peer_id"],
        after["nodes"][killed]["peer_id"]
    );
    assert_eq!(chaos["retrievable_origin"], chaos["acknowledged"]);
    assert_eq!(r["checks"]["acknowledged_lost"], 0);
    assert_eq!(r["checks"]["errors"], 0, "{}", r["checks"]);
}

/// `bench marketplace --cluster` against `cluster --restart`, as `scripts/lab.sh` runs it:
/// the launcher brings each killed host back at once, it resumes its slot from its copy of
/// the ledger and keeps proving, so the slot is kept, not repaired, and nothing is an error.
#[test]
fn bench_marketplace_on_a_cluster_that_restarts_killed_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let mut launcher = neverust()
        .args(["cluster", "--nodes", "6", "--restart", "--no-viz"])
        .args(["--marketplace-every", "1", "--base-port", "27900"])
        .args(["--bootstrap-api-port", "27999", "--node-log-level", "warn"])
        // Debug builds on two shared cores: a restarted host must be back within this.
        .args(["--node-proof-period", "4s", "--node-proof-timeout", "15s"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let file = dir.join("cluster.json");
    eventually_blocking("cluster.json", Duration::from_secs(60), || {
        file.exists().then_some(())
    });
    let report = tmp.path().join("report");
    let out = neverust()
        .args(["bench", "marketplace", "--profile", "smoke", "--seed", "3"])
        .arg("--cluster")
        .arg(&file)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    Command::new("kill")
        .args(["-TERM", &launcher.id().to_string()])
        .status()
        .unwrap();
    assert!(launcher.wait().unwrap().success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let m = &read_json(&report.join("results.json"))["marketplace"];
    assert!(m["skipped"].is_null(), "{m}");
    assert_eq!(m["errors"].as_array().unwrap().len(), 0, "{m}");
    let lost: Vec<&Value> = m["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["lost"].as_object().map(|_| &q["lost"]))
        .collect();
    assert!(!lost.is_empty(), "a slot host was killed: {m}");
    for l in &lost {
        assert_eq!(
            l["repaired_by"], l["node"],
            "the restarted host kept its slot: {l}"
        );
    }
    assert_eq!(m["kept"], lost.len(), "{m}");
    assert_eq!(m["repaired"], 0, "{m}");
    assert!(
        m["proofs"]["verified"].as_u64().unwrap() >= 3,
        "the slots were proven before the counts were read: {m}"
    );
    assert_eq!(m["downloadable"], m["requests"].as_array().unwrap().len());
}
