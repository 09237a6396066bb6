//! The network layer's Prometheus metrics; the node registers them beside its own.
//!
//! Cheap to clone (every field is an `Arc` inside), so the swarm task, the engine and each
//! download update the same series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    pub role: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LedgerLabels {
    pub peer: String,
    pub direction: &'static str,
}

#[derive(Clone)]
pub struct NetMetrics {
    pub mode: &'static str,
    pub peers_connected: Gauge,
    pub blocks_sent: Family<ModeLabels, Counter>,
    pub bytes_sent: Family<ModeLabels, Counter>,
    pub blocks_received: Family<ModeLabels, Counter>,
    pub bytes_received: Family<ModeLabels, Counter>,
    pub block_fetch_latency: Histogram,
    pub wantlist_blocks: Gauge,
    pub peer_wants_served: Counter,
    pub misbehaviour: Family<ReasonLabels, Counter>,
    pub peers_disconnected_for_misbehaviour: Counter,
    pub refused_for_credit: Counter,
    pub ledger_bytes: Family<LedgerLabels, Gauge>,
    pub dht_lookups: Counter,
    pub dht_providers_found: Counter,
    pub dht_announcements: Counter,
    pub dht_announcements_waiting: Gauge,
    pub unwanted_blocks: Counter,
    pub reconcile_sessions: Family<SessionLabels, Counter>,
    pub reconcile_bytes: Family<DirectionLabels, Counter>,
    pub blockexc_bytes_sent: Family<KindLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    pub direction: &'static str,
}

impl NetMetrics {
    pub fn new(mode: &'static str) -> Self {
        NetMetrics {
            mode,
            peers_connected: Gauge::default(),
            blocks_sent: Family::default(),
            bytes_sent: Family::default(),
            blocks_received: Family::default(),
            bytes_received: Family::default(),
            // 100 µs .. ~26 s
            block_fetch_latency: Histogram::new(exponential_buckets(1e-4, 2.0, 18)),
            wantlist_blocks: Gauge::default(),
            peer_wants_served: Counter::default(),
            misbehaviour: Family::default(),
            peers_disconnected_for_misbehaviour: Counter::default(),
            refused_for_credit: Counter::default(),
            ledger_bytes: Family::default(),
            dht_lookups: Counter::default(),
            dht_providers_found: Counter::default(),
            dht_announcements: Counter::default(),
            dht_announcements_waiting: Gauge::default(),
            unwanted_blocks: Counter::default(),
            reconcile_sessions: Family::default(),
            reconcile_bytes: Family::default(),
            blockexc_bytes_sent: Family::default(),
        }
    }

    pub(crate) fn mode_labels(&self) -> ModeLabels {
        ModeLabels { mode: self.mode }
    }

    pub fn register(&self, r: &mut Registry) {
        // Touch the labelled series so they show as 0 before the first transfer: dashboards
        // and rate() need the series to exist.
        for f in [
            &self.blocks_sent,
            &self.bytes_sent,
            &self.blocks_received,
            &self.bytes_received,
        ] {
            let _ = f.get_or_create(&self.mode_labels());
        }
        for kind in BLOCKEXC_KINDS {
            let _ = self.blockexc_bytes_sent.get_or_create(&KindLabels { kind });
        }
        for direction in ["sent", "received"] {
            let _ = self
                .reconcile_bytes
                .get_or_create(&DirectionLabels { direction });
        }
        for reason in MISBEHAVIOUR_REASONS
            .into_iter()
            .chain(crate::reconcile::MISBEHAVIOUR_REASONS)
        {
            let _ = self.misbehaviour.get_or_create(&ReasonLabels { reason });
        }
        r.register(
            "peers_connected",
            "Peers with an open libp2p connection",
            self.peers_connected.clone(),
        );
        r.register(
            "blocks_sent",
            "Blocks delivered to peers",
            self.blocks_sent.clone(),
        );
        r.register(
            "bytes_sent",
            "Block bytes delivered to peers",
            self.bytes_sent.clone(),
        );
        r.register(
            "blocks_received",
            "Verified blocks received from peers",
            self.blocks_received.clone(),
        );
        r.register(
            "bytes_received",
            "Verified block bytes received from peers",
            self.bytes_received.clone(),
        );
        r.register(
            "block_fetch_latency_seconds",
            "Time from asking a peer for a block to holding it verified",
            self.block_fetch_latency.clone(),
        );
        r.register(
            "wantlist_blocks",
            "Blocks this node has asked peers for and not yet received",
            self.wantlist_blocks.clone(),
        );
        r.register(
            "peer_wants_served",
            "Wantlist entries from peers answered",
            self.peer_wants_served.clone(),
        );
        r.register(
            "misbehaviour",
            "Offences by peers, by kind",
            self.misbehaviour.clone(),
        );
        r.register(
            "peers_disconnected_for_misbehaviour",
            "Peers disconnected after repeated offences",
            self.peers_disconnected_for_misbehaviour.clone(),
        );
        r.register(
            "refused_for_credit",
            "Block requests a marketplace node refused because the peer's credit ran out",
            self.refused_for_credit.clone(),
        );
        r.register(
            "ledger_bytes",
            "Marketplace ledger: bytes sent to and received from each peer",
            self.ledger_bytes.clone(),
        );
        r.register(
            "dht_provider_lookups",
            "Provider lookups in the DHT",
            self.dht_lookups.clone(),
        );
        r.register(
            "dht_providers_found",
            "Providers found by DHT lookups",
            self.dht_providers_found.clone(),
        );
        r.register(
            "dht_announcements",
            "Provider announcements started (each a DHT walk)",
            self.dht_announcements.clone(),
        );
        r.register(
            "dht_announcements_waiting",
            "Provider announcements queued behind the walks already running",
            self.dht_announcements_waiting.clone(),
        );
        r.register(
            "blockexc_message_bytes_sent",
            "Bytes of blockexc messages written to peers (length prefix included), by what they carry: blocks, presences or a wantlist",
            self.blockexc_bytes_sent.clone(),
        );
        r.register(
            "reconcile_sessions",
            "Set reconciliation sessions, by role and outcome (ok, unsupported, failed, misbehaviour)",
            self.reconcile_sessions.clone(),
        );
        r.register(
            "reconcile_bytes",
            "Bytes of set reconciliation messages, by direction",
            self.reconcile_bytes.clone(),
        );
        r.register(
            "unwanted_blocks",
            "Blocks received that no download was waiting for",
            self.unwanted_blocks.clone(),
        );
    }
}

/// What a blockexc message carries, for `blockexc_message_bytes_sent`: a message with
/// blocks counts as blocks, else one with presences as presences.
pub const BLOCKEXC_KINDS: [&str; 3] = ["blocks", "presences", "wantlist"];

pub const MISBEHAVIOUR_REASONS: [&str; 4] = ["malformed", "oversize", "bad_hash", "bad_proof"];
