#!/usr/bin/env bash
# `make cluster`: three nodes and HAProxy on loopback, with the demo event;
# data under ./data/cluster (kept between runs, like `make run`'s ./data).
# Ctrl-C stops HAProxy and the nodes (SIGTERM: each drains and flushes).
#
#   scripts/cluster.sh BINARY [DATA_DIR]
#
# Addresses: fans and operators on http://127.0.0.1:8080 (HAProxy), the
# nodes on 8081-8083, their peers' listeners on 7101-7103. Override the
# front with LISTEN, and the nodes' ports with NODE_HTTP_BASE (node N
# listens on base + N) and NODE_PEERS_BASE, on the first run (they are
# written into the cluster file).
set -euo pipefail

bin=${1:?usage: scripts/cluster.sh BINARY [DATA_DIR]}
data=${2:-data/cluster}
listen=${LISTEN:-127.0.0.1:8080}
haproxy=${HAPROXY:-/usr/sbin/haproxy}
http_base=${NODE_HTTP_BASE:-8080}
peers_base=${NODE_PEERS_BASE:-7100}
file="$data/cluster.toml"

mkdir -p "$data"
if [ ! -f "$file" ]; then
    # The secret authenticates the nodes to each other: random, kept with
    # the data, readable by its owner only.
    secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    umask 077
    {
        echo "secret = \"$secret\""
        for id in 1 2 3; do
            printf '[[nodes]]\nid = %d\npeers = "127.0.0.1:%d"\nhttp = "127.0.0.1:%d"\n' \
                "$id" $((peers_base + id)) $((http_base + id))
        done
    } > "$file"
    umask 022
fi

pids=()
stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping HAProxy and the nodes"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait || true
}
trap stop INT TERM EXIT

# HAProxy connects from 127.0.0.1: the nodes believe its X-Forwarded-For
# (rate limits and the audit trail see the fan's address, not HAProxy's).
export INGRESSOJA_TRUSTED_PROXIES=127.0.0.1
# Links in letters (receipts, reset links) point at the balancer, not at
# the node that happened to send them.
export INGRESSOJA_PUBLIC_URL=${INGRESSOJA_PUBLIC_URL:-http://$listen}
for id in 1 2 3; do
    "$bin" serve --cluster "$file" --node "$id" --data "$data/node$id" --demo \
        > "$data/node$id.log" 2>&1 &
    pids+=($!)
done

# Found the group (the first run only: a founded group says so, and that
# is fine). The nodes take a moment to listen.
for _ in $(seq 1 300); do
    if out=$("$bin" cluster init --cluster "$file" 2>&1); then break; fi
    case "$out" in *already*) break ;; esac
    sleep 0.1
done

"$bin" cluster haproxy-config --cluster "$file" --listen "$listen" \
    --admin-socket "$data/haproxy.sock" > "$data/haproxy.cfg"
"$haproxy" -W -db -f "$data/haproxy.cfg" > "$data/haproxy.log" 2>&1 &
pids+=($!)
# Up once it takes connections; a configuration it refuses ends the run.
for _ in $(seq 1 100); do
    if ! kill -0 "${pids[3]}" 2>/dev/null; then
        echo "HAProxy did not start:" >&2
        cat "$data/haproxy.log" >&2
        exit 1
    fi
    if (exec 3<>"/dev/tcp/${listen%:*}/${listen##*:}") 2>/dev/null; then break; fi
    sleep 0.1
done

cat <<EOF

IngressoJa: three nodes behind HAProxy
  open        http://$listen/
  nodes       http://127.0.0.1:$((http_base + 1))  :$((http_base + 2))  :$((http_base + 3))   (logs: $data/node*.log)
  HAProxy     $data/haproxy.cfg                     (log: $data/haproxy.log)
  drain one   echo 'set server nodes/node2 state drain' | socat - $data/haproxy.sock   (HAProxy's runtime API; 'state ready' puts it back)
  status      $bin cluster status --cluster $file
  an admin    $bin admin create EMAIL --cluster $file
  node pids   ${pids[0]} ${pids[1]} ${pids[2]}   (kill -9 one: the sale goes on without it)
Ctrl-C stops everything.
EOF
wait
