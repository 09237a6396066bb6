// The visualizer page: draws each snapshot the server pushes (crates/lab/src/viz).
// It invents nothing: circles are the nodes the snapshot lists, lines the connections
// they report, numbers the snapshot's own; a figure the server could not measure yet
// (a rate before its second poll) is shown as a dash, never as zero.
"use strict";

const ROLE_COLORS = {
  bootstrap: "#e74c3c",
  altruistic: "#3498db",
  marketplace: "#9b59b6",
  unknown: "#7f8c8d",
};
const DOWN_COLOR = "#b8bec6";
const MIB = 1024 * 1024;
// Storage requests get colours unlike the roles' and the busy edges' orange; a request
// keeps the first it got for as long as the page is open, while its hosts come and go.
const REQUEST_PALETTE = ["#2ecc71", "#f1c40f", "#1abc9c", "#fd79a8", "#c8e650", "#00d2ff", "#ffffff", "#ff7675"];
const requestColors = new Map();

// What the tests (and curious users, from the console) can read.
// `updateMs`: how long drawing the last snapshot took (scripts/viz-scale.py reads it).
const state = { snapshot: null, frames: 0, connected: false, updateMs: 0 };
window.neverustViz = state;

const svg = d3.select("#graph");
const world = svg.append("g");
// Under the nodes: a client's dashed lines to the hosts of its requests, and a ring around
// a host per request it holds slots of.
const marketLinkLayer = world.append("g").attr("class", "market-links");
const ringLayer = world.append("g").attr("class", "rings");
const nodeLayer = world.append("g").attr("class", "nodes");
const canvas = document.getElementById("edges");
const edges = edgeRenderer(canvas);
canvas.dataset.renderer = edges.kind;
let zoomTransform = d3.zoomIdentity;
let edgeWidth = () => 1;
let circles = nodeLayer.selectAll("circle");
let rings = ringLayer.selectAll("circle");
let marketLinks = marketLinkLayer.selectAll("line");
const tooltip = document.getElementById("tooltip");

// Simulation objects by node id: they keep their position across snapshots, so the
// graph does not jump every 2 s.
const simNodes = new Map();
let simLinks = [];
let topology = "";
let hovered = null;
// Sequence numbers restart with the server: reset on every (re)connection.
let lastSeq = 0;

const simulation = d3
  .forceSimulation()
  // d3's default link strength (1 / the smaller degree): a near-complete mesh of 200
  // nodes would otherwise collapse into a point.
  .force("link", d3.forceLink().id((d) => d.id).distance(90))
  .force("charge", d3.forceManyBody().strength(-260).distanceMax(500))
  .force("center", d3.forceCenter(0, 0))
  .force("x", d3.forceX(0).strength(0.04))
  .force("y", d3.forceY(0).strength(0.04))
  .force("collide", d3.forceCollide(12))
  .on("tick", draw);

const zoom = d3
  .zoom()
  .scaleExtent([0.1, 8])
  .on("zoom", (event) => {
    zoomTransform = event.transform;
    world.attr("transform", event.transform);
    draw();
  });
svg.call(zoom);

// The first layout fills most of the view: a 4-node cluster is not a speck, a 200-node
// one not cut off. Zooming and panning are the user's after that.
function fitView() {
  const nodes = simulation.nodes();
  if (!nodes.length) return;
  const [x0, x1] = d3.extent(nodes, (d) => d.x);
  const [y0, y1] = d3.extent(nodes, (d) => d.y);
  const r = svg.node().getBoundingClientRect();
  const k = Math.min(1.8, 0.85 * Math.min(r.width / (x1 - x0 + 60), r.height / (y1 - y0 + 60)));
  const t = d3.zoomIdentity.scale(k).translate(-(x0 + x1) / 2, -(y0 + y1) / 2);
  svg.call(zoom.transform, t);
}

function resize() {
  const r = svg.node().getBoundingClientRect();
  svg.attr("viewBox", [-r.width / 2, -r.height / 2, r.width, r.height]);
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(r.width * dpr);
  canvas.height = Math.round(r.height * dpr);
  if (simNodes.size) draw();
}
window.addEventListener("resize", resize);
resize();

