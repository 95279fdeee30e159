#!/usr/bin/env bash
# HTTP benchmark, one run, same machine: wrk against nginx serving a static
# 200, against IngressoJa's read path (GET an event) and its hold path
# (add/remove a ticket: a durable change per request), all over keep-alive;
# then the hold path paced at half of the peak just measured, with STREAMS
# server-sent event streams open (a watcher process reading them all).
# Usage: benches/http/compare.sh   (DURATION=10s CONNECTIONS=64 THREADS=2 FANS=400 STREAMS=10000)
set -euo pipefail
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
FANS=${FANS:-400}
STREAMS=${STREAMS:-10000}
BIN=${INGRESSOJA:-${CARGO_TARGET_DIR:-$HOME/.cache/ingressoja/target}/release/ingressoja}
STRESS=$(dirname "$BIN")/ingressoja-stress
HERE=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cat > "$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/error.log;
daemon off;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:18200; location / { return 200 "ok"; } } }
CONF
nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)

# shellcheck source=hold_server.sh
. "$HERE/hold_server.sh"
start_hold_server "$BIN" 18201 "$work" "$FANS"
pids+=("$(cat "$work/server.pid")")
for _ in $(seq 1 100); do curl -s -o /dev/null "127.0.0.1:18200/" && break; sleep 0.1; done

run() { wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"; }
echo "== nginx, static 200"
run http://127.0.0.1:18200/
echo "== ingressoja, GET /api/events/0 (read)"
run http://127.0.0.1:18201/api/events/0
echo "== ingressoja, hold path (POST/DELETE cart items, durable)"
FANS_FILE="$work/fans" THREADS="$THREADS" run -s "$HERE/hold.lua" http://127.0.0.1:18201/

ulimit -n "$(ulimit -Hn)"
nice -n 19 "$STRESS" --addr 127.0.0.1:18201 --watch "$STREAMS" > "$work/watch.log" 2>&1 & pids+=($!)
for _ in $(seq 1 600); do
  open=$(curl -s 127.0.0.1:18201/metrics | awk '/^ingressoja_sse_streams_open / {print $2}')
  [ "${open:-0}" -ge "$STREAMS" ] && break; sleep 0.1
done
echo "== ingressoja, hold path, peak with $open streams open (each sent 4 updates/s)"
FANS_FILE="$work/fans" THREADS="$THREADS" run -s "$HERE/hold.lua" http://127.0.0.1:18201/ | tee "$work/peak"
peak=$(awk '/Requests\/sec/ {print int($2)}' "$work/peak")
# Each of PACED connections waits DELAY_MS between requests: about
# PACED / DELAY_MS requests per ms, half the peak (the answer's own latency
# lowers it a little; wrk prints the rate reached).
PACED=${PACED:-256}
delay=$(( PACED * 2000 / (peak > 0 ? peak : 1) ))
echo "== ingressoja, hold path paced at half of that peak, $peak/s ($PACED connections, ${delay} ms apart), streams still open"
FANS_FILE="$work/fans" THREADS="$THREADS" DELAY_MS="$delay" run -c"$PACED" -s "$HERE/hold.lua" http://127.0.0.1:18201/
echo "streams open at the end: $(curl -s 127.0.0.1:18201/metrics | awk '/^ingressoja_sse_streams_open / {print $2}'); watcher: $(tail -1 "$work/watch.log")"
