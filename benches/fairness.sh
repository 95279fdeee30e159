#!/usr/bin/env bash
# Who gets the tickets, measured: starts the release server in development
# mode (the product's default limits), makes an administrator and, for each
# case, an event of 600 tickets (limit 2, default fairness policy, proof of
# work 8 bits, no two-factor) whose pre-queue is open and whose sale opens in
# 20 s, then runs `ingressoja-stress --fairness` with 300 fans on the machine,
# 300 fans 155 ms away and (pre-queue case) 100 bot accounts behind one
# address polling every 50 ms. Prints each report; docs/BENCHMARKS.md keeps
# the figures.
# Usage: benches/fairness.sh [PORT]   (after `cargo build --release`)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
target=${CARGO_TARGET_DIR:-$HOME/.cache/ingressoja/target}
bin=$target/release/ingressoja
stress=$target/release/ingressoja-stress
port=${1:-18181}
work=$(mktemp -d)
trap 'kill $(cat "$work/server.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
echo "development = true" > "$work/ingressoja.toml"
echo "fair admin password" | "$bin" admin create fair@example.com --data "$work/data" --password-stdin > /dev/null
"$bin" serve --config "$work/ingressoja.toml" --data "$work/data" --listen "127.0.0.1:$port" > "$work/server.log" 2>&1 &
echo $! > "$work/server.pid"
for _ in $(seq 1 100); do curl -s -o /dev/null "127.0.0.1:$port/healthz" && break; sleep 0.1; done
admin=$("$here/http/admin_session.sh" "http://127.0.0.1:$port" fair@example.com "fair admin password")

event() {
  local now opens
  now=$(($(date +%s%3N)))
  opens=$((now + 20000))
  curl -s -X POST -H "Authorization: Bearer $admin" "127.0.0.1:$port/api/admin/events" -d "{
    \"name\": \"Fair $1\", \"venue\": \"Loopback\", \"starts_at_ms\": $((now + 86400000)),
    \"prequeue_opens_at_ms\": $now, \"opens_at_ms\": $opens, \"closes_at_ms\": $((now + 3600000)),
    \"ticket_types\": [{\"name\": \"Pista\", \"price_cents\": 25000, \"capacity\": 600, \"limit_per_customer\": 2}],
    \"policy\": {\"per_event_limit\": 2, \"pow_difficulty\": 8, \"require_two_factor\": false}
  }" | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2
}

for case in prequeue after-opening; do
  id=$(event "$case")
  bots=0
  [ "$case" = prequeue ] && bots=100
  echo "== $case (event $id)"
  "$stress" --addr "127.0.0.1:$port" --event "$id" --fairness "$case" \
    --fast 300 --slow 300 --slow-rtt-ms 155 --bots "$bots" --summary "$work/$case.json"
done
