#!/usr/bin/env bash
# A/B of two builds of `ingressoja`, alternating, in one run (the machine
# drifts by tens of percent between runs, so each round runs both, and the
# ratios within a round are the figures to trust). Each round starts a fresh
# server per binary (see hold_server.sh), drives it with wrk over keep-alive
# and prints requests/s and p99 of:
#   WHAT=hold   the hold path (default);
#   WHAT=read   GET /api/events/0;
#   WHAT=mixed  both at once, half the connections each (what one path's
#               work costs the other: both wait on the same shard thread).
# HOLDER_OLD=true / HOLDER_NEW=true run that side as a named sale (every fan
# with a holder and CPF; see hold_server.sh): with one binary on both sides,
# what the holder check costs the hold path.
# Usage: benches/http/ab.sh OLD_BINARY NEW_BINARY [ROUNDS]
#        (WHAT=hold|read|mixed DURATION=8s CONNECTIONS=64 THREADS=2 FANS=400
#         HOLDER_OLD=false HOLDER_NEW=false)
set -euo pipefail
old=$1 new=$2 rounds=${3:-3}
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
FANS=${FANS:-400}
WHAT=${WHAT:-hold}
HOLDER_OLD=${HOLDER_OLD:-false}
HOLDER_NEW=${HOLDER_NEW:-false}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hold_server.sh
. "$HERE/hold_server.sh"
work=$(mktemp -d)
trap 'stop_hold_servers "$work"' EXIT
figures() { awk '/Requests\/sec/ {r=$2} / 99%/ {p=$2} /requests in/ {t=$1} /Non-2xx/ {n=$NF} END {print r " req/s, p99 " p (n ? ", non-2xx " n " of " t : "")}'; }
# drive THREADS CONNECTIONS TARGET…: one wrk run's figures.
drive() {
  local threads=$1 connections=$2; shift 2
  FANS_FILE="$dir/fans" THREADS="$threads" wrk -t"$threads" -c"$connections" -d"$DURATION" --latency "$@" | figures
}
read_path=(http://127.0.0.1:18301/api/events/0)
hold_path=(-s "$HERE/hold.lua" http://127.0.0.1:18301/)
for round in $(seq 1 "$rounds"); do
  for side in old new; do
    bin=$old holder=$HOLDER_OLD
    [ "$side" = new ] && bin=$new holder=$HOLDER_NEW
    dir="$work/$side-$round"
    start_hold_server "$bin" 18301 "$dir" "$FANS" "$holder"
    case "$WHAT" in
      read) result=$(drive "$THREADS" "$CONNECTIONS" "${read_path[@]}") ;;
      mixed)
        drive 1 $((CONNECTIONS / 2)) "${read_path[@]}" > "$dir/read.txt" & reader=$!
        hold=$(drive 1 $((CONNECTIONS / 2)) "${hold_path[@]}")
        wait "$reader"
        result="read $(cat "$dir/read.txt") | hold $hold" ;;
      *) result=$(drive "$THREADS" "$CONNECTIONS" "${hold_path[@]}") ;;
    esac
    echo "round $round $side: $result"
    refused_check "$result"
    stop_hold_server "$dir"
  done
done
