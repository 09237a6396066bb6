#!/usr/bin/env python3
"""Writes Neverust's Grafana dashboards (dashboards/*.json) from the panel lists below.

The JSON files are what Grafana loads (Compose mounts them, Kubernetes ships them as
ConfigMaps); this script is their one source, so a panel is a line here rather than forty
lines of hand-edited JSON. `--check` fails when the files differ from what it would write
(scripts/test.sh runs it), and the dashboard test evaluates every expression in the files
against a real Prometheus scraping a real cluster.

Every series comes from the nodes' own /metrics. Targets carry the labels `node` (index),
`role` (bootstrap or node) and `mode` (altruistic or marketplace), set by the scrape
config of the native cluster, Compose and Kubernetes alike.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "neverust-prometheus"}
RATE = "[$__rate_interval]"
JOB = 'job="neverust"'

# The visualizer's colours, so a mode looks the same everywhere.
COLOURS = {"altruistic": "#1f77b4", "marketplace": "#9467bd"}


def target(expr, legend="", ref="A"):
    return {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}


def panel(kind, title, targets, unit="short", description="", w=12, h=8, **options):
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(*t, ref=chr(ord("A") + i)) for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "gridPos": {"w": w, "h": h},
        "options": options,
    }
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {"lineWidth": 1, "fillOpacity": 10}
    return p


def stat(title, expr, unit="short", legend="", description=""):
    return panel("stat", title, [(expr, legend)], unit, description, w=4, h=4,
                 reduceOptions={"calcs": ["lastNotNull"]}, colorMode="value")


def series(title, targets, unit="short", description="", w=12):
    return panel("timeseries", title, targets, unit, description, w=w,
                 legend={"displayMode": "list", "placement": "bottom"},
                 tooltip={"mode": "multi"})


def by_mode(p):
    p["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byName", "options": mode},
         "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}]}
        for mode, colour in COLOURS.items()
    ]
    return p


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"w": 24, "h": 1}}


def quantiles(metric, by="", selector=""):
    group = f"le{', ' + by if by else ''}"
    legend_by = f"{{{{{by}}}}} " if by else ""
    return [
        (f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{selector}{RATE})))",
         f"{legend_by}p{int(q * 100)}")
        for q in (0.5, 0.9, 0.99)
    ]


# Tier series carry `tier` (kind and position: memory0, ssd1, hdd2) and `emulated`; every
# legend shows both, so a lab tier slowed down on purpose is never read as a real device.
TIER = "tier, emulated"
TIER_LEGEND = "{{tier}} emulated={{emulated}}"


def tier_panels(selector=""):
    """Hit ratio, fill, moves and read latency per tier. Summed by tier (over nodes on the
    overview), so a tier that moved nothing in the window shows 0 rather than no series."""

    def rate(metric):
        return f"sum by ({TIER}) (rate({metric}{selector}{RATE}))"

    hits, misses = rate("neverust_tier_hits_total"), rate("neverust_tier_misses_total")
    latency = [
        (f"histogram_quantile({q}, sum by (le, {TIER}) "
         f"(rate(neverust_tier_read_latency_seconds_bucket{selector}{RATE})))",
         f"{TIER_LEGEND} p{int(q * 100)}")
        for q in (0.5, 0.99)
    ]
    return [
        row("Tiers"),
        series("Tier hit ratio", [(f"{hits} / ({hits} + {misses})", TIER_LEGEND)],
               "percentunit",
               "Reads a tier served over reads that looked in it (a miss goes on to a slower "
               "tier); no value while a tier is not read", w=8),
        series("Tier bytes vs capacity", [
            (f"sum by ({TIER}) (neverust_tier_bytes{selector})", f"{TIER_LEGEND} stored"),
            (f"sum by ({TIER}) (neverust_tier_capacity_bytes{selector})",
             f"{TIER_LEGEND} capacity"),
        ], "bytes", "Block data each tier holds, and the size --tier gave it", w=8),
        series("Tier blocks", [(f"sum by ({TIER}) (neverust_tier_blocks{selector})", TIER_LEGEND)],
               w=8),
        series("Tier promotions and demotions", [
            (rate("neverust_tier_promotions_total"), f"{TIER_LEGEND} promoted"),
            (rate("neverust_tier_demotions_total"), f"{TIER_LEGEND} demoted"),
        ], description="Blocks moved into a tier from a slower one, and out of it to a slower "
                       "one, per second (memory: copies admitted and evicted)"),
        series("Tier read latency p50 and p99", latency, "s",
               "Block reads each tier served, emulated delays included"),
    ]


def market_panels(match=""):
    """The storage marketplace: purchases (a client's storage requests) and sales (a host's
    slots) by state, storage proofs by outcome, and slots filled, repaired (taken over from
    a lost host) and rebuilt (coded from the other slots when their blocks could not be
    fetched). `match` narrows every series to one node (`node="$node"`); without it the
    panels sum the cluster and count proofs as the validators resolved them."""

    def sel(*more):
        labels = ", ".join(m for m in (match, *more) if m)
        return f"{{{labels}}}" if labels else ""

    def by_state(metric):
        return [(f"sum by (state) ({metric}{sel()})", "{{state}}")]

    # A node's own view counts both its roles; the cluster's counts each challenge once,
    # as the validator that issued it resolved it. The proofs' own `role` label (host,
    # validator) meets the `role` every scrape config gives its targets (bootstrap, node):
    # Prometheus keeps the target's and renames the metric's `exported_role`, in the native
    # cluster, Compose and Kubernetes alike.
    validators = sel('exported_role="validator"')
    if match:
        proofs = ("sum by (exported_role, outcome) "
                  f"(rate(neverust_market_proofs_total{sel()}{RATE}))",
                  "{{exported_role}} {{outcome}}")
    else:
        proofs = (f"sum by (outcome) (rate(neverust_market_proofs_total{validators}{RATE}))",
                  "{{outcome}}")
    slots = [
        (f"sum(increase(neverust_market_slots_{kind}_total{sel()}{RATE}))", kind)
        for kind in ("filled", "repaired", "rebuilt")
    ]
    return [
        row("Marketplace"),
        series("Purchases by state", by_state("neverust_market_purchases"),
               description="Storage requests made by marketplace nodes, by purchase state "
                           "(every state is a series, 0 when empty)", w=6),
        series("Sales by state", by_state("neverust_market_sales"),
               description="Slots marketplace nodes host or are taking, by sale state", w=6),
        series("Proofs by outcome", [proofs], "ops",
               "Storage proofs resolved per second: verified, invalid, or missed (no answer "
               "before the deadline: the slot is freed for repair)", w=6),
        series("Slots filled, repaired, rebuilt", slots,
               description="Slots filled by hosts in the window; repaired: taken over after "
                           "their host lost them; rebuilt: coded from the other slots", w=6),
    ]


def overview():
    return "Neverust cluster", "neverust-overview", [], [
        row("Cluster"),
        stat("Nodes up", f"sum(up{{{JOB}}})",
             description="Nodes Prometheus scraped successfully at the last scrape"),
        stat("Nodes down", f"count(up{{{JOB}}} == 0) or vector(0)",
             description="Targets in the scrape list that did not answer"),
        stat("Blocks stored", "sum(neverust_block_count)",
             description="Blocks held by all nodes (a block on two nodes counts twice)"),
        stat("Data stored", "sum(neverust_block_bytes)", "bytes"),
        stat("Transfer rate", f"sum(rate(neverust_bytes_received_total{RATE}))", "Bps",
             description="Verified block bytes received from peers, all nodes"),
        stat("API 5xx", f'sum(rate(neverust_api_requests_total{{status=~"5.."}}{RATE})) or vector(0)',
             "reqps"),
        row("Storage"),
        series("Blocks per node", [("neverust_block_count", "node {{node}}")]),
        series("Data per node", [("neverust_block_bytes", "node {{node}}")], "bytes"),
        row("Block exchange"),
        series("Cluster transfer rate", [
            (f"sum(rate(neverust_bytes_sent_total{RATE}))", "sent"),
            (f"sum(rate(neverust_bytes_received_total{RATE}))", "received"),
        ], "Bps"),
        series("Received per node",
               [(f"sum by (node) (rate(neverust_bytes_received_total{RATE}))", "node {{node}}")],
               "Bps"),
        series("Block fetch latency (all nodes)", quantiles("neverust_block_fetch_latency_seconds"),
               "s", "From asking a peer for a block to holding it verified"),
        series("Peers per node", [("neverust_peers_connected", "node {{node}}")],
               description="Peers with an open libp2p connection"),
        series("DHT provider lookups", [
            (f"sum(rate(neverust_dht_provider_lookups_total{RATE}))", "lookups/s"),
            (f"sum(rate(neverust_dht_providers_found_total{RATE}))", "providers found/s"),
            (f"sum(rate(neverust_dht_announcements_total{RATE}))", "announcements/s"),
            ("sum(neverust_dht_announcements_waiting)", "announcements waiting"),
        ]),
        series("Wantlists", [("sum(neverust_wantlist_blocks)", "blocks wanted, not yet received")]),
        *tier_panels(),
        *market_panels(),
        row("REST API"),
        series("Requests by route",
               [(f"sum by (route) (rate(neverust_api_requests_total{RATE}))", "{{route}}")],
               "reqps"),
        series("Errors by route and status", [(
            f'sum by (route, status) (rate(neverust_api_requests_total{{status=~"[45].."}}{RATE}))',
            "{{status}} {{route}}")], "reqps"),
        series("Latency p99 by route", [(
            "histogram_quantile(0.99, sum by (le, route) "
            f"(rate(neverust_api_request_duration_seconds_bucket{RATE})))", "{{route}}")], "s"),
        series("Uploads and downloads", [
            (f"sum(rate(neverust_upload_bytes_total{RATE}))", "uploaded"),
            (f"sum(rate(neverust_download_bytes_total{RATE}))", "downloaded"),
        ], "Bps"),
        row("Resources"),
        series("Memory (RSS) per node",
               [("neverust_process_resident_memory_bytes", "node {{node}}")], "bytes"),
        series("CPU per node", [(f"rate(neverust_process_cpu_seconds{RATE})", "node {{node}}")],
               "percentunit", "Share of one core"),
        row("Altruistic vs marketplace"),
        by_mode(panel("piechart", "Nodes by mode",
                      [("count by (mode) (neverust_node_info)", "{{mode}}")],
                      w=6, reduceOptions={"calcs": ["lastNotNull"]}, pieType="donut")),
        by_mode(series("Data stored by mode",
                       [("sum by (mode) (neverust_block_bytes)", "{{mode}}")], "bytes", w=6)),
        by_mode(series("Bytes served by mode", [
            (f"sum by (mode) (rate(neverust_bytes_sent_total{RATE}))", "{{mode}}")], "Bps", w=6)),
        series("Refused for credit", [
            (f"sum(rate(neverust_refused_for_credit_total{RATE}))", "refused/s")],
               "reqps", "Block requests marketplace nodes refused: the peer's credit ran out", w=6),
    ]


def node_detail():
    n = '{node="$node"}'
    variable = {
        "name": "node",
        "label": "Node",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": "label_values(neverust_node_info, node)", "refId": "node"},
        "definition": "label_values(neverust_node_info, node)",
        "refresh": 2,
        "sort": 3,
        "current": {},
    }

    def on(metric):
        return f"{metric}{n}"

    return "Neverust node", "neverust-node", [variable], [
        row("Node $node"),
        stat("Up", f'up{{{JOB}, node="$node"}}'),
        stat("Mode", on("neverust_node_info"), legend="{{mode}} ({{role}})"),
        stat("Uptime", on("neverust_uptime_seconds"), "s"),
        stat("Peers", on("neverust_peers_connected")),
        stat("Blocks", on("neverust_block_count")),
        stat("Quota used", f"{on('neverust_block_bytes')} / {on('neverust_quota_max_bytes')}",
             "percentunit"),
        row("Block exchange"),
        series("Transfer rate", [
            (f"sum(rate({on('neverust_bytes_sent_total')}{RATE}))", "sent"),
            (f"sum(rate({on('neverust_bytes_received_total')}{RATE}))", "received"),
        ], "Bps"),
        series("Blocks per second", [
            (f"sum(rate({on('neverust_blocks_sent_total')}{RATE}))", "sent"),
            (f"sum(rate({on('neverust_blocks_received_total')}{RATE}))", "received"),
            (f"rate({on('neverust_peer_wants_served_total')}{RATE})", "wants served"),
        ]),
        series("Block fetch latency", quantiles("neverust_block_fetch_latency_seconds", selector=n), "s"),
        series("Wantlist and DHT", [
            (on("neverust_wantlist_blocks"), "blocks wanted"),
            (f"rate({on('neverust_dht_provider_lookups_total')}{RATE})", "DHT lookups/s"),
            (f"rate({on('neverust_dht_providers_found_total')}{RATE})", "providers found/s"),
            (f"rate({on('neverust_dht_announcements_total')}{RATE})", "announcements/s"),
            (on("neverust_dht_announcements_waiting"), "announcements waiting"),
        ]),
        series("Misbehaving peers", [
            (f"sum by (reason) (rate({on('neverust_misbehaviour_total')}{RATE}))", "{{reason}}")],
               description="Offences by peers: malformed or oversize messages, bad hashes or proofs"),
        series("Stored", [(on("neverust_block_bytes"), "bytes")], "bytes"),
        *tier_panels(n),
        *market_panels('node="$node"'),
        row("REST API and store"),
        series("Requests by route and status", [
            (f"sum by (route, status) (rate({on('neverust_api_requests_total')}{RATE}))",
             "{{status}} {{route}}")], "reqps"),
        series("Latency p50 by route", quantiles("neverust_api_request_duration_seconds", "route", n)[:1],
               "s"),
        series("Store operation latency p50",
               quantiles("neverust_store_op_duration_seconds", "op", n)[:1], "s"),
        series("Uploads and downloads", [
            (f"rate({on('neverust_upload_bytes_total')}{RATE})", "uploaded"),
            (f"rate({on('neverust_download_bytes_total')}{RATE})", "downloaded"),
        ], "Bps"),
        row("Resources"),
        series("Memory (RSS)", [(on("neverust_process_resident_memory_bytes"), "RSS")], "bytes"),
        series("CPU", [(f"rate({on('neverust_process_cpu_seconds')}{RATE})", "CPU")], "percentunit"),
    ]


def layout(panels):
    """Grafana wants every panel placed: rows span the width, others flow left to right."""
    x, y, line = 0, 0, 0
    for i, p in enumerate(panels):
        p["id"] = i + 1
        g = p["gridPos"]
        if p["type"] == "row" or x + g["w"] > 24:
            x, y = 0, y + line
            line = 0
        g["x"], g["y"] = x, y
        x += g["w"]
        line = max(line, g["h"])
        if p["type"] == "row":
            x, y, line = 0, y + g["h"], 0
    return panels


def dashboard(title, uid, variables, panels):
    return {
        "title": title,
        "uid": uid,
        "tags": ["neverust"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"title": "Neverust dashboards", "type": "dashboards", "tags": ["neverust"]}],
        "panels": layout(panels),
    }


FILES = {"cluster-overview.json": overview, "node-detail.json": node_detail}


def render(make):
    return json.dumps(dashboard(*make()), indent=2) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, make in FILES.items():
        path = HERE / "dashboards" / name
        text = render(make)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python3 deploy/grafana/dashboards.py): " + ", ".join(stale),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
