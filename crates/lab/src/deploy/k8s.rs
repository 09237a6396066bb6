//! Kubernetes manifests for clusters larger than one machine: the nodes as one StatefulSet
//! with a persistent volume per pod, Prometheus (pod discovery, RBAC), Grafana with the
//! repository's dashboards, and the visualizer, all in one namespace.
//!
//! One StatefulSet holds every node, the bootstrap included, so that pod `neverust-<i>` is
//! node i, numbered as in the native and Compose clusters. A pod template cannot vary a
//! node's mode per pod, so the container's command derives it from the pod's ordinal (its
//! hostname's suffix): 0 is the bootstrap, and the marketplace ordinals are written into the
//! command from the topology, the lab's one rule. Two StatefulSets (altruistic,
//! marketplace) would vary it by template instead, but their pods would no longer be named
//! after their node, and every dashboard and benchmark would need a translation table.
//! Prometheus derives the `node`, `role` and `mode` labels from the pod's name the same way.
//!
//! Pods start in parallel (the nodes retry the bootstrap until it answers): an ordered
//! start of 200 pods would take 200 readiness rounds. Scaling means generating again with
//! another `--nodes`, so that the marketplace list and the scrape config follow.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::topology::{Resources, Topology};
use super::{grafana, prometheus, DeployError};
use super::{API_PORT, DATA_DIR, DISC_PORT, LISTEN_PORT};
use crate::topology::ports::{GRAFANA_PORT, PROMETHEUS_PORT, VIZ_PORT};

/// The StatefulSet, its headless Service, and the prefix of every node pod's name.
pub const STATEFULSET: &str = "neverust";
/// The Service in front of pod `neverust-0`: what `BOOTSTRAP_NODE` and benchmarks name.
pub const BOOTSTRAP_SERVICE: &str = "neverust-bootstrap";
/// The image's user (see the Dockerfile); volumes are made writable for its group.
pub const RUN_AS: u32 = 10001;

#[derive(Debug, Clone)]
pub struct K8sOptions {
    pub topology: Topology,
    pub namespace: String,
    /// The nodes' image (the Dockerfile's default target).
    pub image: String,
    /// The visualizer's image (the Dockerfile's visualizer target).
    pub viz_image: String,
    /// Each node's persistent volume, e.g. `1Gi`.
    pub storage: String,
    /// None: the cluster's default storage class.
    pub storage_class: Option<String>,
}

/// Every manifest, in the order `kubectl apply -f` should create them.
pub fn manifests(opts: &K8sOptions) -> Result<Vec<Value>, DeployError> {
    let ns = opts.namespace.as_str();
    let valid_label = !ns.is_empty()
        && ns.len() <= 63
        && ns
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if !valid_label {
        return Err(DeployError::Namespace { name: ns.into() });
    }
    if opts.topology.nodes > i32::MAX as usize {
        return Err(DeployError::TooManyNodes {
            nodes: opts.topology.nodes,
            why: "a StatefulSet holds at most 2^31-1 pods".into(),
        });
    }
    let mut docs = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": ns },
    })];
    docs.extend(nodes(opts));
    docs.extend(prometheus_manifests(opts)?);
    docs.extend(grafana_manifests(ns));
    docs.extend(visualizer(opts));
    Ok(docs)
}

/// All the manifests as one multi-document YAML file.
pub fn render(opts: &K8sOptions, command: &str) -> Result<String, DeployError> {
    let mut out = super::header(command);
    for doc in manifests(opts)? {
        out.push_str("---\n");
        out.push_str(&super::to_yaml(&doc)?);
    }
    Ok(out)
}

fn meta(name: &str, ns: &str, app: &str) -> Value {
    json!({ "name": name, "namespace": ns, "labels": { "app": app } })
}

fn resources(r: Resources) -> Value {
    let q = |r: Resources| json!({ "cpu": format!("{}m", r.cpu_millis), "memory": format!("{}Mi", r.memory_mib) });
    json!({ "limits": q(r), "requests": q(r.reserved()) })
}

fn service(name: &str, ns: &str, app: &str, selector: Value, ports: &[(&str, u16)]) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p)| json!({ "name": n, "port": p, "targetPort": p }))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, ns, app),
        "spec": { "selector": selector, "ports": ports },
    })
}

