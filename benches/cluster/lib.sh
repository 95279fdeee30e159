# Shared by the cluster benches (sourced, not run): a scratch directory
# (`work`) and the processes to kill on exit (`pids`), the nodes' settings,
# waiting for an address, an administrator's two-factor session, an event
# for a drop, and three `serve --cluster` nodes on loopback. Expects `bin`
# (the ingressoja binary) to be set by the script.

work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

password="compare-password-123"
export INGRESSOJA_TRUSTED_PROXIES=127.0.0.1

cat > "$work/server.toml" <<EOF
development = true
[limits]
reads_per_ip = 0
joins_per_ip = 0
joins_per_account = 0
carts_per_ip = 0
carts_per_account = 0
EOF

wait_for() { # url
    for _ in $(seq 1 300); do curl -fs -m 1 "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "never answered: $1" >&2; return 1
}

# Logs the administrator in on $1 with both factors; prints the bearer token.
admin_token() {
    local addr=$1 cookie secret code
    cookie=$(curl -fs -m 10 -D - -o /dev/null -H 'content-type: application/json' \
        -d "{\"email\":\"ops@compare.invalid\",\"password\":\"$password\"}" "http://$addr/api/session" |
        sed -n 's/^[Ss]et-[Cc]ookie: ij_session=\([^;]*\).*/\1/p')
    secret=$(curl -fs -m 10 -X POST -H "authorization: Bearer $cookie" "http://$addr/api/me/two-factor" |
        python3 -c 'import sys,json; print(json.load(sys.stdin)["secret"])')
    code=$(oathtool --totp -b "$secret")
    curl -fs -m 10 -D - -o /dev/null -H 'content-type: application/json' -H "authorization: Bearer $cookie" \
        -d "{\"code\":\"$code\"}" "http://$addr/api/me/two-factor/confirm" |
        sed -n 's/^[Ss]et-[Cc]ookie: ij_session=\([^;]*\).*/\1/p'
}

create_event() { # addr token
    local now
    now=$(($(date +%s) * 1000))
    curl -fs -m 30 -H 'content-type: application/json' -H "authorization: Bearer $2" -d "{
      \"name\": \"Compare\", \"venue\": \"Loopback\", \"starts_at_ms\": $((now + 7200000)),
      \"opens_at_ms\": $((now - 1000)), \"closes_at_ms\": $((now + 3600000)),
      \"ticket_types\": [{\"name\": \"Pista\", \"price_cents\": 10000, \"capacity\": 100000, \"limit_per_customer\": 4}],
      \"policy\": {\"arrival_window_ms\": 0, \"max_active\": 100000, \"admit_per_second\": 100000,
                   \"pow_difficulty\": 0, \"require_two_factor\": false}}" \
        "http://$1/api/admin/events" >/dev/null
}

# Three nodes on 127.0.0.1:${1}1..3 (http) and ${2}1..3 (peers), founded,
# with the administrator made through the leader; sets `leader` (1..3).
start_cluster() { # http_prefix peers_prefix
    {
        echo "secret = \"$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')\""
        for id in 1 2 3; do
            printf '[[nodes]]\nid = %d\npeers = "127.0.0.1:%s%d"\nhttp = "127.0.0.1:%s%d"\n' \
                "$id" "$2" "$id" "$1" "$id"
        done
    } >"$work/cluster.toml"
    for id in 1 2 3; do
        "$bin" serve --cluster "$work/cluster.toml" --node "$id" --data "$work/node$id" \
            --config "$work/server.toml" >"$work/node$id.log" 2>&1 &
        pids+=($!)
    done
    for id in 1 2 3; do wait_for "http://127.0.0.1:$1$id/readyz"; done
    until "$bin" cluster init --cluster "$work/cluster.toml" >/dev/null 2>&1; do sleep 0.1; done
    until "$bin" admin create ops@compare.invalid --cluster "$work/cluster.toml" --password-stdin \
        <<<"$password" >/dev/null 2>&1; do sleep 0.2; done
    leader=""
    until [ -n "$leader" ]; do
        for id in 1 2 3; do
            if curl -fs -m 1 "http://127.0.0.1:$1$id/readyz" | grep -q '"role":"leader"'; then
                leader=$id
            fi
        done
    done
}
