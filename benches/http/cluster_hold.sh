#!/usr/bin/env bash
# The hold path on one node against three replicated nodes on loopback,
# alternating, in one run, with one binary: what replication costs a fan.
#   single: `serve --demo`, the one-voter group (see hold_server.sh);
#   three:  three `serve --cluster` processes on this machine, the sale's
#           event created through the leader; wrk sends every request to
#           the leader (TARGET=leader, default), or, with TARGET=follower,
#           to a follower, which forwards each write to the leader (one hop).
# Every answered hold is durable: fsynced on one disk (single) or on two of
# three (three, a majority). All processes share this machine's cores, so
# "three" here also pays for two more processes' CPU: a figure for loopback,
# not for three machines.
# Usage: benches/http/cluster_hold.sh BINARY [ROUNDS]
#        (DURATION=8s CONNECTIONS=64 THREADS=2 FANS=400 TARGET=leader|follower)
set -euo pipefail
bin=$1 rounds=${2:-3}
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
FANS=${FANS:-400}
TARGET=${TARGET:-leader}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hold_server.sh
. "$HERE/hold_server.sh"
work=$(mktemp -d)
stop_cluster() {
  local pid_file
  for pid_file in "$work"/*/node*.pid; do
    [ -e "$pid_file" ] && kill "$(cat "$pid_file")" 2>/dev/null || true
  done
}
trap 'stop_cluster; stop_hold_servers "$work"' EXIT
figures() { awk '/Requests\/sec/ {r=$2} / 50%/ {m=$2} / 99%/ {p=$2} /requests in/ {t=$1} /Non-2xx/ {n=$NF} END {print r " req/s, p50 " m ", p99 " p (n ? ", non-2xx " n " of " t : "")}'; }

# start_cluster DIR: three nodes (http 18321-18323, peers 18331-18333), the
# group founded, an event like the demo's created through the leader with
# proof of work and two-factor off, FANS fans in line; the address wrk is
# to use goes to DIR/target.
start_cluster() {
  local dir=$1 id leader="" follower="" addr
  mkdir -p "$dir"
  write_bench_config "$dir/ingressoja.toml"
  echo "secret = \"bench-cluster-secret-bench-cluster-secret\"" > "$dir/cluster.toml"
  for id in 1 2 3; do
    printf '[[nodes]]\nid = %s\npeers = "127.0.0.1:1833%s"\nhttp = "127.0.0.1:1832%s"\n' \
      "$id" "$id" "$id" >> "$dir/cluster.toml"
  done
  for id in 1 2 3; do
    echo "bench admin password" | "$bin" admin create bench@example.com --data "$dir/data$id" --password-stdin > /dev/null
    INGRESSOJA_MAX_CONNECTIONS_PER_IP=100000 "$bin" serve --cluster "$dir/cluster.toml" --node "$id" \
      --data "$dir/data$id" --config "$dir/ingressoja.toml" > "$dir/node$id.log" 2>&1 &
    echo $! > "$dir/node$id.pid"
  done
  for id in 1 2 3; do
    for _ in $(seq 1 100); do curl -s -o /dev/null "127.0.0.1:1832$id/healthz" && break; sleep 0.1; done
  done
  for _ in $(seq 1 100); do "$bin" cluster init --cluster "$dir/cluster.toml" > /dev/null 2>&1 && break; sleep 0.1; done
  for _ in $(seq 1 100); do
    for id in 1 2 3; do
      curl -s "127.0.0.1:1832$id/readyz" | grep -q '"role":"leader"' && leader=$id
    done
    [ -n "$leader" ] && break
    sleep 0.1
  done
  [ -n "$leader" ] || { echo "no leader" >&2; exit 1; }
  for id in 1 2 3; do [ "$id" != "$leader" ] && follower=$id; done
  addr="127.0.0.1:1832$leader"
  local admin now
  admin=$("$HERE/admin_session.sh" "http://$addr" bench@example.com "bench admin password")
  now=$(($(date +%s) * 1000))
  curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $admin" "$addr/api/admin/events" -d "{
    \"name\": \"Bench\", \"venue\": \"Loopback Arena\", \"starts_at_ms\": $((now + 3600000)),
    \"opens_at_ms\": $((now - 1000)), \"closes_at_ms\": $((now + 3000000)),
    \"ticket_types\": [{\"name\": \"Pista\", \"price_cents\": 10000, \"capacity\": 5000, \"limit_per_customer\": 4}],
    \"policy\": {\"arrival_window_ms\": 0, \"max_active\": 2000, \"pow_difficulty\": 0, \"require_two_factor\": false}
  }" | grep -q 201 || { echo "the event was not created" >&2; exit 1; }
  # Fans sign in and join where wrk will send them: their sessions live
  # on that node (issue 14 replicates accounts), and a follower forwards
  # the joins to the leader.
  [ "$TARGET" = follower ] && addr="127.0.0.1:1832$follower"
  : > "$dir/fans"
  local token
  for id in $(seq 1 "$FANS"); do
    token=$(curl -s -X POST "$addr/api/dev/session" -d "{\"email\":\"fan$id@bench.invalid\"}" | sed 's/.*"token":"\([^"]*\)".*/\1/')
    curl -s -o /dev/null -X POST -H "Authorization: Bearer $token" "$addr/api/events/0/queue"
    echo "$token" >> "$dir/fans"
  done
  await_shopping "$addr" "$dir/fans"
  echo "$addr" > "$dir/target"
}

stop_cluster_in() {
  local dir=$1 pid_file pid
  for pid_file in "$dir"/node*.pid; do
    pid=$(cat "$pid_file")
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$pid_file"
  done
}

for round in $(seq 1 "$rounds"); do
  dir="$work/single-$round"
  start_hold_server "$bin" 18301 "$dir" "$FANS"
  result=$(FANS_FILE="$dir/fans" THREADS="$THREADS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$HERE/hold.lua" http://127.0.0.1:18301/ | figures)
  echo "round $round single: $result"
  refused_check "$result"
  stop_hold_server "$dir"

  dir="$work/three-$round"
  start_cluster "$dir"
  result=$(FANS_FILE="$dir/fans" THREADS="$THREADS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$HERE/hold.lua" "http://$(cat "$dir/target")/" | figures)
  echo "round $round three ($TARGET): $result"
  refused_check "$result"
  stop_cluster_in "$dir"
done
