#!/usr/bin/env bash
# The same drop against one node and against three nodes (through the
# leader, through a follower, through HAProxy), in one run: the figures
# docs/SCALING.md starts from.
#
#   benches/cluster/compare.sh INGRESSOJA STRESS [FANS] [CONCURRENCY]
#
# Each target gets its own fans (the seed names their accounts) and an
# event of its own, the same for all: 100 000 tickets, no proof of work, no second factor to buy.
# Prints one line per target: requests/s, and p50/p99 of the hold and the
# checkout, from the stress tool's summary.
set -euo pipefail

bin=${1:?usage: compare.sh INGRESSOJA STRESS [FANS] [CONCURRENCY]}
stress=${2:?usage: compare.sh INGRESSOJA STRESS [FANS] [CONCURRENCY]}
fans=${3:-2000}
concurrency=${4:-200}
# shellcheck source=benches/cluster/lib.sh
source "$(dirname "$0")/lib.sh"

drop() { # label addr seed event
    "$stress" --addr "$2" --fans "$fans" --event "$4" --spike-seconds 2 --concurrency "$concurrency" \
        --seed "$3" --summary "$work/$1.json" >"$work/$1.out" 2>&1 || true
    python3 - "$1" "$work/$1.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[2]))
st, v = s["steps"], s["verification"]
def ms(step, q): return st.get(step, {}).get(q, 0) / 1000
print(f'{sys.argv[1]:<16} {s["requests_per_second"]:8.0f} req/s   hold p50 {ms("hold","p50_us"):6.1f} p99 {ms("hold","p99_us"):7.1f} ms'
      f'   checkout p50 {ms("checkout","p50_us"):6.1f} p99 {ms("checkout","p99_us"):7.1f} ms   consistent {v["consistent"]}')
if not v["consistent"]:
    print("   ", v, s["responses_by_error_code"])
EOF
}

# One node.
"$bin" admin create ops@compare.invalid --data "$work/single" --password-stdin <<<"$password" >/dev/null
"$bin" serve --listen 127.0.0.1:18180 --data "$work/single" --config "$work/server.toml" >"$work/single.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:18180/readyz
create_event 127.0.0.1:18180 "$(admin_token 127.0.0.1:18180)"
echo "target           throughput       hold (ms)                     checkout (ms)"
drop "one node" 127.0.0.1:18180 1 0
kill "${pids[0]}"

# Three nodes and HAProxy.
start_cluster 1819 1820
follower=$(( leader % 3 + 1 ))
token=$(admin_token "127.0.0.1:1819$leader")
# An event per target (ids 0, 1, 2), so that each drop's books are its own.
for _ in 1 2 3; do create_event "127.0.0.1:1819$leader" "$token"; done
"$bin" cluster haproxy-config --cluster "$work/cluster.toml" --listen 127.0.0.1:18199 >"$work/haproxy.cfg"
/usr/sbin/haproxy -W -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:18199/readyz
drop "cluster leader" "127.0.0.1:1819$leader" 2 0
drop "cluster follower" "127.0.0.1:1819$follower" 3 1
drop "cluster HAProxy" 127.0.0.1:18199 4 2
