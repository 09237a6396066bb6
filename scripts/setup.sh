#!/usr/bin/env bash
# Installs what building and testing Neverust needs on a fresh Debian machine, from the
# project's own lists: Debian packages (scripts/apt-packages.txt) and Python tools
# (scripts/requirements.txt), and the visualizer page's npm packages (crates/lab/viz-web).
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=$(grep -v '^\s*#' scripts/apt-packages.txt | xargs || true)
missing=()
for p in $packages; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! python3 -m pip install -q --disable-pip-version-check -r scripts/requirements.txt 2>/tmp/neverust-pip.log; then
  cat /tmp/neverust-pip.log >&2
  exit 1
fi
# Debian's nodejs comes without npm, NodeSource's has it built in (and conflicts with
# Debian's npm package): install it only when the command is missing.
if ! command -v npm >/dev/null; then
  echo "setup: installing Debian package: npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
fi
# The visualizer's page embeds d3 from npm: the default build fails without it
# (crates/lab/build.rs; --no-default-features leaves the page out).
(cd crates/lab/viz-web && npm ci --no-audit --no-fund --loglevel=error)
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "setup: done"
