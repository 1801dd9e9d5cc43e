#!/usr/bin/env bash
# Measures the delivery-log and statistics endpoints on a large seeded database and records the plans
# PostgreSQL chooses for them (docs/operations.md, "At 10 million events").
#
#   bench/log-queries.sh [MESSAGES]      (default 4000000 messages, about 10 million events)
#
# Starts its own PostgreSQL (fsync on, auto_explain logging the plan of every statement the API runs), seeds
# it with `relay dev seed`, starts `relay serve --roles api` (no worker: nothing is delivered), then times each
# request (median of 7 after one warm-up) and prints the plans of the log and stats queries. Needs a release
# or debug build of relay (RELAY_BIN, default .build/release/relay, else .build/debug/relay). Loopback only.
# BENCH_WORK=DIR BENCH_KEEP=1 keeps the seeded cluster in DIR; a later run with the same BENCH_WORK reuses it
# (no seeding), to compare plans after a change.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
messages=${1:-4000000}
relay=${RELAY_BIN:-$root/.build/release/relay}
[ -x "$relay" ] || relay=$root/.build/debug/relay
[ -x "$relay" ] || { echo "build relay first"; exit 2; }
PATH="$PATH:$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY

work=${BENCH_WORK:-$(mktemp -d /tmp/relay-bench-log.XXXXXX)}
chmod 755 "$work"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then chown postgres "$work"; as_pg=(runuser -u postgres --); fi
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
relay_pid=""
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null || true
  "${as_pg[@]}" pg_ctl stop -D "$work/pg" -m fast >/dev/null 2>&1 || true
  [ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

reuse=""
[ -f "$work/pg/PG_VERSION" ] && [ -f "$work/seed.txt" ] && reuse=1
[ -n "$reuse" ] || "${as_pg[@]}" initdb -D "$work/pg" -U relay --auth=trust -E UTF8 --locale=C >/dev/null
"${as_pg[@]}" pg_ctl start -w -D "$work/pg" -l "$work/pg.log" -o "-p $pgport -k $work -c listen_addresses=127.0.0.1 \
  -c shared_buffers=1GB -c work_mem=32MB -c maintenance_work_mem=512MB -c max_wal_size=8GB \
  -c shared_preload_libraries=auto_explain" >/dev/null
url="postgres://relay@127.0.0.1:$pgport/postgres"
if [ -z "$reuse" ]; then
  echo "PostgreSQL on $pgport; seeding $messages messages"
  DATABASE_URL="$url" RELAY_LOG_LEVEL=warning "$relay" dev seed --messages "$messages" --tenant bench --seed 1 | tee "$work/seed.txt"
else
  echo "PostgreSQL on $pgport; reusing the seeded cluster in $work"
fi
key=$(grep -o 'rly_[A-Za-z0-9_-]*' "$work/seed.txt" | head -1)
psql "$url" -qAt -c "VACUUM ANALYZE" >/dev/null
psql "$url" -At -c "SELECT 'events: ' || count(*) FROM events" -c "SELECT 'messages: ' || count(*) FROM messages" \
  -c "SELECT 'recipients: ' || count(*) FROM recipients" -c "SELECT 'attempts: ' || count(*) FROM attempts" \
  -c "SELECT 'stats_hourly rows: ' || count(*) FROM stats_hourly" -c "SELECT 'stats_daily rows: ' || count(*) FROM stats_daily" \
  -c "SELECT 'database size: ' || pg_size_pretty(pg_database_size('postgres'))"

DATABASE_URL="$url" RELAY_HTTP_ADDR="127.0.0.1:$port" RELAY_ROLES=api RELAY_ADMIN_TOKEN=bench-admin \
RELAY_LOG_LEVEL=warning RELAY_SUBMISSION_ADDR=off RELAY_SUBMISSIONS_ADDR=off RELAY_INBOUND_ADDR=off RELAY_REQUIRE_VERIFIED_DOMAINS=false RELAY_DNS_SERVERS=127.0.0.1:9 \
  "$relay" serve >"$work/relay.log" 2>&1 &
relay_pid=$!
for _ in $(seq 1 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)" = 200 ] && break
  sleep 0.2
done

# A bounced recipient and a frequent domain from the seeded data, for the filters.
bounced=$(psql "$url" -At -c "SELECT email FROM recipients WHERE status = 'bounced' ORDER BY id DESC LIMIT 1")
recipient=$(psql "$url" -At -c "SELECT email FROM recipients ORDER BY id DESC LIMIT 1 OFFSET 1000")
since=$(date -u -d '7 days ago' +%FT%TZ)

time_request() { # label path [token]
  local label=$1 path=$2 token=${3:-$key} times=()
  curl -s -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path"   # warm-up
  for _ in 1 2 3 4 5 6 7; do
    times+=("$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path")")
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 4p)
  printf '| %s | `%s` | %s ms |\n' "$label" "$path" "$(awk "BEGIN { printf \"%.1f\", $median * 1000 }")"
}

psql "$url" -qAt -c "ALTER SYSTEM SET auto_explain.log_min_duration = 0" -c "ALTER SYSTEM SET auto_explain.log_analyze = on" \
  -c "ALTER SYSTEM SET auto_explain.log_buffers = on" -c "ALTER SYSTEM SET auto_explain.log_timing = on" \
  -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
: > "$work/pg.log"
echo
echo "| Question | Request | Median |"
echo "|---|---|---|"
time_request "latest messages" "/v1/messages?limit=50"
time_request "was my email to X delivered?" "/v1/messages?recipient=$bounced"
time_request "bounced messages" "/v1/messages?status=bounced&limit=50"
time_request "messages to a domain" "/v1/messages?domain=outlook.com&limit=50"
time_request "messages with a tag" "/v1/messages?tag=receipt&limit=50"
time_request "messages from a sender" "/v1/messages?from=billing@seed.example&limit=50"
time_request "what did the server say? (events)" "/v1/events?recipient=$bounced"
time_request "latest bounces (event stream)" "/v1/events?type=bounced&limit=50"
time_request "events since a week ago, oldest first" "/v1/events?since=$since&order=asc&limit=100"
time_request "SMTP transcript of a message" "/v1/messages/$(psql "$url" -At -c "SELECT message_id FROM recipients WHERE email = '$bounced' LIMIT 1")/attempts"
time_request "stats, last 7 days" "/v1/stats"
time_request "stats, last 30 days by day" "/v1/stats?since=$(date -u -d '30 days ago' +%FT%TZ)&bucket=day"
time_request "stats, last 24 hours by hour" "/v1/stats?since=$(date -u -d '24 hours ago' +%FT%TZ)&bucket=hour"
time_request "admin stats, 7 days" "/admin/stats" bench-admin
psql "$url" -qAt -c "ALTER SYSTEM RESET ALL" -c "SELECT pg_reload_conf()" >/dev/null
cp "$work/pg.log" "${BENCH_PLANS:-/tmp/relay-log-query-plans.log}"
echo
echo "plans of every statement: ${BENCH_PLANS:-/tmp/relay-log-query-plans.log}"
