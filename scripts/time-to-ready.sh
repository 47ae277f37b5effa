#!/usr/bin/env bash
# How long `npm start` takes from the command to a node that answers /ready with 200: the figure README quotes.
#
#   bash scripts/time-to-ready.sh [RUNS]     (default 1 run; the same environment as npm start: PORT, DATABASE_URL, …)
#
# Prints one line per run ("start to ready: 3.4 s") and stops the node (SIGTERM) after each. A first start (no
# dist/, a new database) builds and migrates, so it is slower than the ones after it: say which was measured.
set -euo pipefail

runs=${1:-1}
port=${PORT:-3000}
timeout_s=${TIME_TO_READY_TIMEOUT:-180}
cd "$(dirname "$0")/.."

if ! command -v curl >/dev/null 2>&1; then
  echo "time-to-ready: needs curl" >&2
  exit 2
fi
if curl -s -o /dev/null "http://127.0.0.1:$port/health"; then
  echo "time-to-ready: something already answers on port $port; stop it or set PORT" >&2
  exit 2
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for ((run = 1; run <= runs; run++)); do
  started=$(date +%s%N)
  # Its own process group, so that the node npm execs is stopped with it.
  setsid npm start >"$log" 2>&1 &
  group=$!
  ready=0
  while kill -0 "$group" 2>/dev/null; do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready") == 200 ]]; then
      ready=1
      break
    fi
    (( ($(date +%s%N) - started) / 1000000000 < timeout_s )) || break
    sleep 0.1
  done
  ended=$(date +%s%N)
  kill -TERM -- "-$group" 2>/dev/null || true
  wait "$group" 2>/dev/null || true
  if ((!ready)); then
    echo "time-to-ready: run $run: not ready (npm start's output follows)" >&2
    cat "$log" >&2
    exit 1
  fi
  ms=$(( (ended - started) / 1000000 ))
  printf 'start to ready: %d.%d s\n' $((ms / 1000)) $(((ms % 1000) / 100))
done
