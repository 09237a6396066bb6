//! The deployment files as the tools that consume them read them: `docker-compose config`
//! (Debian's docker-compose), `promtool check config`, `kubernetes-validate` (its bundled
//! schemas, offline) and hadolint for the Dockerfile; then their content, read back from
//! what those tools print. A missing tool fails the test with the way to install it.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running a tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn neverust(args: &[&str]) -> Output {
    Command::new(common::binary()).args(args).output().unwrap()
}

fn yaml(text: &[u8]) -> Value {
    serde_yaml_ng::from_slice(text).unwrap()
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// Generates the files for `nodes` into a fresh folder and checks them with
/// `docker-compose config` and `promtool`; the compose file as docker-compose read it, and
/// the Prometheus config.
fn generate(nodes: usize, extra: &[&str]) -> (tempfile::TempDir, Value, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("benchmarks");
    let repo = repo();
    run_ok(
        Command::new(common::binary())
            .args([
                "compose",
                "--nodes",
                &nodes.to_string(),
                "--out",
                out.to_str().unwrap(),
                "--repo",
                repo.to_str().unwrap(),
            ])
            .args(extra),
    );
    let config = run_ok(
        common::tool("docker-compose")
            .arg("--file")
            .arg(out.join("docker-compose.yml"))
            .arg("config")
            .current_dir(&out),
    );
    run_ok(
        common::tool("promtool")
            .args(["check", "config"])
            .arg(out.join("prometheus.yml")),
    );
    let prometheus = yaml(&std::fs::read(out.join("prometheus.yml")).unwrap());
    (dir, yaml(&config.stdout), prometheus)
}

#[test]
fn compose_for_3_50_and_120_nodes_is_valid_and_complete() {
    for nodes in [3usize, 50, 120] {
        let (_dir, compose, prometheus) = generate(nodes, &[]);
        let services = compose["services"].as_mapping().unwrap();
        let names: BTreeSet<String> = services.keys().map(str_of).collect();
        let mut want: BTreeSet<String> = (1..nodes).map(|i| format!("node{i}")).collect();
        want.extend(["bootstrap", "prometheus", "grafana", "visualizer"].map(String::from));
        assert_eq!(names, want, "services of a {nodes}-node cluster");

        // Every node on the network, at its own address inside 172.25.0.0/16.
        let mut addresses = HashSet::new();
        let mut marketplace = 0;
        for i in 0..nodes {
            let name = if i == 0 {
                "bootstrap".to_string()
            } else {
                format!("node{i}")
            };
            let s = &compose["services"][name.as_str()];
            let ip = str_of(&s["networks"]["neverust-net"]["ipv4_address"]);
            let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
            assert_eq!(&octets[..2], &[172, 25], "{name} at {ip}");
            assert!(octets[3] != 0 && octets[3] != 255, "{name} at {ip}");
            assert!(addresses.insert(ip.clone()), "{ip} given twice");
            if i == 0 {
                assert_eq!(ip, "172.25.0.10");
            } else {
                assert!(
                    octets[2] >= 1,
                    "{name} at {ip}, among the bootstrap's 172.25.0.x"
                );
                assert_eq!(
                    str_of(&s["environment"]["BOOTSTRAP_NODE"]),
                    "bootstrap:8080"
                );
            }
            if i == 1 {
                assert_eq!(ip, "172.25.1.1");
            }
            let command: Vec<String> = s["command"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(str_of)
                .collect();
            let mode = &command[command.iter().position(|a| a == "--mode").unwrap() + 1];
            assert_eq!(
                mode == "marketplace",
                i > 0 && i.is_multiple_of(3),
                "{name}: {command:?}"
            );
            marketplace += usize::from(mode == "marketplace");
            assert!(s["deploy"]["resources"]["limits"]["memory"]
                .as_str()
                .is_some());
            assert_eq!(str_of(&s["healthcheck"]["test"][1]), "neverust");
        }
        assert_eq!(marketplace, (nodes - 1) / 3);

        // Published ports: exactly the seed's.
        let mut published = BTreeMap::new();
        for (name, s) in services {
            for p in s["ports"].as_sequence().into_iter().flatten() {
                published.insert(
                    str_of(&p["published"]),
                    (str_of(name), str_of(&p["target"])),
                );
            }
        }
        let mut want = BTreeMap::new();
        want.insert(
            "9080".to_string(),
            ("bootstrap".to_string(), "8080".to_string()),
        );
        for i in 1..nodes.min(6) {
            want.insert(
                (9080 + i).to_string(),
                (format!("node{i}"), "8080".to_string()),
            );
        }
        want.insert("9090".into(), ("prometheus".into(), "9090".into()));
        want.insert("3000".into(), ("grafana".into(), "3000".into()));
        want.insert("8888".into(), ("visualizer".into(), "8888".into()));
        assert_eq!(published, want, "published ports of a {nodes}-node cluster");

        // The image's healthcheck asks a node's /health: not the visualizer's business
        // (docker-compose reads `disable: true` as the test NONE).
        assert_eq!(
            str_of(&compose["services"]["visualizer"]["healthcheck"]["test"][0]),
            "NONE"
        );
        // Only the visualizer's image has the page, whose build needs npm; the nodes' image
        // is the Dockerfile's default target, built without it.
        let viz = &compose["services"]["visualizer"];
        assert_eq!(str_of(&viz["build"]["target"]), "visualizer");
        assert_eq!(str_of(&viz["image"]), "neverust-viz:local");
        let bootstrap = &compose["services"]["bootstrap"];
        assert_eq!(str_of(&bootstrap["image"]), "neverust:local");
        assert!(bootstrap["build"]["target"].is_null());

        // Grafana mounts the repository's provisioning and dashboards.
        let mounts: Vec<String> = compose["services"]["grafana"]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| match v {
                Value::String(s) => s.split(':').next().unwrap().to_string(),
                m => str_of(&m["source"]),
            })
            .collect();
        let repo = repo();
        assert!(
            mounts.contains(&repo.join("deploy/grafana/dashboards").display().to_string()),
            "{mounts:?}"
        );
        assert!(
            mounts.contains(
                &repo
                    .join("deploy/grafana/provisioning")
                    .display()
                    .to_string()
            ),
            "{mounts:?}"
        );

        // Prometheus: one target per node, labelled.
        let job = &prometheus["scrape_configs"][0];
        assert_eq!(str_of(&prometheus["global"]["scrape_interval"]), "5s");
        let groups = job["static_configs"].as_sequence().unwrap();
        assert_eq!(groups.len(), nodes);
        let mut seen = HashSet::new();
        for g in groups {
            let target = str_of(&g["targets"][0]);
            let node: usize = str_of(&g["labels"]["node"]).parse().unwrap();
            let want_target = if node == 0 {
                "bootstrap:8080".into()
            } else {
                format!("node{node}:8080")
            };
            assert_eq!(target, want_target);
            assert!(seen.insert(node));
            assert_eq!(
                str_of(&g["labels"]["role"]),
                if node == 0 { "bootstrap" } else { "node" }
            );
            let mode = if node > 0 && node.is_multiple_of(3) {
                "marketplace"
            } else {
                "altruistic"
            };
            assert_eq!(str_of(&g["labels"]["mode"]), mode);
        }
    }
}

#[test]
fn compose_prints_what_it_writes() {
    let (dir, _, _) = generate(4, &[]);
    let out = dir.path().join("benchmarks");
    let repo = repo();
    let args = |print: &str| {
        let out = neverust(&[
            "compose",
            "--nodes",
            "4",
            "--repo",
            repo.to_str().unwrap(),
            "--print",
            print,
        ]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    // The first line names the invocation, which differs; everything after it must not.
    let body = |s: String| s.split_once('\n').unwrap().1.to_string();
    let written = |f: &str| body(std::fs::read_to_string(out.join(f)).unwrap());
    assert_eq!(body(args("compose")), written("docker-compose.yml"));
    assert_eq!(body(args("prometheus")), written("prometheus.yml"));
}

#[test]
fn generate_compose_py_writes_beside_itself() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("benchmarks");
    std::fs::create_dir(&bench).unwrap();
    std::fs::copy(
        repo().join("benchmarks/generate-compose.py"),
        bench.join("generate-compose.py"),
    )
    .unwrap();
    let py = |args: &[&str]| {
        common::tool("python3")
            .arg("generate-compose.py")
            .args(args)
            .current_dir(&bench)
            .env("NEVERUST_BIN", common::binary())
            .output()
            .unwrap()
    };
    let ok = py(&["7", "--marketplace-every", "2"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let prometheus = yaml(&std::fs::read(bench.join("prometheus.yml")).unwrap());
    let groups = prometheus["scrape_configs"][0]["static_configs"]
        .as_sequence()
        .unwrap();
    assert_eq!(groups.len(), 7);
    let marketplace = groups
        .iter()
        .filter(|g| g["labels"]["mode"] == "marketplace")
        .count();
    assert_eq!(
        marketplace, 3,
        "nodes 2, 4 and 6 with --marketplace-every 2"
    );
    let compose = std::fs::read_to_string(bench.join("docker-compose.yml")).unwrap();
    assert!(
        compose.contains("context: ..\n"),
        "the build context is the repository above"
    );
    for bad in ["1", "many"] {
        let out = py(&[bad]);
        assert_eq!(out.status.code(), Some(2), "N = {bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("at least 2"));
    }
}

/// The Dockerfile's stages (`FROM ... AS name`, the last one also as ""), each with the
/// stages it is built from or copies from.
fn docker_stages(text: &str) -> Vec<(String, String, Vec<String>)> {
    let mut stages: Vec<(String, String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(from) = line.strip_prefix("FROM ") {
            let words: Vec<&str> = from.split_whitespace().collect();
            let name = words.get(2).map_or(String::new(), |n| n.to_string());
            stages.push((name, String::new(), vec![words[0].to_string()]));
        }
        if let Some((_, text, needs)) = stages.last_mut() {
            text.push_str(line);
            text.push('\n');
            if let Some(from) = line.strip_prefix("COPY --from=") {
                needs.push(from.split_whitespace().next().unwrap().to_string());
            }
        }
    }
    stages
}

/// Everything that goes into building stage `target`: its own text and its bases'.
fn docker_build_text(stages: &[(String, String, Vec<String>)], target: &str) -> String {
    let Some((_, text, needs)) = stages.iter().find(|(n, _, _)| n == target) else {
        return String::new();
    };
    let mut all = text.clone();
    for need in needs {
        all += &docker_build_text(stages, need);
    }
    all
}

#[test]
fn dockerfile_passes_hadolint() {
    run_ok(common::tool("hadolint").arg(repo().join("Dockerfile")));
    // The node's image (the default, last target) is built without npm; the visualizer's
    // target has the page, which needs it.
    let stages = docker_stages(&std::fs::read_to_string(repo().join("Dockerfile")).unwrap());
    let node = &stages.last().unwrap().0;
    let node_build = docker_build_text(&stages, node);
    assert!(node_build.contains("--no-default-features"));
    assert!(!node_build.contains("npm"), "the node's image needs npm");
    assert!(docker_build_text(&stages, "visualizer").contains("npm ci"));
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    for excluded in ["**/target", "**/node_modules", "**/neverust-cluster*"] {
        assert!(
            ignore.lines().any(|l| l == excluded),
            "{excluded} not in .dockerignore"
        );
    }
}

#[test]
fn kubernetes_manifests_pass_the_schema_validator() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("neverust.yaml");
    run_ok(
        Command::new(common::binary())
            .args(["k8s", "--nodes", "200", "--storage", "5Gi", "--out"])
            .arg(&file),
    );
    run_ok(
        common::tool("kubernetes-validate")
            .arg("--strict")
            .arg(&file),
    );
    // The validator must fail on a broken manifest, or its passing says nothing.
    let broken = std::fs::read_to_string(&file)
        .unwrap()
        .replace("replicas: 200", "replicas: lots");
    std::fs::write(dir.path().join("broken.yaml"), broken).unwrap();
    let out = common::tool("kubernetes-validate")
        .arg(dir.path().join("broken.yaml"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "kubernetes-validate accepted replicas: lots"
    );

    let text = std::fs::read_to_string(&file).unwrap();
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|d: &Value| !d.is_null())
        .collect();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let sts = find("StatefulSet", "neverust");
    assert_eq!(sts["spec"]["replicas"].as_u64(), Some(200));
    assert_eq!(
        str_of(&sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]),
        "5Gi"
    );
    let pod = &sts["spec"]["template"];
    assert_eq!(
        str_of(&pod["metadata"]["annotations"]["prometheus.io/scrape"]),
        "true"
    );
    assert!(pod["spec"]["containers"][0]["resources"]["limits"]["cpu"]
        .as_str()
        .is_some());
    assert_eq!(find("Service", "neverust")["spec"]["clusterIP"], "None");
    find("Service", "neverust-bootstrap");
    find("Deployment", "prometheus");
    find("Role", "prometheus");
    find("RoleBinding", "prometheus");
    assert_eq!(
        str_of(
            &find("Deployment", "visualizer")["spec"]["template"]["spec"]["containers"][0]["image"]
        ),
        "neverust-viz:local"
    );
    let dashboards = find("ConfigMap", "grafana-dashboards");
    for name in ["cluster-overview.json", "node-detail.json"] {
        let on_disk =
            std::fs::read_to_string(repo().join("deploy/grafana/dashboards").join(name)).unwrap();
        assert_eq!(str_of(&dashboards["data"][name]), on_disk, "{name}");
    }
    let prom: Value = serde_yaml_ng::from_str(
        find("ConfigMap", "prometheus-config")["data"]["prometheus.yml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let targets: Vec<String> = prom["scrape_configs"][0]["relabel_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|r| r["target_label"].as_str().map(String::from))
        .collect();
    for label in ["node", "role", "mode"] {
        assert!(
            targets.iter().any(|t| t == label),
            "no relabeling sets {label}: {targets:?}"
        );
    }

    let stdout = neverust(&["k8s", "--nodes", "200", "--storage", "5Gi"]);
    let body = |s: &str| s.split_once('\n').unwrap().1.to_string();
    assert_eq!(
        body(&String::from_utf8(stdout.stdout).unwrap()),
        body(&text)
    );
}

/// The tiers of the tiered cases: a memory cache, an SSD, an emulated HDD.
const TIERS: [&str; 3] = [
    "memory:64MiB",
    "ssd:/tiers/ssd:1GiB",
    "hdd:/tiers/hdd:10GiB:latency=8ms,bw=150MB/s",
];
const TIERS_ENV: &str =
    "memory:64MiB;ssd:/tiers/ssd:1GiB;hdd:/tiers/hdd:10GiB:latency=8ms,bw=150MB/s";

fn tier_flags() -> Vec<&'static str> {
    TIERS.iter().flat_map(|t| ["--node-tier", t]).collect()
}

#[test]
fn compose_with_tiers_gives_every_node_its_tiers_on_volumes_of_its_own() {
    let (_dir, compose, _) = generate(4, &tier_flags());
    let volumes = compose["volumes"].as_mapping().unwrap();
    for name in ["bootstrap", "node1", "node2", "node3"] {
        let s = &compose["services"][name];
        assert_eq!(
            str_of(&s["environment"]["NEVERUST_TIERS"]),
            TIERS_ENV,
            "{name}"
        );
        // As docker-compose config prints them: `volume:path:rw`.
        let mounts: Vec<(String, String)> = s["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| {
                let v = str_of(v);
                let parts: Vec<&str> = v.split(':').collect();
                (parts[0].to_string(), parts[1].to_string())
            })
            .collect();
        for (volume, dir) in [
            (format!("{name}-data"), "/data"),
            (format!("{name}-tier-ssd1"), "/tiers/ssd"),
            (format!("{name}-tier-hdd2"), "/tiers/hdd"),
        ] {
            assert!(
                mounts.contains(&(volume.clone(), dir.to_string())),
                "{name}: {volume} at {dir} not in {mounts:?}"
            );
            assert!(
                volumes.contains_key(Value::from(volume.as_str())),
                "{volume} is not declared"
            );
        }
        assert_eq!(mounts.len(), 3, "{name}: the memory tier has no volume");
    }
    // Without tiers, no tier variable and no tier volumes.
    let (_dir, plain, _) = generate(3, &[]);
    assert!(plain["services"]["node1"]["environment"]["NEVERUST_TIERS"].is_null());
    assert_eq!(
        plain["services"]["node1"]["volumes"]
            .as_sequence()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn kubernetes_with_tiers_claims_a_volume_per_tier() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("neverust.yaml");
    run_ok(
        Command::new(common::binary())
            .args(["k8s", "--nodes", "5", "--storage-class", "fast", "--out"])
            .arg(&file)
            .args(tier_flags()),
    );
    run_ok(
        common::tool("kubernetes-validate")
            .arg("--strict")
            .arg(&file),
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let sts: Value = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .find(|d: &Value| d["kind"] == "StatefulSet")
        .unwrap();
    let claims: Vec<(String, String, String)> = sts["spec"]["volumeClaimTemplates"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| {
            (
                str_of(&c["metadata"]["name"]),
                str_of(&c["spec"]["resources"]["requests"]["storage"]),
                str_of(&c["spec"]["storageClassName"]),
            )
        })
        .collect();
    let own = |a: &str, b: &str| (a.to_string(), b.to_string(), "fast".to_string());
    // A tier's claim is its capacity and a quarter (dead bytes before compaction, the index).
    assert_eq!(
        claims,
        vec![
            own("data", "1Gi"),
            own("tier-ssd1", "1280Mi"),
            own("tier-hdd2", "12800Mi")
        ]
    );
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    let env: BTreeMap<String, String> = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|e| e["value"].is_string())
        .map(|e| (str_of(&e["name"]), str_of(&e["value"])))
        .collect();
    assert_eq!(env["NEVERUST_TIERS"], TIERS_ENV);
    let mounts: Vec<(String, String)> = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| (str_of(&m["name"]), str_of(&m["mountPath"])))
        .collect();
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        mounts,
        vec![
            pair("data", "/data"),
            pair("tier-ssd1", "/tiers/ssd"),
            pair("tier-hdd2", "/tiers/hdd")
        ]
    );
}

#[test]
fn bad_deploy_flags_name_the_flag() {
    for (args, flag) in [
        (&["compose", "--nodes", "0"][..], "--nodes"),
        (&["compose", "--nodes", "70000"], "--nodes"),
        (&["compose", "--cpus", "0"], "--cpus"),
        (&["compose", "--memory", "1MiB"], "--memory"),
        (
            &["compose", "--out", "x", "--print", "prometheus"],
            "--print",
        ),
        (&["k8s", "--nodes", "1"], "--nodes"),
        (&["k8s", "--namespace", "Not_A_Label"], "--namespace"),
        (&["compose", "--node-tier", "tape:/t:1GiB"], "--node-tier"),
        (
            &["compose", "--node-tier", "ssd:relative:1GiB"],
            "--node-tier",
        ),
        (&["compose", "--node-tier", "memory:1GiB"], "--node-tier"),
        (&["k8s", "--node-tier", "ssd:/t/{node}:1GiB"], "--node-tier"),
        (
            &[
                "k8s",
                "--node-tier",
                "memory:1GiB",
                "--node-tier",
                "ssd:/t:1GiB",
            ],
            "--node-tier",
        ),
    ] {
        let out = neverust(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed a file anyway");
    }
}

#[test]
fn health_says_whether_the_node_answers() {
    let data = tempfile::tempdir().unwrap();
    let node = common::TestNode::start(data.path(), &[]);
    let port = node.base.rsplit(':').next().unwrap().to_string();
    let up = Command::new(common::binary())
        .args(["health", "--api-port", &port])
        .status()
        .unwrap();
    assert!(up.success());
    node.terminate();
    let down = Command::new(common::binary())
        .arg("health")
        .env("NEVERUST_API_PORT", &port)
        .status()
        .unwrap();
    assert!(!down.success(), "healthy after the node stopped");
}

/// A deployed cluster's shape on loopback: every node at its own address, every API on the
/// same port. `bench --cluster http://BOOTSTRAP` finds the nodes through the bootstrap,
/// runs the scenarios that only load the cluster, and refuses those that need its
/// processes.
#[tokio::test(flavor = "multi_thread")]
async fn bench_finds_a_deployed_cluster_from_its_bootstrap() {
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let port = {
        let held = std::net::TcpListener::bind((ips[0], 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        for ip in &ips[1..] {
            std::net::TcpListener::bind((*ip, port)).expect("the same port free on every address");
        }
        port
    };
    let dirs: Vec<tempfile::TempDir> = ips.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let boot_addr = format!("{}:{port}", ips[0]);
    let boot = common::TestNode::start_at(ips[0], port, dirs[0].path(), &[]);
    let a = common::TestNode::start_at(
        ips[1],
        port,
        dirs[1].path(),
        &["--bootstrap-node", &boot_addr],
    );
    let b = common::TestNode::start_at(
        ips[2],
        port,
        dirs[2].path(),
        &["--bootstrap-node", &boot_addr, "--mode", "marketplace"],
    );
    boot.wait_connected(&a.peer_id).await;
    boot.wait_connected(&b.peer_id).await;
    let url = format!("http://{boot_addr}");
    let report = tempfile::tempdir().unwrap();
    let bench = |scenarios: &[&str]| {
        let mut cmd = Command::new(common::binary());
        cmd.arg("bench")
            .args(scenarios)
            .args(["--profile", "smoke", "--cluster", &url, "--report"])
            .arg(report.path());
        cmd.output().unwrap()
    };

    for refused in [
        &["chaos"][..],
        &["all"],
        &["upload", "scale"],
        &["cache"],
        &["reconcile"],
    ] {
        let out = bench(refused);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{refused:?} ran against a remote cluster"
        );
        assert!(
            err.contains("cannot run against the deployed cluster"),
            "{refused:?}: {err}"
        );
    }

    // The nodes are other processes: blocking this test thread holds nothing up.
    let out = bench(&["upload", "exchange"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let found: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.path().join("remote-cluster.json")).unwrap())
            .unwrap();
    let nodes = found["nodes"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = nodes
        .iter()
        .map(|n| {
            (
                n["host"].as_str().unwrap(),
                n["peer_id"].as_str().unwrap(),
                n["mode"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (ips[0], boot.peer_id.as_str(), "altruistic"),
            (ips[1], a.peer_id.as_str(), "altruistic"),
            (ips[2], b.peer_id.as_str(), "marketplace"),
        ]
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["settings"]["nodes"], 3);
    assert!(
        results["checks"]["downloads_verified"].as_u64().unwrap() > 0,
        "{}",
        results["checks"]
    );
    for n in [boot, a, b] {
        n.terminate();
    }
}