const drag = d3
  .drag()
  .on("start", (event, d) => {
    if (!event.active) simulation.alphaTarget(0.2).restart();
    d.fx = d.x;
    d.fy = d.y;
  })
  .on("drag", (event, d) => {
    d.fx = event.x;
    d.fy = event.y;
  })
  .on("end", (event, d) => {
    if (!event.active) simulation.alphaTarget(0);
    d.fx = null;
    d.fy = null;
  });

function color(n) {
  return n.up ? ROLE_COLORS[n.role] || ROLE_COLORS.unknown : DOWN_COLOR;
}

function requestColor(id) {
  if (!requestColors.has(id)) {
    requestColors.set(id, REQUEST_PALETTE[requestColors.size % REQUEST_PALETTE.length]);
  }
  return requestColors.get(id);
}

function shortId(id) {
  return id.length > 12 ? id.slice(0, 6) + "…" + id.slice(-4) : id;
}

function nodeRadius(n) {
  return n.role === "bootstrap" ? 11 : 7;
}

function update(snapshot) {
  // The first fetch and the socket's first frame can be the same poll: draw it once.
  if (snapshot.seq <= lastSeq) return;
  lastSeq = snapshot.seq;
  const t0 = performance.now();
  state.snapshot = snapshot;
  state.frames += 1;
  const first = simNodes.size === 0;

  const ids = new Set(snapshot.nodes.map((n) => n.id));
  for (const id of simNodes.keys()) if (!ids.has(id)) simNodes.delete(id);
  for (const n of snapshot.nodes) {
    let s = simNodes.get(n.id);
    if (!s) {
      // A newcomer starts near a node it is connected to, else near the centre.
      const edge = snapshot.edges.find((e) => e.source === n.id || e.target === n.id);
      const peer = edge && simNodes.get(edge.source === n.id ? edge.target : edge.source);
      s = {
        id: n.id,
        x: (peer ? peer.x : 0) + (Math.random() - 0.5) * 40,
        y: (peer ? peer.y : 0) + (Math.random() - 0.5) * 40,
      };
      simNodes.set(n.id, s);
    }
    s.data = n;
  }
  simLinks = snapshot.edges.map((e) => ({
    key: e.source + "|" + e.target,
    source: e.source,
    target: e.target,
    rate: e.bytes_per_s,
  }));
  const nodesArr = Array.from(simNodes.values());
  simulation.nodes(nodesArr);
  simulation.force("link").links(simLinks);
  const nodeShape = nodesArr.map((n) => n.id).join(",");
  const shape = nodeShape + "/" + simLinks.map((l) => l.key).join(",");
  if (first) {
    // Settle the first layout before showing it, rather than letting it fly in.
    simulation.stop();
    for (let i = 0; i < 300; i++) simulation.tick();
    render();
    fitView();
  } else if (!topology.startsWith(nodeShape + "/")) {
    simulation.alpha(0.3).restart();
  } else if (shape !== topology) {
    // Only connections changed (a large cluster's change every poll): a nudge, not a
    // new layout.
    simulation.alpha(Math.max(simulation.alpha(), 0.05)).restart();
  }
  topology = shape;

  render();
  stats(snapshot);
  if (hovered) showTooltip(hovered);
  svg.attr("data-seq", snapshot.seq);
  state.updateMs = performance.now() - t0;
}

function render() {
  const maxRate = d3.max(simLinks, (l) => l.rate || 0) || 0;
  edgeWidth = d3.scaleSqrt().domain([0, Math.max(maxRate, MIB)]).range([1.5, 9]);
  circles = nodeLayer
    .selectAll("circle")
    .data(simulation.nodes(), (d) => d.id)
    .join((enter) =>
      enter
        .append("circle")
        .call(drag)
        .on("mouseenter", (event, d) => {
          hovered = d;
          showTooltip(d, event);
        })
        .on("mousemove", (event, d) => showTooltip(d, event))
        .on("mouseleave", () => {
          hovered = null;
          tooltip.hidden = true;
        })
    )
    .attr("r", (d) => nodeRadius(d.data))
    .attr("fill", (d) => color(d.data))
    .attr("data-id", (d) => d.id)
    .attr("data-role", (d) => d.data.role)
    .attr("data-up", (d) => String(d.data.up))
    .classed("down", (d) => !d.data.up);
  renderMarket();
  draw();
}

