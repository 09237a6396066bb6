//! The parts of the report that frame the scenarios: run header and checks, the
//! baselines the ratios refer to, the cluster under test, and what the figures mean.

use crate::results::{Baseline, Checks, ClusterSummary, Results};

use super::html::{self, escape, kv_table, Section};

/// Run metadata and the checks box, shown above the table of contents.
pub fn header(r: &Results) -> String {
    let m = &r.machine;
    let s = &r.settings;
    let memory_gib = m.memory_bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    let started = if r.started_at.is_empty() {
        html::MISSING
    } else {
        &r.started_at
    };
    let items = [
        ("Started", started.to_string()),
        ("Duration", html::duration(r.seconds)),
        ("Cores", m.cores.to_string()),
        ("Memory", format!("{} GiB", html::num(memory_gib, 1))),
        ("Kernel", or_missing(&m.kernel)),
        ("Scenarios", or_missing(&s.scenarios.join(", "))),
        ("Nodes", s.nodes.to_string()),
        ("Quick", if s.quick { "yes" } else { "no" }.to_string()),
        ("Seed", s.seed.to_string()),
        ("Schema", r.schema_version.to_string()),
    ];
    let mut out = String::from("<div class=\"meta\">\n");
    for (k, v) in items {
        out += &format!("<div><span>{k}:</span> {}</div>\n", escape(&v));
    }
    out += "</div>\n";
    out + &checks(&r.checks)
}

fn or_missing(s: &str) -> String {
    if s.is_empty() {
        html::MISSING.into()
    } else {
        s.into()
    }
}

/// Totals a CI run asserts on; a lost acknowledged upload is the one figure that must be 0.
fn checks(c: &Checks) -> String {
    let lost_class = if c.acknowledged_lost > 0 {
        "bad"
    } else {
        "good"
    };
    let errors_class = if c.errors > 0 { "warn" } else { "" };
    let boxes = [
        ("uploads acknowledged", c.uploads_acknowledged, ""),
        ("uploads verified", c.uploads_verified, ""),
        ("downloads verified", c.downloads_verified, ""),
        ("acknowledged lost", c.acknowledged_lost, lost_class),
        ("errors", c.errors, errors_class),
    ];
    let mut out = String::from("<h2>Checks</h2>\n<div class=\"checks\" id=\"checks\">\n");
    for (label, value, class) in boxes {
        out += &format!(
            "<div class=\"check {class}\"><span class=\"v\">{value}</span><span class=\"k\">{label}</span></div>\n"
        );
    }
    out + "</div>\n"
}

pub fn baseline(b: &Baseline) -> Section {
    let body = kv_table(vec![
        (
            "sha256, one core (MiB/s)",
            html::measured_rate(b.sha256_mib_s).into(),
        ),
        (
            "loopback TCP, one stream (MiB/s)",
            html::measured_rate(b.loopback_tcp_mib_s).into(),
        ),
    ]) + &html::paragraph(
        "Figures below are given as ratios to these baselines, measured in the same run on \
         the same machine, so runs on differently loaded machines can be compared.",
    );
    Section::new("baseline", "Baseline", body)
}

pub fn cluster(c: Option<&ClusterSummary>) -> Option<Section> {
    let c = c?;
    let idle = &c.idle;
    let body = kv_table(vec![
        ("nodes", c.nodes.into()),
        ("marketplace nodes", c.marketplace_nodes.into()),
        ("ready (s)", html::num(c.ready_seconds, 2).into()),
        ("idle RSS mean (MiB)", html::mib(idle.rss_mean_bytes).into()),
        (
            "idle RSS max (MiB)",
            html::mib(idle.rss_max_bytes as f64).into(),
        ),
        (
            "idle CPU mean (% of a core)",
            html::num(idle.cpu_mean_percent, 2).into(),
        ),
        (
            "idle CPU max (% of a core)",
            html::num(idle.cpu_max_percent, 2).into(),
        ),
    ]);
    Some(Section::new("cluster", "Cluster", body))
}

/// Static explanations, so a reader new to the lab can read every figure.
pub fn explanations() -> Section {
    let items: [(&str, &str); 9] = [
        (
            "Ratios",
            "A throughput divided by a baseline from the same run (sha256 for uploads, \
             loopback TCP for transfers). Shared machines vary; ratios vary less, so compare \
             ratios across runs rather than MiB/s.",
        ),
        (
            "p50 / p99",
            "The median and the 99th percentile of a latency sample: half of the operations \
             were faster than p50, and one in a hundred was slower than p99.",
        ),
        (
            "CDF",
            "For each latency on x, the fraction of operations that finished at or below it. \
             A curve further left is faster; a long flat tail on the right shows outliers.",
        ),
        (
            "TTFB",
            "Time to first byte: from sending a download request until the first byte of the \
             file arrived, which includes finding a peer that has it.",
        ),
        (
            "Blocks/s",
            "Blocks delivered per second by the block exchange across all concurrent \
             downloads; the unit the exchange works in, independent of file size.",
        ),
        (
            "Swarm",
            "Several nodes download the same dataset at once and can fetch blocks from each \
             other as well as from the origin; the aggregate rate is their summed bytes over \
             the wall-clock time.",
        ),
        (
            "Lost",
            "Uploads that a node acknowledged but that could not be downloaded again after \
             the faults. It must be zero.",
        ),
        (
            "Heal time",
            "After a network partition is removed, the time until a download across the \
             former split succeeds again.",
        ),
        (
            "Repair time",
            "After a marketplace host is killed, the time until another host holds the slot \
             it lost: the validators must first see its proofs missed, which frees the slot, \
             then a host fetches or rebuilds the slot's blocks and fills it with a proof.",
        ),
    ];
    let mut body = String::from("<dl>\n");
    for (term, text) in items {
        body += &format!("<dt>{}</dt><dd>{}</dd>\n", escape(term), escape(text));
    }
    body += "</dl>\n";
    Section::new("meaning", "What the figures mean", body)
}
