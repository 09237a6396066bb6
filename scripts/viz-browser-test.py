#!/usr/bin/env python3
"""The visualizer page in a real headless Chromium (Debian's `chromium`, driven by
Playwright) against a real 4-node cluster on 127.0.0.1.

Asserts what a person would check: the page says "Connected"; one circle per node in its
role's colour; as many lines as the snapshot has connections; the stats panel shows the
snapshot's numbers, and they change after an upload; a transfer highlights an edge; a node
that joins the list appears without a reload; hover shows a tooltip (with the tiered
nodes' tiers); a killed node turns grey and then disappears; the page shows
"disconnected" when the server goes away and recovers by itself when it returns. Saves a
screenshot in $NEVERUST_ARTIFACTS (/tmp/neverust-artifacts by default) and prints its path.

    NEVERUST_BIN=target/debug/neverust python3 scripts/viz-browser-test.py
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from playwright.sync_api import sync_playwright

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("NEVERUST_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "neverust"
)
ARTIFACTS = os.environ.get("NEVERUST_ARTIFACTS", "/tmp/neverust-artifacts")
BASE_PORT, BOOTSTRAP_API = 24300, 24399
# The page's colours (crates/lab/viz-web/src/app.js): the seed's red, blue and purple.
COLORS = {"bootstrap": "#e74c3c", "altruistic": "#3498db", "marketplace": "#9b59b6"}
DOWN = "#b8bec6"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def get_json(url):
    try:
        return json.loads(get(url))
    except OSError:
        return None


def wait(what, limit, check, every=0.2):
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting for {what}")
        time.sleep(every)


def write_cluster_file(path, cluster, nodes):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(dict(cluster, nodes=nodes), f)
    os.replace(tmp, path)


# One evaluation, so the DOM is read consistently with the frame it was drawn from.
PAGE_STATE = """() => ({
  seq: Number(document.querySelector('#graph').dataset.seq),
  status: document.querySelector('#status').className,
  statusText: document.querySelector('#status').textContent,
  circles: [...document.querySelectorAll('#graph .nodes circle')].map(c => ({
    id: c.dataset.id, role: c.dataset.role, up: c.dataset.up, fill: c.getAttribute('fill')})),
  renderer: document.querySelector('#edges').dataset.renderer,
  lines: Number(document.querySelector('#edges').dataset.edges),
  active: Number(document.querySelector('#edges').dataset.active),
  stats: Object.fromEntries(['nodes', 'blocks', 'bytes', 'speed'].map(k => {
    const el = document.getElementById('stat-' + k);
    return [k, {value: el.dataset.value, text: el.textContent}];
  })),
})"""


def start_viz(cluster_file, port):
    return subprocess.Popen(
        [BIN, "viz", "--cluster", cluster_file, "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )


def stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    if not os.path.isfile(BIN):
        sys.exit(f"{os.path.basename(__file__)}: no neverust binary at {BIN}: build it, or set NEVERUST_BIN")
    chromium = shutil.which("chromium")
    if not chromium:
        sys.exit("viz-browser-test: chromium is not installed (scripts/setup.sh installs it)")
    start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="neverust-viz-test-")
    launcher = viz = None
    try:
        # The cluster without its own visualizer: the test runs `neverust viz` apart, so
        # it can stop and restart the server under the page.
        launcher = subprocess.Popen(
            [BIN, "cluster", "--nodes", "4", "--no-viz", "--node-log-level", "warn",
             "--base-port", str(BASE_PORT), "--bootstrap-api-port", str(BOOTSTRAP_API),
             "--dir", os.path.join(tmp, "c"),
             # Tiered nodes, for the tiers on the hover.
             "--node-tier", "memory:16MiB",
             "--node-tier", f"ssd:{os.path.join(tmp, 'tiers', 'ssd')}:64MiB",
             "--node-tier", f"hdd:{os.path.join(tmp, 'tiers', 'hdd')}:1GiB:latency=1ms"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        real_file = os.path.join(tmp, "c", "cluster.json")
        wait("cluster.json", 60, lambda: os.path.exists(real_file))
        cluster = json.load(open(real_file))
        nodes = cluster["nodes"]
        # The visualizer first sees three of the four nodes; the fourth joins later.
        view_file = os.path.join(tmp, "view.json")
        write_cluster_file(view_file, cluster, nodes[:3])
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        viz = start_viz(view_file, port)
        wait("the first snapshot", 15, lambda: get_json(url + "snapshot.json"))

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            page.wait_for_selector("#status.connected", timeout=10_000)
            assert "Connected" in page.text_content("#status")

            def synced(expect_nodes):
                """The page's state and the server's snapshot of the same poll."""
                def check():
                    snap = get_json(url + "snapshot.json")
                    state = page.evaluate(PAGE_STATE)
                    if snap and state["seq"] == snap["seq"] and len(snap["nodes"]) == expect_nodes \
                            and all(n["up"] for n in snap["nodes"]):
                        return snap, state
                    return None
                return wait(f"the page to draw {expect_nodes} live nodes", 20, check)

            def assert_drawn(snap, state):
                assert len(state["circles"]) == len(snap["nodes"]), state
                by_id = {c["id"]: c for c in state["circles"]}
                for n in snap["nodes"]:
                    c = by_id[n["id"]]
                    assert c["fill"] == COLORS[n["role"]], (n, c)
                assert state["lines"] == len(snap["edges"]), (state["lines"], snap["edges"])
                st = snap["stats"]
                assert state["stats"]["nodes"]["text"] == str(st["active_nodes"]), state
                assert float(state["stats"]["blocks"]["value"]) == st["total_blocks"], state
                assert float(state["stats"]["bytes"]["value"]) == st["total_bytes"], state
                speed = state["stats"]["speed"]["value"]
                expected = st["transfer_bytes_per_s"]
                assert (speed == "" and expected is None) or float(speed) == expected, state

            snap, state = synced(3)
            assert_drawn(snap, state)
            assert [n["role"] for n in snap["nodes"]] == ["bootstrap", "altruistic", "altruistic"]
            assert state["lines"] >= 2, "both nodes are connected to the bootstrap"

            # A node added to the list appears without a reload, in its colour.
            write_cluster_file(view_file, cluster, nodes)
            snap, state = synced(4)
            assert_drawn(snap, state)
            assert snap["nodes"][3]["role"] == "marketplace"
            print(f"viz-browser-test: {len(state['circles'])} circles, {state['lines']} lines "
                  f"({state['renderer']}), "
                  f"stats {state['stats']['blocks']['text']} blocks / {state['stats']['bytes']['text']}")

            # The WebGL renderer (used where a GPU draws it) draws the same connections.
            gl_page = browser.new_page(viewport={"width": 1400, "height": 900})
            gl_page.goto(url + "?edges=webgl")

            def gl_synced():
                snap = get_json(url + "snapshot.json")
                state = gl_page.evaluate(PAGE_STATE)
                return (snap, state) if snap and state["seq"] == snap["seq"] else None
            gl_snap, gl_state = wait("the WebGL page", 10, gl_synced)
            assert gl_state["renderer"] == "webgl", gl_state["renderer"]
            assert gl_state["lines"] == len(gl_snap["edges"]), (gl_state, gl_snap["edges"])
            gl_page.close()

            # An upload and a transfer: totals grow, an edge lights up.
            blocks_before = snap["stats"]["total_blocks"]
            data = os.urandom(4 << 20)
            req = urllib.request.Request(nodes[1]["api_url"] + "/api/archivist/v1/data", data=data,
                                         method="POST")
            cid = urllib.request.urlopen(req, timeout=30).read().decode().strip()
            saw_active = False
            got = get(nodes[2]["api_url"] + f"/api/archivist/v1/data/{cid}/network/stream", 30)
            assert len(got) == len(data)
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                state = page.evaluate(PAGE_STATE)
                saw_active |= state["active"] > 0
                if saw_active and float(state["stats"]["blocks"]["value"]) > blocks_before:
                    break
                time.sleep(0.25)
            assert saw_active, "no edge was highlighted after a 4 MiB transfer"
            snap, state = synced(4)
            assert snap["stats"]["total_blocks"] > blocks_before
            assert_drawn(snap, state)

            # Hover: a tooltip with the node's details.
            target = snap["nodes"][3]
            page.hover(f'circle[data-id="{target["id"]}"]', timeout=10_000)
            tip = page.wait_for_selector("#tooltip:not([hidden])", timeout=5_000)
            text = tip.text_content()
            assert target["peer_id"] in text and "marketplace" in text and "RSS" in text, text
            # Its tiers, as the node reports them, the emulated one said so.
            assert [t["tier"] for t in target["tiers"]] == ["memory0", "ssd1", "hdd2"], target
            assert [t["emulated"] for t in target["tiers"]] == [False, False, True], target
            for t in target["tiers"]:
                assert f"tier {t['tier']}" in text, text
            assert "emulated" in text and "blocks" in text, text

            shot = os.path.join(ARTIFACTS, "visualizer-browser-test.png")
            os.makedirs(ARTIFACTS, exist_ok=True)
            page.screenshot(path=shot)
            print(f"viz-browser-test: screenshot {shot}")

            # A node killed turns grey, then leaves the page.
            victim = nodes[2]
            os.kill(victim["pid"], signal.SIGKILL)
            sel = f'circle[data-id="{victim["peer_id"]}"]'
            page.wait_for_selector(sel + '[data-up="false"]', timeout=10_000)
            assert page.get_attribute(sel, "fill") == DOWN
            page.wait_for_selector(sel, state="detached", timeout=15_000)
            assert page.evaluate(PAGE_STATE)["stats"]["nodes"]["text"] == "3"

            # The server goes away: the page says so; it comes back: the page recovers.
            stop(viz)
            page.wait_for_selector("#status.disconnected", timeout=10_000)
            assert page.is_visible("#status")
            assert "Disconnected" in page.text_content("#status")
            viz = start_viz(view_file, port)
            page.wait_for_selector("#status.connected", timeout=15_000)
            frames = page.evaluate("() => window.neverustViz.frames")
            wait("frames after the reconnection", 10,
                 lambda: page.evaluate("() => window.neverustViz.frames") > frames)
            # A fresh server knows nothing of the dead node but its address: grey at most.
            up = [c for c in page.evaluate(PAGE_STATE)["circles"] if c["up"] == "true"]
            assert len(up) == 3, up
            browser.close()
        print(f"viz-browser-test: passed in {time.monotonic() - start:.1f} s")
    finally:
        stop(viz)
        stop(launcher)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