// A ring per request a host holds slots of (the snapshot's order, so rings keep their
// places), and a dashed line from each request's client to each of its hosts.
function renderMarket() {
  const requests = (state.snapshot && state.snapshot.requests) || [];
  const order = new Map(requests.map((r, i) => [r.id, i]));
  const ringData = simulation.nodes().flatMap((d) => {
    const held = [...new Set((d.data.slots || []).map((s) => s.request))].sort(
      (a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0)
    );
    return held.map((request, k) => ({
      key: d.id + "|" + request,
      node: d,
      request,
      r: nodeRadius(d.data) + 4 + 3.5 * k,
    }));
  });
  rings = ringLayer
    .selectAll("circle")
    .data(ringData, (r) => r.key)
    .join("circle")
    .attr("r", (r) => r.r)
    // A style, not an attribute: the page's `circle` rule would win over an attribute.
    .style("stroke", (r) => requestColor(r.request))
    .attr("data-node", (r) => r.node.id)
    .attr("data-request", (r) => r.request);
  const linkData = requests.flatMap((r) =>
    r.client && simNodes.has(r.client)
      ? r.hosts
          .filter((h) => simNodes.has(h.node))
          .map((h) => ({
            key: r.id + "|" + h.node,
            source: simNodes.get(r.client),
            target: simNodes.get(h.node),
            request: r.id,
          }))
      : []
  );
  marketLinks = marketLinkLayer
    .selectAll("line")
    .data(linkData, (l) => l.key)
    .join("line")
    .style("stroke", (l) => requestColor(l.request))
    .attr("data-request", (l) => l.request);
}

function draw() {
  drawEdges();
  marketLinks
    .attr("x1", (l) => l.source.x)
    .attr("y1", (l) => l.source.y)
    .attr("x2", (l) => l.target.x)
    .attr("y2", (l) => l.target.y);
  rings.attr("cx", (r) => r.node.x).attr("cy", (r) => r.node.y);
  circles.attr("cx", (d) => d.x).attr("cy", (d) => d.y);
}

// The canvas says how many connections it drew, for the tests.
function drawEdges() {
  const drawn = edges.draw(simLinks, zoomTransform, edgeWidth);
  canvas.dataset.edges = String(drawn.idle + drawn.active);
  canvas.dataset.active = String(drawn.active);
}

function bytes(b) {
  if (b === null || b === undefined || !isFinite(b)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = b;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return (u === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[u];
}

function rate(r) {
  return r === null || r === undefined ? "–" : bytes(r) + "/s";
}

function setStat(id, value, text) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.dataset.value = value === null || value === undefined ? "" : String(value);
}

function stats(s) {
  setStat("stat-nodes", s.stats.active_nodes, String(s.stats.active_nodes));
  setStat("stat-blocks", s.stats.total_blocks, d3.format(",")(s.stats.total_blocks));
  setStat("stat-bytes", s.stats.total_bytes, bytes(s.stats.total_bytes));
  setStat("stat-speed", s.stats.transfer_bytes_per_s, rate(s.stats.transfer_bytes_per_s));
  const down = s.nodes.length - s.stats.active_nodes;
  document.getElementById("updated").textContent =
    `Poll ${s.seq} at ${new Date(s.unix_ms).toLocaleTimeString()}: ${s.nodes.length} nodes` +
    (down ? ` (${down} not answering)` : "") +
    `, ${s.edges.length} connections; every ${s.interval_seconds} s (this poll took ` +
    `${Math.round(s.poll_seconds * 1000)} ms).`;
  const err = document.getElementById("source-error");
  err.hidden = !s.source_error;
  err.textContent = s.source_error ? "Cannot read the node list: " + s.source_error : "";
  document.getElementById("source").textContent = "Nodes from " + s.source + ".";
  requestLegend(s);
}

// Each storage request some node holds slots of: its colour, its id, how many slots are
// held and by which nodes, and whose it is.
function requestLegend(s) {
  const list = document.getElementById("requests");
  const index = new Map(s.nodes.map((n) => [n.id, n.index]));
  const name = (id) => (index.get(id) === null || index.get(id) === undefined ? shortId(id) : `node ${index.get(id)}`);
  const items = (s.requests || []).map((r) => {
    const li = document.createElement("li");
    li.dataset.request = r.id;
    li.dataset.slots = String(r.hosts.length);
    const dot = document.createElement("span");
    dot.className = "ring";
    dot.style.borderColor = requestColor(r.id);
    const text = document.createElement("span");
    const hosts = r.hosts.map((h) => `${h.slot_index}: ${name(h.node)}`).join(", ");
    text.textContent =
      `${shortId(r.id)}: ${r.hosts.length} slot${r.hosts.length === 1 ? "" : "s"} (${hosts})` +
      (r.client ? `, client ${name(r.client)}` : "");
    li.append(dot, text);
    return li;
  });
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "no slots held";
    items.push(li);
  }
  list.replaceChildren(...items);
}

