#!/usr/bin/env bash
# Prints the bearer token of a two-factor session for an administrator made
# with `ingressoja admin create`, on a running server: logs in with the
# password, enrolls two-factor, computes the first code with oathtool and
# confirms it. For scripts that set up benches and load tests.
# Usage: benches/http/admin_session.sh http://127.0.0.1:8080 EMAIL PASSWORD
set -euo pipefail
addr=$1 email=$2 password=$3
cookie() { sed -n 's/^[Ss]et-[Cc]ookie: ij_session=\([^;]*\).*/\1/p' | tr -d '\r'; }
token=$(curl -s -D - -o /dev/null -X POST "$addr/api/session" \
  -d "{\"email\":\"$email\",\"password\":\"$password\"}" | cookie)
[ -n "$token" ] || { echo "login failed for $email" >&2; exit 1; }
secret=$(curl -s -X POST -H "Authorization: Bearer $token" "$addr/api/me/two-factor" \
  | sed 's/.*"secret":"\([^"]*\)".*/\1/')
code=$(oathtool --totp -b "$secret")
curl -s -D - -o /dev/null -X POST -H "Authorization: Bearer $token" \
  "$addr/api/me/two-factor/confirm" -d "{\"code\":\"$code\"}" | cookie
