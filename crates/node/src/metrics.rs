//! The node's Prometheus metrics (`GET /metrics`), all named `neverust_*`.
//!
//! Counters and histograms are updated where the work happens; gauges that mirror state
//! (blocks stored, uptime, memory) are refreshed from their source at scrape time, so they
//! can never drift from what the store holds. The names a scraper sees are in `names`.

pub mod names;

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::config::Mode;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreOpLabels {
    pub op: &'static str,
    pub store: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    pub mode: &'static str,
    pub peer_id: String,
    pub version: &'static str,
}

/// The store operations the node times (`with_store` calls and the upload commit).
pub const STORE_OPS: [&str; 5] = ["get", "delete", "list", "space", "commit"];

fn latency_histogram() -> Histogram {
    // 1 µs .. ~16 s: covers a memory-store hit and a multi-GiB upload alike.
    Histogram::new(exponential_buckets(1e-6, 4.0, 13))
}

pub struct Metrics {
    registry: Registry,
    started: Instant,
    pub block_count: Gauge,
    pub block_bytes: Gauge,
    pub quota_max_bytes: Gauge,
    uptime_seconds: Gauge<f64, AtomicU64>,
    resident_memory_bytes: Gauge,
    cpu_seconds: Gauge<f64, AtomicU64>,
    pub api_requests: Family<RequestLabels, Counter>,
    pub api_request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub store_op_duration: Family<StoreOpLabels, Histogram, fn() -> Histogram>,
    pub uploads: Counter,
    pub upload_bytes: Counter,
    pub downloads: Counter,
    pub download_bytes: Counter,
    pub market: crate::market::metrics::MarketMetrics,
}

