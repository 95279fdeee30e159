#!/usr/bin/env bash
# A/B of the hold path (or, with WHAT=read, of GET /api/events/0): two
# builds of `ingressoja`, alternating, in one run
# (the machine drifts by tens of percent between runs, so each round runs
# both, and the ratios within a round are the figures to trust). Each round
# starts a fresh server per binary (see hold_server.sh), drives the path
# with wrk over keep-alive and prints requests/s and p99.
# Usage: benches/http/ab.sh OLD_BINARY NEW_BINARY [ROUNDS]
#        (WHAT=hold|read DURATION=8s CONNECTIONS=64 THREADS=2 FANS=400)
set -euo pipefail
old=$1 new=$2 rounds=${3:-3}
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
FANS=${FANS:-400}
WHAT=${WHAT:-hold}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hold_server.sh
. "$HERE/hold_server.sh"
work=$(mktemp -d)
cleanup() {
  for pid_file in "$work"/*/server.pid; do kill "$(cat "$pid_file")" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
for round in $(seq 1 "$rounds"); do
  for side in old new; do
    bin=$old; [ "$side" = new ] && bin=$new
    dir="$work/$side-$round"
    start_hold_server "$bin" 18301 "$dir" "$FANS"
    if [ "$WHAT" = read ]; then target=(http://127.0.0.1:18301/api/events/0); else target=(-s "$HERE/hold.lua" http://127.0.0.1:18301/); fi
    figures=$(FANS_FILE="$dir/fans" THREADS="$THREADS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
      "${target[@]}" | awk '/Requests\/sec/ {r=$2} / 99%/ {p=$2} END {print r " req/s, p99 " p}')
    echo "round $round $side: $figures"
    pid=$(cat "$dir/server.pid"); kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  done
done
