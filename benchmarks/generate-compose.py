#!/usr/bin/env python3
"""Writes the Docker Compose cluster into this folder: docker-compose.yml and the
prometheus.yml it mounts (the seed's entry point, kept).

    cd benchmarks && python3 generate-compose.py 50

N counts every node, the bootstrap included, as `neverust cluster --nodes` does (the seed's
script added the bootstrap on top). Arguments after N go to `neverust compose`, e.g.
`python3 generate-compose.py 120 --marketplace-every 2 --cpus 0.5 --memory 256MiB`, or
`python3 generate-compose.py 10 --node-tier memory:64MiB --node-tier ssd:/tiers/ssd:1GiB`.

A thin wrapper over `neverust compose --nodes N --out <this folder>`: the layout is defined
once, in Rust (crates/lab/src/deploy). The binary is $NEVERUST_BIN if set, else a release
build in $CARGO_TARGET_DIR (or the repository's target/), else `cargo run --release -p
neverust` from the repository's root, which builds it the first time.
"""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
USAGE = "usage: python3 generate-compose.py [N] [neverust compose flags...]  (N: nodes, at least 2; default 50)"


def neverust_command():
    explicit = os.environ.get("NEVERUST_BIN")
    if explicit:
        return [explicit]
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    built = target / "release" / "neverust"
    if built.is_file():
        return [str(built)]
    print(f"no {built} yet: building it with cargo (once)", file=sys.stderr)
    return ["cargo", "run", "--release", "-q", "-p", "neverust", "--"]


def main(argv):
    nodes, extra = "50", []
    if argv and not argv[0].startswith("-"):
        nodes, extra = argv[0], argv[1:]
    else:
        extra = argv
    if extra[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if not nodes.isdigit() or int(nodes) < 2:
        print(f"error: N must be a number of nodes, at least 2 (a bootstrap and one more); got {nodes!r}\n{USAGE}", file=sys.stderr)
        return 2
    cmd = neverust_command() + ["compose", "--nodes", nodes, "--out", str(HERE), "--repo", ".."] + extra
    try:
        return subprocess.run(cmd, cwd=REPO).returncode
    except FileNotFoundError as e:
        print(f"error: cannot run {cmd[0]}: {e}; install Rust (cargo) or set NEVERUST_BIN", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
