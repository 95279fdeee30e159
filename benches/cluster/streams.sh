#!/usr/bin/env bash
# What open event streams cost each node of a three-node cluster: every node
# serves the streams of the fans the balancer gave it, from its own applied
# state (followers too). In one run:
#   1. the sale's state changes four times a second (an operator pausing
#      and resuming it through the leader), no streams open: each node's CPU;
#   2. the same, with STREAMS event streams open on every node (one
#      `ingressoja-stress --watch` per node reading every update): each
#      node's CPU again, the streams open, and the updates delivered.
# Prints, per node: its role, CPU (% of one core) without and with the
# streams, the difference per 1 000 streams, and the updates delivered per
# second. CPU is the node process's own (utime + stime from /proc).
#
#   benches/cluster/streams.sh INGRESSOJA STRESS [STREAMS] [SECONDS]
set -euo pipefail

bin=${1:?usage: streams.sh INGRESSOJA STRESS [STREAMS] [SECONDS]}
stress=${2:?usage: streams.sh INGRESSOJA STRESS [STREAMS] [SECONDS]}
streams=${3:-2000}
seconds=${4:-20}
# shellcheck source=benches/cluster/lib.sh
source "$(dirname "$0")/lib.sh"

start_cluster 1829 1828
token=$(admin_token "127.0.0.1:1829$leader")
create_event "127.0.0.1:1829$leader" "$token"
node_pids=("${pids[@]:0:3}")

# CPU seconds (user + system) node $1 (1..3) has used so far.
cpu() {
    local ticks
    ticks=$(awk '{print $14 + $15}' "/proc/${node_pids[$(($1 - 1))]}/stat")
    echo "scale=3; $ticks / $(getconf CLK_TCK)" | bc
}

# Pauses and resumes the sale through the leader, four changes a second,
# for $1 seconds (each change is published to every stream of the event).
changes() {
    local until=$(($(date +%s) + $1)) action=pause
    while [ "$(date +%s)" -lt "$until" ]; do
        curl -fs -m 2 -o /dev/null -X POST -H "authorization: Bearer $token" \
            "http://127.0.0.1:1829$leader/api/admin/events/0/$action" || true
        [ "$action" = pause ] && action=resume || action=pause
        sleep 0.25
    done
}

# Runs the changes for $seconds and prints each node's CPU % over them.
window() {
    local before=() after=()
    for id in 1 2 3; do before+=("$(cpu "$id")"); done
    changes "$seconds"
    for id in 1 2 3; do after+=("$(cpu "$id")"); done
    for i in 0 1 2; do
        echo "scale=1; 100 * (${after[$i]} - ${before[$i]}) / $seconds" | bc
    done
}

# The watchers' last report: "open N messages M failures F".
last_report() { tail -1 "$work/watch$1.log"; }

mapfile -t quiet < <(window)
for id in 1 2 3; do
    "$stress" --addr "127.0.0.1:1829$id" --watch "$streams" --watch-event 0 >"$work/watch$id.log" 2>&1 &
    pids+=($!)
done
# Every stream open before the window starts (polled, 60 s at most).
for _ in $(seq 1 600); do
    ready=0
    for id in 1 2 3; do
        open=$(last_report "$id" 2>/dev/null | awk '{print $2}')
        [ "${open:-0}" -ge "$streams" ] && ready=$((ready + 1))
    done
    [ "$ready" -eq 3 ] && break
    sleep 0.1
done
declare -a sent_before
for id in 1 2 3; do sent_before[id]=$(last_report "$id" | awk '{print $4}'); done
mapfile -t busy < <(window)

echo "streams per node: $streams, state changes: 4/s, window: ${seconds} s"
printf '%-6s %-9s %12s %12s %16s %14s %9s\n' node role "cpu quiet %" "cpu streams %" "per 1000 streams" "updates/s" failures
for id in 1 2 3; do
    role=follower
    [ "$id" = "$leader" ] && role=leader
    report=$(last_report "$id")
    sent=$(( ($(awk '{print $4}' <<<"$report") - sent_before[id]) / seconds ))
    per=$(echo "scale=2; (${busy[$((id - 1))]} - ${quiet[$((id - 1))]}) * 1000 / $streams" | bc)
    printf '%-6s %-9s %12s %12s %16s %14s %9s\n' "$id" "$role" "${quiet[$((id - 1))]}" \
        "${busy[$((id - 1))]}" "$per" "$sent" "$(awk '{print $6}' <<<"$report")"
done
