//! The names of the series a node exposes on `/metrics`, as a scraper sees them: the
//! `neverust_` prefix the node's registry adds, and the `_total` prometheus-client appends
//! to every counter. Histograms are named by family (`_bucket`, `_sum` and `_count` follow).
//!
//! The registrations (here, in `neverust-net` and in `tiers`) use short names of their own;
//! the lab, the visualizer and the tests read these constants, and a test renders the
//! node's registry to check that each is really there, so a renamed series breaks that
//! test instead of leaving a reader summing nothing.

// The node's own series.
pub const NODE_INFO: &str = "neverust_node_info";
pub const BLOCK_COUNT: &str = "neverust_block_count";
pub const BLOCK_BYTES: &str = "neverust_block_bytes";
pub const QUOTA_MAX_BYTES: &str = "neverust_quota_max_bytes";
pub const UPTIME_SECONDS: &str = "neverust_uptime_seconds";
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "neverust_process_resident_memory_bytes";
pub const PROCESS_CPU_SECONDS: &str = "neverust_process_cpu_seconds";
pub const API_REQUESTS_TOTAL: &str = "neverust_api_requests_total";
pub const API_REQUEST_DURATION_SECONDS: &str = "neverust_api_request_duration_seconds";
pub const STORE_OP_DURATION_SECONDS: &str = "neverust_store_op_duration_seconds";
pub const UPLOADS_TOTAL: &str = "neverust_uploads_total";
pub const UPLOAD_BYTES_TOTAL: &str = "neverust_upload_bytes_total";
pub const DOWNLOADS_TOTAL: &str = "neverust_downloads_total";
pub const DOWNLOAD_BYTES_TOTAL: &str = "neverust_download_bytes_total";

// The network layer's (`neverust_net::NetMetrics`).
pub const PEERS_CONNECTED: &str = "neverust_peers_connected";
pub const BLOCKS_SENT_TOTAL: &str = "neverust_blocks_sent_total";
pub const BYTES_SENT_TOTAL: &str = "neverust_bytes_sent_total";
pub const BLOCKS_RECEIVED_TOTAL: &str = "neverust_blocks_received_total";
pub const BYTES_RECEIVED_TOTAL: &str = "neverust_bytes_received_total";
pub const BLOCK_FETCH_LATENCY_SECONDS: &str = "neverust_block_fetch_latency_seconds";
pub const WANTLIST_BLOCKS: &str = "neverust_wantlist_blocks";
pub const PEER_WANTS_SERVED_TOTAL: &str = "neverust_peer_wants_served_total";
pub const MISBEHAVIOUR_TOTAL: &str = "neverust_misbehaviour_total";
pub const PEERS_DISCONNECTED_FOR_MISBEHAVIOUR_TOTAL: &str =
    "neverust_peers_disconnected_for_misbehaviour_total";
pub const REFUSED_FOR_CREDIT_TOTAL: &str = "neverust_refused_for_credit_total";
pub const LEDGER_BYTES: &str = "neverust_ledger_bytes";
pub const DHT_PROVIDER_LOOKUPS_TOTAL: &str = "neverust_dht_provider_lookups_total";
pub const DHT_PROVIDERS_FOUND_TOTAL: &str = "neverust_dht_providers_found_total";
pub const DHT_ANNOUNCEMENTS_TOTAL: &str = "neverust_dht_announcements_total";
pub const DHT_ANNOUNCEMENTS_WAITING: &str = "neverust_dht_announcements_waiting";
pub const BLOCKEXC_MESSAGE_BYTES_SENT_TOTAL: &str = "neverust_blockexc_message_bytes_sent_total";
pub const RECONCILE_SESSIONS_TOTAL: &str = "neverust_reconcile_sessions_total";
pub const RECONCILE_BYTES_TOTAL: &str = "neverust_reconcile_bytes_total";
pub const UNWANTED_BLOCKS_TOTAL: &str = "neverust_unwanted_blocks_total";

