#!/usr/bin/env bash
# Mixed load A/B: the event page (GET /api/events/0) and the hold path at
# once, two builds of `ingressoja` alternating (see ab.sh). Shows what one
# path's work costs the other: both wait on the same shard thread.
# Usage: benches/http/mixed.sh OLD_BINARY NEW_BINARY [ROUNDS]  (DURATION=8s)
set -euo pipefail
old=$1 new=$2 rounds=${3:-2}
DURATION=${DURATION:-8s}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hold_server.sh
. "$HERE/hold_server.sh"
work=$(mktemp -d)
cleanup() {
  for pid_file in "$work"/*/server.pid; do kill "$(cat "$pid_file")" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
figures() { awk '/Requests\/sec/ {r=$2} / 99%/ {p=$2} END {print r " req/s, p99 " p}' "$1"; }
for round in $(seq 1 "$rounds"); do
  for side in old new; do
    bin=$old; [ "$side" = new ] && bin=$new
    dir="$work/$side-$round"
    start_hold_server "$bin" 18302 "$dir" 400
    wrk -t1 -c32 -d"$DURATION" --latency http://127.0.0.1:18302/api/events/0 > "$dir/read.txt" & reader=$!
    FANS_FILE="$dir/fans" THREADS=1 wrk -t1 -c32 -d"$DURATION" --latency -s "$HERE/hold.lua" http://127.0.0.1:18302/ > "$dir/hold.txt"
    wait "$reader"
    echo "round $round $side: read $(figures "$dir/read.txt") | hold $(figures "$dir/hold.txt")"
    pid=$(cat "$dir/server.pid"); kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  done
done