/// The container's entry: the node's mode and bootstrap from the pod's ordinal. The mode
/// follows the lab's rule (`cluster::mode_of`) in shell arithmetic rather than a list of
/// ordinals, so the pod template does not change with N: rescaling adds pods instead of
/// rolling every running node.
fn node_script(topology: &Topology) -> String {
    let k = topology.marketplace_every;
    let mode = if k == 0 {
        "mode=altruistic".to_string()
    } else {
        format!(
            "if [ \"$i\" -gt 0 ] && [ $((i % {k})) -eq 0 ]; then mode=marketplace; else mode=altruistic; fi"
        )
    };
    format!(
        "# Pod neverust-<i> is node i: 0 the bootstrap; node i > 0 is a marketplace node when i % {k} = 0.\n\
         i=\"${{HOSTNAME##*-}}\"\n\
         {mode}\n\
         if [ \"$i\" != 0 ]; then export BOOTSTRAP_NODE={BOOTSTRAP_SERVICE}:{API_PORT}; fi\n\
         exec neverust start --mode \"$mode\" --listen-port {LISTEN_PORT} --disc-port {DISC_PORT} \
         --api-port {API_PORT} --data-dir {DATA_DIR} --log-level info\n"
    )
}

/// The claim template of persistent tier `label` (e.g. `tier-ssd1`): each pod gets its
/// own volume per tier, as it does for its data, so a tier can sit on its own storage.
pub fn tier_claim_name(label: &str) -> String {
    format!("tier-{label}")
}

/// A tier's volume request: its capacity and a quarter more, in MiB. The tier keeps its
/// block data at or under its capacity, but its segment files also hold dead bytes until
/// compaction, and the first persistent tier holds the index.
pub fn tier_volume_size(capacity: u64) -> String {
    let bytes = capacity.saturating_add(capacity / 4);
    format!("{}Mi", bytes.div_ceil(1 << 20).max(1))
}

fn nodes(opts: &K8sOptions) -> Vec<Value> {
    let ns = opts.namespace.as_str();
    let app = STATEFULSET;
    let probe = |period: u32, failures: u32| {
        json!({
            "httpGet": { "path": "/health", "port": "api" },
            "periodSeconds": period,
            "timeoutSeconds": 3,
            "failureThreshold": failures,
        })
    };
    let mut claim = json!({
        "metadata": { "name": "data" },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": { "requests": { "storage": opts.storage } },
        },
    });
    if let Some(class) = &opts.storage_class {
        claim["spec"]["storageClassName"] = json!(class);
    }
    let mut claims = vec![claim.clone()];
    let mut mounts = vec![json!({ "name": "data", "mountPath": DATA_DIR })];
    for tier in opts.topology.persistent_tiers() {
        let name = tier_claim_name(&tier.label);
        let mut c = claim.clone();
        c["metadata"]["name"] = json!(name);
        c["spec"]["resources"]["requests"]["storage"] = json!(tier_volume_size(tier.capacity));
        claims.push(c);
        mounts.push(json!({ "name": name, "mountPath": tier.dir }));
    }
    let mut env = vec![
        json!({ "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } }),
        // Peers get the pod's address, never a loopback one.
        json!({ "name": "NEVERUST_LISTEN_IP", "value": "$(POD_IP)" }),
        json!({ "name": "NEVERUST_API_BINDADDR", "value": "0.0.0.0" }),
    ];
    if !opts.topology.tiers.is_empty() {
        env.push(json!({ "name": "NEVERUST_TIERS", "value": super::tiers::env_value(&opts.topology.tiers) }));
    }
    let statefulset = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(STATEFULSET, ns, app),
        "spec": {
            "serviceName": STATEFULSET,
            "replicas": opts.topology.nodes,
            "podManagementPolicy": "Parallel",
            "selector": { "matchLabels": { "app": app } },
            "template": {
                "metadata": {
                    "labels": { "app": app },
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": API_PORT.to_string(),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "securityContext": { "runAsNonRoot": true, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS },
                    "containers": [{
                        "name": "neverust",
                        "image": opts.image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/bin/sh", "-c", node_script(&opts.topology)],
                        "env": env,
                        "ports": [
                            { "name": "api", "containerPort": API_PORT },
                            { "name": "p2p", "containerPort": LISTEN_PORT },
                            { "name": "disc", "containerPort": DISC_PORT, "protocol": "UDP" },
                        ],
                        "readinessProbe": probe(5, 3),
                        "livenessProbe": probe(10, 6),
                        "resources": resources(opts.topology.resources),
                        "volumeMounts": mounts,
                    }],
                },
            },
            "volumeClaimTemplates": claims,
        },
    });
    let node_ports = [("api", API_PORT), ("p2p", LISTEN_PORT)];
    let mut headless = service(STATEFULSET, ns, app, json!({ "app": app }), &node_ports);
    headless["spec"]["clusterIP"] = json!("None");
    // Peers find each other through the bootstrap and the DHT, not through readiness.
    headless["spec"]["publishNotReadyAddresses"] = json!(true);
    let bootstrap = service(
        BOOTSTRAP_SERVICE,
        ns,
        app,
        json!({ "app": app, "statefulset.kubernetes.io/pod-name": format!("{STATEFULSET}-0") }),
        &node_ports,
    );
    vec![headless, bootstrap, statefulset]
}

