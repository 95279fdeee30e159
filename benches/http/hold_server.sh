# Sourced by compare.sh and ab.sh: starts an IngressoJa server for the hold
# path benches and prepares fans with a turn.
# start_hold_server BIN PORT WORK FANS [HOLDER]: `serve --demo` in
# development mode with rate limits off, data in WORK/data, on
# 127.0.0.1:PORT; an administrator turns off proof of work and two-factor on
# the demo sale (wrk replays one request shape and cannot solve challenges);
# FANS fans get a session and join (the demo sale is open; max_active 2000);
# their tokens go to WORK/fans, one per line. HOLDER true keeps the sale
# named (require_holder) and gives each fan a holder with a CPF of their
# own, so every cart change also reads the holder; by default the sale is
# not named. The server's PID is in WORK/server.pid.
# The policy keeps arrival order (arrival_window_ms 0: the bench measures
# the hold path, not the arrival draw) and the fans are waited for until
# each has their turn (await_shopping).
# stop_hold_servers WORK: stops every server started under WORK/*/ and
# removes WORK (for the A/B scripts' exit trap).
# write_bench_config FILE: development mode, per-address and per-account
# limits off (every request comes from 127.0.0.1).
write_bench_config() {
  cat > "$1" <<CONF
development = true
[limits]
reads_per_ip = 0
joins_per_ip = 0
joins_per_account = 0
carts_per_ip = 0
carts_per_account = 0
CONF
}

# bench_cpf N: a valid CPF (check digits by the Receita Federal's rule) of
# its own for each N below 900 000 000.
bench_cpf() {
  local base d1=0 d2=0 i
  base=$(printf '%09d' $((100000000 + $1)))
  for i in $(seq 0 8); do d1=$((d1 + ${base:i:1} * (10 - i))); done
  d1=$((d1 * 10 % 11 % 10))
  base="$base$d1"
  for i in $(seq 0 9); do d2=$((d2 + ${base:i:1} * (11 - i))); done
  d2=$((d2 * 10 % 11 % 10))
  echo "$base$d2"
}

start_hold_server() {
  local bin=$1 port=$2 work=$3 fans=$4 holder=${5:-false} here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  mkdir -p "$work"
  write_bench_config "$work/ingressoja.toml"
  echo "bench admin password" | "$bin" admin create bench@example.com --data "$work/data" --password-stdin > /dev/null
  # wrk and the stream holder connect from one address (an environment
  # variable, which builds without the setting ignore).
  INGRESSOJA_MAX_CONNECTIONS_PER_IP=100000 "$bin" serve --demo --config "$work/ingressoja.toml" --data "$work/data" --listen "127.0.0.1:$port" > "$work/server.log" 2>&1 &
  echo $! > "$work/server.pid"
  for _ in $(seq 1 100); do curl -s -o /dev/null "127.0.0.1:$port/healthz" && break; sleep 0.1; done
  local admin
  admin=$("$here/admin_session.sh" "http://127.0.0.1:$port" bench@example.com "bench admin password")
  curl -s -o /dev/null -X PUT -H "Authorization: Bearer $admin" "127.0.0.1:$port/api/admin/events/0/policy" \
    -d "{\"pow_difficulty\":0,\"require_two_factor\":false,\"require_holder\":$holder,\"arrival_window_ms\":0}"
  : > "$work/fans"
  local id token
  for id in $(seq 1 "$fans"); do
    token=$(curl -s -X POST "127.0.0.1:$port/api/dev/session" -d "{\"email\":\"fan$id@bench.invalid\"}" | sed 's/.*"token":"\([^"]*\)".*/\1/')
    if [ "$holder" = true ]; then
      curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $token" "127.0.0.1:$port/api/me/holder" \
        -d "{\"name\":\"Fã de Teste\",\"cpf\":\"$(bench_cpf "$id")\"}"
    fi
    curl -s -o /dev/null -X POST -H "Authorization: Bearer $token" "127.0.0.1:$port/api/events/0/queue"
    echo "$token" >> "$work/fans"
  done
  await_shopping "127.0.0.1:$port" "$work/fans"
}

# await_shopping ADDR FANS_FILE: waits (30 s at most) until every fan in
# FANS_FILE has their turn, and fails otherwise: a fan still in line
# answers the hold path with a cheap 409, which would be measured as a
# hold.
await_shopping() {
  local addr=$1 fans=$2 waiting token
  for _ in $(seq 1 300); do
    waiting=0
    while read -r token; do
      curl -s -H "Authorization: Bearer $token" "$addr/api/events/0/queue" | grep -q '"status":"shopping"' || { waiting=1; break; }
    done < "$fans"
    [ "$waiting" = 0 ] && return 0
    sleep 0.1
  done
  echo "fans still without a turn after 30 s on $addr" >&2
  return 1
}

# refused_check RESULT: fails, saying so, when more than one answer in a
# thousand of a wrk run was not 2xx/3xx ("non-2xx N of M" in its figures):
# the run measured refusals, not the path. A few are the bench's own race
# (a fan's removal overtaking their add on another connection: 409
# no_hold), not the server's.
refused_check() {
  local refused total
  refused=$(sed -n 's/.*non-2xx \([0-9]*\) of \([0-9]*\).*/\1/p' <<< "$1")
  total=$(sed -n 's/.*non-2xx \([0-9]*\) of \([0-9]*\).*/\2/p' <<< "$1")
  if [ -n "$refused" ] && [ $((refused * 1000)) -gt "$total" ]; then
    echo "the run got refusals, its figures do not measure the path: $1" >&2
    return 1
  fi
}

stop_hold_servers() {
  local work=$1 pid_file
  for pid_file in "$work"/*/server.pid; do kill "$(cat "$pid_file")" 2>/dev/null || true; done
  rm -rf "$work"
}

# stop_hold_server DIR: stops the server started in DIR and waits for it.
stop_hold_server() {
  local pid
  pid=$(cat "$1/server.pid")
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