// A tiered node's, one series per tier (`tiers::TierCollector`).
pub const TIER_BLOCKS: &str = "neverust_tier_blocks";
pub const TIER_BYTES: &str = "neverust_tier_bytes";
pub const TIER_CAPACITY_BYTES: &str = "neverust_tier_capacity_bytes";
pub const TIER_HITS_TOTAL: &str = "neverust_tier_hits_total";
pub const TIER_MISSES_TOTAL: &str = "neverust_tier_misses_total";
pub const TIER_PROMOTIONS_TOTAL: &str = "neverust_tier_promotions_total";
pub const TIER_DEMOTIONS_TOTAL: &str = "neverust_tier_demotions_total";
pub const TIER_READ_LATENCY_SECONDS: &str = "neverust_tier_read_latency_seconds";

// The storage marketplace's (`market::metrics::MarketMetrics`).
pub const MARKET_PURCHASES: &str = "neverust_market_purchases";
pub const MARKET_SALES: &str = "neverust_market_sales";
pub const MARKET_PROOFS_TOTAL: &str = "neverust_market_proofs_total";
pub const MARKET_SLOTS_FILLED_TOTAL: &str = "neverust_market_slots_filled_total";
pub const MARKET_SLOTS_REPAIRED_TOTAL: &str = "neverust_market_slots_repaired_total";
pub const MARKET_SLOTS_REBUILT_TOTAL: &str = "neverust_market_slots_rebuilt_total";
pub const MARKET_LEDGER_ENTRIES: &str = "neverust_market_ledger_entries";

/// Every name above, for the test that checks a node exposes them.
pub const ALL: [&str; 49] = [
    NODE_INFO,
    BLOCK_COUNT,
    BLOCK_BYTES,
    QUOTA_MAX_BYTES,
    UPTIME_SECONDS,
    PROCESS_RESIDENT_MEMORY_BYTES,
    PROCESS_CPU_SECONDS,
    API_REQUESTS_TOTAL,
    API_REQUEST_DURATION_SECONDS,
    STORE_OP_DURATION_SECONDS,
    UPLOADS_TOTAL,
    UPLOAD_BYTES_TOTAL,
    DOWNLOADS_TOTAL,
    DOWNLOAD_BYTES_TOTAL,
    PEERS_CONNECTED,
    BLOCKS_SENT_TOTAL,
    BYTES_SENT_TOTAL,
    BLOCKS_RECEIVED_TOTAL,
    BYTES_RECEIVED_TOTAL,
    BLOCK_FETCH_LATENCY_SECONDS,
    WANTLIST_BLOCKS,
    PEER_WANTS_SERVED_TOTAL,
    MISBEHAVIOUR_TOTAL,
    PEERS_DISCONNECTED_FOR_MISBEHAVIOUR_TOTAL,
    REFUSED_FOR_CREDIT_TOTAL,
    LEDGER_BYTES,
    DHT_PROVIDER_LOOKUPS_TOTAL,
    DHT_PROVIDERS_FOUND_TOTAL,
    DHT_ANNOUNCEMENTS_TOTAL,
    DHT_ANNOUNCEMENTS_WAITING,
    BLOCKEXC_MESSAGE_BYTES_SENT_TOTAL,
    RECONCILE_SESSIONS_TOTAL,
    RECONCILE_BYTES_TOTAL,
    UNWANTED_BLOCKS_TOTAL,
    TIER_BLOCKS,
    TIER_BYTES,
    TIER_CAPACITY_BYTES,
    TIER_HITS_TOTAL,
    TIER_MISSES_TOTAL,
    TIER_PROMOTIONS_TOTAL,
    TIER_DEMOTIONS_TOTAL,
    TIER_READ_LATENCY_SECONDS,
    MARKET_PURCHASES,
    MARKET_SALES,
    MARKET_PROOFS_TOTAL,
    MARKET_SLOTS_FILLED_TOTAL,
    MARKET_SLOTS_REPAIRED_TOTAL,
    MARKET_SLOTS_REBUILT_TOTAL,
    MARKET_LEDGER_ENTRIES,
];