fn prometheus_manifests(opts: &K8sOptions) -> Result<Vec<Value>, DeployError> {
    let ns = opts.namespace.as_str();
    let app = "prometheus";
    let config = super::to_yaml(&prometheus::kubernetes_config(
        &opts.topology,
        ns,
        STATEFULSET,
        "api",
    ))?;
    // Prometheus reads its config once, and the config lists the marketplace ordinals, so
    // it changes with N: its digest in the pod template makes applying a rescaled file roll
    // Prometheus onto the new config.
    let digest = hex::encode(&Sha256::digest(config.as_bytes())[..8]);
    Ok(vec![
        json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(app, ns, app) }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(app, ns, app),
            "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"] }],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(app, ns, app),
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": app },
            "subjects": [{ "kind": "ServiceAccount", "name": app, "namespace": ns }],
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("prometheus-config", ns, app),
            "data": { "prometheus.yml": config },
        }),
        with_annotation(
            deployment(
                app,
                ns,
                json!({
                    "serviceAccountName": app,
                    "containers": [{
                        "name": app,
                        "image": super::PROMETHEUS_IMAGE,
                        "args": [
                            "--config.file=/etc/prometheus/prometheus.yml",
                            "--storage.tsdb.path=/prometheus",
                            "--storage.tsdb.retention.time=2d",
                        ],
                        "ports": [{ "name": "web", "containerPort": PROMETHEUS_PORT }],
                        "readinessProbe": { "httpGet": { "path": "/-/ready", "port": "web" } },
                        "volumeMounts": [
                            { "name": "config", "mountPath": "/etc/prometheus" },
                            { "name": "data", "mountPath": "/prometheus" },
                        ],
                    }],
                    "volumes": [
                        { "name": "config", "configMap": { "name": "prometheus-config" } },
                        { "name": "data", "emptyDir": {} },
                    ],
                }),
            ),
            "neverust/prometheus-config",
            &digest,
        ),
        service(
            app,
            ns,
            app,
            json!({ "app": app }),
            &[("web", PROMETHEUS_PORT)],
        ),
    ])
}

fn deployment(app: &str, ns: &str, pod_spec: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(app, ns, app),
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": app } },
            "template": { "metadata": { "labels": { "app": app } }, "spec": pod_spec },
        },
    })
}

/// Sets an annotation on a Deployment's pods (a change of it rolls them).
fn with_annotation(mut deployment: Value, key: &str, value: &str) -> Value {
    deployment["spec"]["template"]["metadata"]["annotations"] = json!({ key: value });
    deployment
}

fn config_map(name: &str, ns: &str, files: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = files
        .iter()
        .map(|(file, text)| (file.to_string(), json!(text)))
        .collect();
    json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, ns, "grafana"), "data": data })
}

fn grafana_manifests(ns: &str) -> Vec<Value> {
    let app = "grafana";
    let mount = |name: &str, path: &str| json!({ "name": name, "mountPath": path });
    let from_map = |name: &str| json!({ "name": name, "configMap": { "name": name } });
    vec![
        config_map("grafana-datasources", ns, &[grafana::DATASOURCE]),
        config_map(
            "grafana-dashboard-provider",
            ns,
            &[grafana::DASHBOARD_PROVIDER],
        ),
        config_map("grafana-dashboards", ns, &grafana::DASHBOARDS),
        deployment(
            app,
            ns,
            json!({
                "containers": [{
                    "name": app,
                    "image": super::GRAFANA_IMAGE,
                    "env": [
                        { "name": "GF_SECURITY_ADMIN_PASSWORD", "value": grafana::ADMIN_PASSWORD },
                        { "name": "GF_USERS_ALLOW_SIGN_UP", "value": "false" },
                    ],
                    "ports": [{ "name": "web", "containerPort": GRAFANA_PORT }],
                    "readinessProbe": { "httpGet": { "path": "/api/health", "port": "web" } },
                    "volumeMounts": [
                        mount("grafana-datasources", &format!("{}/datasources", grafana::PROVISIONING_DIR)),
                        mount("grafana-dashboard-provider", &format!("{}/dashboards", grafana::PROVISIONING_DIR)),
                        mount("grafana-dashboards", grafana::DASHBOARDS_DIR),
                    ],
                }],
                "volumes": [
                    from_map("grafana-datasources"),
                    from_map("grafana-dashboard-provider"),
                    from_map("grafana-dashboards"),
                ],
            }),
        ),
        service(
            app,
            ns,
            app,
            json!({ "app": app }),
            &[("web", GRAFANA_PORT)],
        ),
    ]
}