// A tier as the node reports it: blocks, bytes of its capacity, the share of the reads that
// looked in it which it served (since the node started), and whether its speed is emulated.
function tierRow(t) {
  const ratio = t.hit_ratio === null || t.hit_ratio === undefined
    ? "no reads yet" : `hit ${(t.hit_ratio * 100).toFixed(1)} %`;
  const parts = [
    `${d3.format(",")(t.blocks)} blocks`,
    `${bytes(t.bytes)} of ${bytes(t.capacity_bytes)}`,
    ratio,
  ];
  if (t.emulated) parts.push("emulated");
  return [`tier ${t.tier}`, parts.join(" · ")];
}

function showTooltip(d, event) {
  const n = d.data;
  const rows = [
    ["peer id", n.peer_id || "(not known yet)"],
    ["node", n.index === null || n.index === undefined ? "–" : String(n.index)],
    ["role", n.role + (n.role !== n.mode ? ` (${n.mode})` : "")],
    ["status", n.up ? "answering" : "not answering" + (n.error ? ": " + n.error : "")],
    ["blocks", d3.format(",")(n.blocks)],
    ["data", bytes(n.bytes)],
    ["peers", String(n.peers)],
    ["RSS", bytes(n.rss_bytes)],
    ["CPU", n.cpu_percent === null || n.cpu_percent === undefined ? "–" : n.cpu_percent.toFixed(1) + " %"],
    ["sending", rate(n.sent_bytes_per_s)],
    ["receiving", rate(n.received_bytes_per_s)],
    ["API", n.api_url],
    ...((n.slots || []).length
      ? [["slots", n.slots.map((x) => `${shortId(x.request)} #${x.slot_index}`).join(", ")]]
      : []),
    ...((n.purchases || []).length ? [["requests made", String(n.purchases.length)]] : []),
    // One row per tier, fastest first, labelled as its metrics are (memory0, ssd1, ...).
    ...(n.tiers || []).map(tierRow),
  ];
  const table = document.createElement("table");
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    const th = document.createElement("th");
    th.textContent = k;
    tr.appendChild(th);
    tr.insertCell().textContent = v;
  }
  tooltip.replaceChildren(table);
  tooltip.dataset.id = n.id;
  tooltip.hidden = false;
  if (event) {
    tooltip.style.left = Math.min(event.clientX + 14, window.innerWidth - 430) + "px";
    tooltip.style.top = Math.min(event.clientY + 14, window.innerHeight - 380) + "px";
  }
}

function setStatus(kind, text) {
  const el = document.getElementById("status");
  el.className = kind;
  el.textContent = text;
  state.connected = kind === "connected";
  document.body.classList.toggle("stale", kind === "disconnected");
}

// The socket pushes a snapshot every poll; when the server goes away the page says so,
// greys the graph and reconnects by itself, backing off up to 5 s.
let retryMs = 1000;
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  ws.onopen = () => {
    retryMs = 1000;
    lastSeq = 0;
    setStatus("connected", "Connected to visualizer");
  };
  ws.onmessage = (event) => update(JSON.parse(event.data));
  ws.onclose = () => {
    setStatus("disconnected", `Disconnected from the visualizer server: retrying every ${retryMs / 1000} s`);
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  };
}

// The latest snapshot at once (also what a one-shot headless screenshot sees), then the
// socket for the rest.
fetch("snapshot.json")
  .then((r) => (r.ok ? r.json() : null))
  .then((s) => s && update(s))
  .catch(() => {})
  .finally(connect);
