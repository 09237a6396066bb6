#!/usr/bin/env bash
# The main job: a native N-node cluster on this machine (`neverust cluster`, 50 nodes by
# default), a benchmark of every scenario against it (`neverust bench all`, quick profile),
# and where the report is. The cluster is stopped at the end, whatever happens.
#   NODES=100 PROFILE=full bash scripts/lab.sh
#   PROMETHEUS_PORT=9191 moves the Prometheus that scrapes the nodes; PROMETHEUS=0 leaves it out.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES="${NODES:-50}"
PROFILE="${PROFILE:-quick}"
DIR="${DIR:-neverust-cluster}"
REPORT="${REPORT:-neverust-report}"
VIZ_PORT="${VIZ_PORT:-8888}"
PROMETHEUS="${PROMETHEUS:-1}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
prometheus_flags=()
if [ "$PROMETHEUS" = 1 ]; then
  prometheus_flags=(--prometheus --prometheus-port "$PROMETHEUS_PORT")
fi

cargo build --release -p neverust
bin="${CARGO_TARGET_DIR:-target}/release/neverust"

# --restart: the chaos scenario kills nodes with SIGKILL and the launcher brings them back.
# The cluster serves the live visualizer while it runs (VIZ_PORT=... to move it).
"$bin" cluster --nodes "$NODES" --dir "$DIR" --restart --node-log-level warn --viz-port "$VIZ_PORT" "${prometheus_flags[@]}" &
launcher=$!
trap 'kill -TERM "$launcher" 2>/dev/null || true; wait "$launcher" 2>/dev/null || true' EXIT

# Ready when this launcher has written cluster.json.
until grep -qs "\"launcher_pid\": $launcher," "$DIR/cluster.json"; do
  if ! kill -0 "$launcher" 2>/dev/null; then
    echo "lab: the cluster did not start (see the messages above)" >&2
    exit 1
  fi
  sleep 0.2
done

echo "lab: the live visualizer is at http://localhost:$VIZ_PORT while the cluster runs"
if [ "$PROMETHEUS" = 1 ]; then
  echo "lab: Prometheus scrapes every node at http://localhost:$PROMETHEUS_PORT while the cluster runs"
fi
"$bin" bench all --cluster "$DIR/cluster.json" --profile "$PROFILE" --report "$REPORT"
echo "lab: open $REPORT/report.html"
