#!/usr/bin/env python3
"""Is the visualizer still responsive with 200 nodes? Starts a real 200-node cluster
(memory stores, ports 24000-24999), opens its visualizer in headless Chromium (Debian's,
through Playwright) and measures frame times from requestAnimationFrame: at rest, while a
node is dragged (the force simulation running), and how long drawing one snapshot takes.
Not part of CI (a 200-node cluster takes a minute and ~4 GB); run by hand:

    cargo build --release -p neverust && python3 scripts/viz-scale.py [NODES]
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from playwright.sync_api import sync_playwright

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("NEVERUST_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "neverust"
)
NODES = int(sys.argv[1]) if len(sys.argv) > 1 else 200

# Intervals between animation frames over `ms`, in ms.
FRAMES = """(ms) => new Promise(done => {
  const times = [];
  const end = performance.now() + ms;
  function frame(t) { times.push(t); if (t < end) requestAnimationFrame(frame); else done(times); }
  requestAnimationFrame(frame);
})"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(times):
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    if not gaps:
        return "no frames"
    p95 = gaps[min(len(gaps) - 1, int(len(gaps) * 0.95))]
    return (f"{len(gaps)} frames, mean {statistics.mean(gaps):.1f} ms "
            f"({1000 / statistics.mean(gaps):.0f} fps), p95 {p95:.1f} ms, max {gaps[-1]:.1f} ms")


def measure(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url)
    page.wait_for_function(
        f"() => document.querySelectorAll('#graph .nodes circle').length >= {NODES}", timeout=60_000)
    # Two more snapshots, so the page runs in its steady state.
    seq = page.evaluate("() => window.neverustViz.snapshot.seq")
    page.wait_for_function(f"() => window.neverustViz.snapshot.seq >= {seq + 2}",
                           timeout=30_000)
    snap = page.evaluate("() => window.neverustViz.snapshot")
    renderer = page.evaluate("() => document.querySelector('#edges').dataset.renderer")
    print(f"viz-scale: [{renderer}] page shows {len(snap['nodes'])} nodes, "
          f"{len(snap['edges'])} connections; the server's poll of every node took "
          f"{snap['poll_seconds'] * 1000:.0f} ms")
    rest = page.evaluate(FRAMES, 5000)
    print(f"viz-scale: [{renderer}] at rest (updates every 2 s): {summary(rest)}")
    updates = []
    for _ in range(3):
        seq = page.evaluate("() => window.neverustViz.snapshot.seq")
        page.wait_for_function(f"() => window.neverustViz.snapshot.seq > {seq}",
                               timeout=30_000)
        updates.append(page.evaluate("() => window.neverustViz.updateMs"))
    print(f"viz-scale: [{renderer}] drawing one snapshot: " +
          ", ".join(f"{u:.1f} ms" for u in updates))
    # Drag a node in circles for 5 s: the simulation runs every frame meanwhile.
    box = page.locator("#graph .nodes circle").nth(NODES // 2).bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    handle = page.evaluate_handle(FRAMES, 5000)
    end = time.monotonic() + 5
    i = 0
    while time.monotonic() < end:
        i += 1
        page.mouse.move(cx + 80 * ((i % 20) / 10 - 1), cy + 40 * ((i % 7) / 3.5 - 1))
        time.sleep(0.03)
    page.mouse.up()
    print(f"viz-scale: [{renderer}] dragging (simulation running): {summary(handle.json_value())}")
    shot = os.path.join(tempfile.gettempdir(), f"viz-scale-{NODES}-{renderer}.png")
    page.screenshot(path=shot)
    print(f"viz-scale: [{renderer}] screenshot {shot}")
    page.close()


def main():
    if not os.path.isfile(BIN):
        sys.exit(f"{os.path.basename(__file__)}: no neverust binary at {BIN}: build it, or set NEVERUST_BIN")
    tmp = tempfile.mkdtemp(prefix="neverust-viz-scale-")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    launcher = subprocess.Popen(
        [BIN, "cluster", "--nodes", str(NODES), "--base-port", "24000",
         "--bootstrap-api-port", "24999", "--viz-port", str(port), "--node-store", "memory",
         "--node-log-level", "warn", "--dir", os.path.join(tmp, "c")],
        stdout=subprocess.DEVNULL,
    )
    try:
        started = time.monotonic()
        while not os.path.exists(os.path.join(tmp, "c", "cluster.json")):
            if launcher.poll() is not None:
                sys.exit("viz-scale: the cluster did not start")
            time.sleep(0.5)
        print(f"viz-scale: {NODES} nodes ready in {time.monotonic() - started:.0f} s")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                        args=["--no-sandbox"])
            for renderer in ["2d", "webgl"]:
                measure(browser, f"{url}?edges={renderer}")
            browser.close()
    finally:
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(60)
        except subprocess.TimeoutExpired:
            launcher.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