impl Metrics {
    pub fn new(mode: Mode, peer_id: String) -> Self {
        let mut registry = Registry::with_prefix("neverust");
        let m = Metrics {
            registry: Registry::default(),
            started: Instant::now(),
            block_count: Gauge::default(),
            block_bytes: Gauge::default(),
            quota_max_bytes: Gauge::default(),
            uptime_seconds: Gauge::default(),
            resident_memory_bytes: Gauge::default(),
            cpu_seconds: Gauge::default(),
            api_requests: Family::default(),
            api_request_duration: Family::new_with_constructor(latency_histogram),
            store_op_duration: Family::new_with_constructor(latency_histogram),
            uploads: Counter::default(),
            upload_bytes: Counter::default(),
            downloads: Counter::default(),
            download_bytes: Counter::default(),
            market: Default::default(),
        };
        let info: Family<InfoLabels, Gauge> = Family::default();
        info.get_or_create(&InfoLabels {
            mode: mode.as_str(),
            peer_id,
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
        registry.register(
            "node_info",
            "Constant 1, labelled with the node's mode, peer id and version",
            info,
        );
        registry.register(
            "block_count",
            "Blocks held in the local store",
            m.block_count.clone(),
        );
        registry.register(
            "block_bytes",
            "Bytes of block data held in the local store",
            m.block_bytes.clone(),
        );
        registry.register(
            "quota_max_bytes",
            "Storage quota of the local store",
            m.quota_max_bytes.clone(),
        );
        registry.register(
            "uptime_seconds",
            "Seconds since the node started",
            m.uptime_seconds.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident set size of the node process",
            m.resident_memory_bytes.clone(),
        );
        registry.register(
            "process_cpu_seconds",
            "CPU time (user + system) used by the node process",
            m.cpu_seconds.clone(),
        );
        registry.register(
            "api_requests",
            "REST API requests by method, route and status",
            m.api_requests.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "REST API request latency by route (until the response head is ready)",
            m.api_request_duration.clone(),
        );
        registry.register(
            "store_op_duration_seconds",
            "Block store operation latency by operation and store kind",
            m.store_op_duration.clone(),
        );
        registry.register(
            "uploads",
            "Datasets uploaded through the API",
            m.uploads.clone(),
        );
        registry.register(
            "upload_bytes",
            "Bytes uploaded through the API",
            m.upload_bytes.clone(),
        );
        registry.register(
            "downloads",
            "Dataset downloads served through the API",
            m.downloads.clone(),
        );
        registry.register(
            "download_bytes",
            "Bytes served by dataset downloads",
            m.download_bytes.clone(),
        );
        m.market.register(&mut registry);
        Metrics { registry, ..m }
    }

    /// Lets another layer (the network) add its series to `/metrics`.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Every series a node exposes: its own, its tiers' (on a tiered store) and the
    /// network layer's, whose handle is returned for the network to update.
    pub fn of_node(
        mode: Mode,
        peer_id: String,
        store_kind: &'static str,
        tiers: Option<&crate::tiers::Tiers>,
    ) -> (Metrics, neverust_net::NetMetrics) {
        let mut metrics = Metrics::new(mode, peer_id);
        metrics.touch_store_ops(store_kind);
        if let Some(t) = tiers {
            metrics
                .registry_mut()
                .register_collector(Box::new(crate::tiers::TierCollector(t.clone())));
        }
        let net = neverust_net::NetMetrics::new(mode.as_str());
        net.register(metrics.registry_mut());
        (metrics, net)
    }

    /// Creates the store series before the first operation: a series that appears with its
    /// first observation already counted shows no rate for it, so dashboards would miss
    /// the first burst of work.
    pub fn touch_store_ops(&self, store: &'static str) {
        for op in STORE_OPS {
            let _ = self
                .store_op_duration
                .get_or_create(&StoreOpLabels { op, store });
        }
    }

    pub fn observe_store_op(&self, op: &'static str, store: &'static str, took: Duration) {
        self.store_op_duration
            .get_or_create(&StoreOpLabels { op, store })
            .observe(took.as_secs_f64());
    }

    /// Refreshes the process gauges and renders the OpenMetrics text.
    pub fn render(&self) -> String {
        self.uptime_seconds
            .set(self.started.elapsed().as_secs_f64());
        if let Some(usage) = crate::procfs::self_usage() {
            self.resident_memory_bytes
                .set(usage.rss_bytes.min(i64::MAX as u64) as i64);
            self.cpu_seconds.set(usage.cpu_seconds);
        }
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_seed_metric_names() {
        let m = Metrics::new(Mode::Marketplace, "16Uiu2Test".into());
        m.block_count.set(3);
        m.api_requests
            .get_or_create(&RequestLabels {
                method: "GET".into(),
                route: "/api/archivist/v1/space".into(),
                status: 200,
            })
            .inc();
        let text = m.render();
        for name in [
            "neverust_block_count 3",
            "neverust_block_bytes 0",
            "neverust_uptime_seconds ",
            "neverust_node_info{mode=\"marketplace\"",
            "neverust_api_requests_total{method=\"GET\",route=\"/api/archivist/v1/space\",status=\"200\"} 1",
        ] {
            assert!(text.contains(name), "missing {name:?} in\n{text}");
        }
    }

    /// A series the text declares or has a sample of: a counter's `# TYPE` line names it
    /// without `_total`, a histogram's samples add `_bucket`, `_sum` and `_count`.
    fn exposed(text: &str, name: &str) -> bool {
        let family = name.strip_suffix("_total").unwrap_or(name);
        text.lines().any(|l| {
            l.starts_with(&format!("# TYPE {family} "))
                || l.split(['{', ' '])
                    .next()
                    .is_some_and(|n| n == name || n == format!("{name}_bucket"))
        })
    }

    #[test]
    fn every_name_readers_use_is_exposed() {
        use neverust_store::tiers::TierSpec;
        let dir = tempfile::tempdir().unwrap();
        let specs: Vec<TierSpec> = [
            "memory:1MiB".to_string(),
            format!("ssd:{}:1MiB", dir.path().display()),
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let cfg = neverust_store::StoreConfig {
            quota_max_bytes: 1 << 30,
            block_ttl: Duration::from_secs(3600),
        };
        let store = neverust_store::TieredStore::open(&specs, cfg).unwrap();
        let tiers = crate::tiers::Tiers {
            store: std::sync::Arc::new(store),
            specs,
        };
        let (m, net) = Metrics::of_node(
            Mode::Altruistic,
            "16Uiu2Test".into(),
            "tiered",
            Some(&tiers),
        );
        // Families whose series appear with their first event (a request, a peer's ledger,
        // a session) render nothing before it: one event each.
        let route = RouteLabels {
            route: "/health".into(),
        };
        m.api_request_duration.get_or_create(&route).observe(0.001);
        m.api_requests
            .get_or_create(&RequestLabels {
                method: "GET".into(),
                route: route.route,
                status: 200,
            })
            .inc();
        net.ledger_bytes
            .get_or_create(&neverust_net::metrics::LedgerLabels {
                peer: "16Uiu2Peer".into(),
                direction: "sent",
            })
            .set(1);
        net.reconcile_sessions
            .get_or_create(&neverust_net::metrics::SessionLabels {
                role: "initiator",
                outcome: "ok",
            })
            .inc();
        use neverust_market::states::{PurchaseState, SaleState};
        crate::market::metrics::MarketMetrics::set_states(
            &m.market.sales,
            [SaleState::SaleProving],
        );
        crate::market::metrics::MarketMetrics::set_states(
            &m.market.purchases,
            [PurchaseState::Started],
        );
        m.market
            .proofs
            .get_or_create(&crate::market::metrics::ProofLabels {
                role: "validator",
                outcome: "verified",
            })
            .inc();
        let text = m.render();
        let missing: Vec<&str> = names::ALL
            .into_iter()
            .filter(|n| !exposed(&text, n))
            .collect();
        assert!(missing.is_empty(), "not exposed: {missing:?} in\n{text}");
        assert!(!exposed(&text, "neverust_no_such_series"));
    }
}
