#!/usr/bin/env bash
# Exercises the GraphQL API from an independent client, PyPI `gql` (scripts/graphql_client.py),
# against a live `scimdesk serve` on SQLite (default) or PostgreSQL (`postgres` argument).
# Usage: scripts/graphql-client.sh [sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."

backend="${1:-sqlite}"
bin="${SCIMDESK_BIN:-${CARGO_TARGET_DIR:-target}/debug/scimdesk}"
venv="${GQL_VENV:-target/gql-venv}"
[ -x "$bin" ] || cargo build --quiet
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import gql" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'gql[requests,websockets]==3.5.3'
fi

work="$(mktemp -d)"
pid=""
schema=""
pg_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "$schema" ] && psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

export SCIMDESK_CONFIG="$work/config" SCIMDESK_DATA_DIR="$work/data" SCIMDESK_OPERATOR=gql
unset DATABASE_URL SCIMDESK_MASTER_KEY SCIMDESK_ORG SCIMDESK_DATABASE_URL
if [ "$backend" = postgres ]; then
  schema="gqlclient_$$_$RANDOM"
  psql -q "$pg_url" -c "CREATE SCHEMA $schema" >/dev/null
  export SCIMDESK_DATABASE_URL="${pg_url}?options=-c%20search_path%3D${schema}"
fi

cli=("$bin" --org gqlclient)
"$bin" org create gqlclient >/dev/null
echo "target-secret-for-gql" | "${cli[@]}" connection add ehr --kind scim-target \
  --base-url http://127.0.0.1:9/scim/v2 --setting user_scope=all --secret-stdin >/dev/null 2>&1
"${cli[@]}" connection add idp --kind scim_inbound >/dev/null
scim_token="$("${cli[@]}" token create --name idp --connection idp 2>/dev/null)"
read_token="$("${cli[@]}" token create --name gql-reader --scope read 2>/dev/null)"
admin_token="$("${cli[@]}" token create --name gql-admin --scope admin 2>/dev/null)"

"$bin" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>&1 &
pid=$!
base=""
for _ in $(seq 1 100); do
  base="$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -n 1 || true)"
  [ -n "$base" ] && break
  sleep 0.1
done
[ -n "$base" ] || { echo "scimdesk serve did not start:"; cat "$work/serve.out"; exit 1; }

# Five users pushed the way an identity provider pushes them.
for i in 1 2 3 4 5; do
  curl -sf -o /dev/null "$base/scim/v2/Users" -H "authorization: Bearer $scim_token" \
    -H 'content-type: application/scim+json' \
    -d "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"nurse$i@gql.example\"}"
done

"$venv/bin/python" scripts/graphql_client.py "$base/graphql" "$read_token" "$admin_token" "${cli[@]}"