fn visualizer(opts: &K8sOptions) -> Vec<Value> {
    let ns = opts.namespace.as_str();
    let app = "visualizer";
    vec![
        deployment(
            app,
            ns,
            json!({
                "securityContext": { "runAsNonRoot": true, "runAsUser": RUN_AS },
                "containers": [{
                    "name": app,
                    "image": opts.viz_image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": super::compose::viz_command(),
                    "ports": [{ "name": "web", "containerPort": VIZ_PORT }],
                }],
            }),
        ),
        service(app, ns, app, json!({ "app": app }), &[("web", VIZ_PORT)]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(n: usize) -> K8sOptions {
        K8sOptions {
            topology: Topology::new(n, 3, Resources::default()).unwrap(),
            namespace: "lab".into(),
            image: "registry.example/neverust:1".into(),
            viz_image: "registry.example/neverust-viz:1".into(),
            storage: "2Gi".into(),
            storage_class: None,
        }
    }

    fn kind<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    /// Rescaling changes only the replica count of the nodes (no rolling restart of every
    /// node), and rolls Prometheus, whose config lists the marketplace ordinals.
    #[test]
    fn rescaling_leaves_the_node_template_alone_and_rolls_prometheus() {
        let (small, large) = (manifests(&opts(10)).unwrap(), manifests(&opts(20)).unwrap());
        let template =
            |docs: &[Value], k: &str, name: &str| kind(docs, k, name)["spec"]["template"].clone();
        assert_eq!(
            template(&small, "StatefulSet", STATEFULSET),
            template(&large, "StatefulSet", STATEFULSET)
        );
        assert_ne!(
            template(&small, "Deployment", "prometheus"),
            template(&large, "Deployment", "prometheus")
        );
    }

    #[test]
    fn one_statefulset_of_every_node_with_a_volume_each() {
        let docs = manifests(&opts(200)).unwrap();
        let sts = kind(&docs, "StatefulSet", STATEFULSET);
        assert_eq!(sts["spec"]["replicas"], 200);
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
            "2Gi"
        );
        let c = &sts["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
        assert_eq!(c["resources"]["requests"]["cpu"], "250m");
        assert!(docs
            .iter()
            .all(|d| d["kind"] == "Namespace" || d["metadata"]["namespace"] == "lab"));
        let headless = kind(&docs, "Service", STATEFULSET);
        assert_eq!(headless["spec"]["clusterIP"], "None");
        let boot = kind(&docs, "Service", BOOTSTRAP_SERVICE);
        assert_eq!(
            boot["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
            "neverust-0"
        );
    }

    /// The container's script, run by a real shell for a few ordinals, picks the mode and
    /// the bootstrap the lab's rule gives (the last line's `exec` replaced by an echo).
    #[test]
    fn the_pod_script_gives_each_ordinal_its_mode() {
        let script = node_script(&opts(10).topology).replace("exec neverust start", "echo");
        for i in [0usize, 1, 2, 3, 6, 7, 9] {
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("{script}echo \"boot=$BOOTSTRAP_NODE\"")])
                .env("HOSTNAME", format!("neverust-{i}"))
                .env_remove("BOOTSTRAP_NODE")
                .output()
                .unwrap();
            let out = String::from_utf8(out.stdout).unwrap();
            let want_mode = if i > 0 && i.is_multiple_of(3) {
                "marketplace"
            } else {
                "altruistic"
            };
            assert!(
                out.contains(&format!("--mode {want_mode} ")),
                "node {i}: {out}"
            );
            let want_boot = if i == 0 {
                "boot=\n".to_string()
            } else {
                "boot=neverust-bootstrap:8080\n".to_string()
            };
            assert!(out.ends_with(&want_boot), "node {i}: {out}");
        }
    }

    #[test]
    fn grafana_gets_the_repository_files_and_bad_namespaces_are_refused() {
        let docs = manifests(&opts(3)).unwrap();
        let dashboards = kind(&docs, "ConfigMap", "grafana-dashboards");
        for (name, text) in grafana::DASHBOARDS {
            assert_eq!(dashboards["data"][name], text);
        }
        let mut bad = opts(3);
        bad.namespace = "Not_A_Label".into();
        assert!(manifests(&bad)
            .unwrap_err()
            .to_string()
            .contains("--namespace"));
    }
}
