#!/usr/bin/env bash
# The loopback lab of haproxy.cfg, end to end: a throwaway PostgreSQL, three Relay nodes on the lab ports, HAProxy
# with this directory's haproxy.cfg, then a drain: SIGTERM to node 2 while HTTP requests go through HAProxy.
# Everything listens on 127.0.0.1 and is stopped at exit; it runs about 30 seconds.
#
#   deploy/haproxy/lab.sh .build/debug/relay
#
# Checks, each printed as ok/FAIL: every node becomes ready, HAProxy marks all three UP, an API call through
# HAProxy works, no HTTP request through HAProxy fails while node 2 drains, and HAProxy takes node 2 out.
# SMTP through HAProxy is reported but not judged here; haproxy.cfg sends a PROXY v2 header, so the nodes run
# with RELAY_PROXY_PROTOCOL=true (SubmissionTests checks that path with swaks' PROXY v1/v2 support).
# Run as root (HAProxy binds 25/465/587, then drops to the haproxy user as haproxy.cfg says).
# Needs: PostgreSQL's initdb/pg_ctl (Debian: postgresql), haproxy, curl, python3. Ports: 8080, 587, 465, 25,
# 8404, 18081-18083, 15871-15873, 14651-14653, 10251-10253, 55499.
set -euo pipefail

relay=$(realpath "${1:?usage: lab.sh PATH_TO_RELAY_BINARY}")
here=$(cd "$(dirname "$0")" && pwd)
pgbin=$(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgport=55499
work=$(mktemp -d /tmp/relay-haproxy-lab.XXXXXX)
chmod 755 "$work"
pids=()
failures=0

# PostgreSQL refuses to run as root.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    as_pg "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
    wait 2>/dev/null || true
    echo "logs: $work"
}
trap cleanup EXIT

check() {  # check NAME COMMAND...
    if "${@:2}"; then echo "ok    $1"; else echo "FAIL  $1"; failures=$((failures + 1)); fi
}

mkdir -p "$work/pg"
if [ "$(id -u)" = 0 ]; then chown postgres "$work/pg"; fi
as_pg "$pgbin/initdb" -D "$work/pg" -U relay --auth=trust >"$work/initdb.log"
as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg/server.log" -w \
    -o "-p $pgport -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U relay relay

key=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
for n in 1 2 3; do
    mkdir -p "$work/node$n"
    env DATABASE_URL="postgres://relay@127.0.0.1:$pgport/relay" RELAY_SECRET_KEY="$key" RELAY_ADMIN_TOKEN=lab \
        RELAY_HOSTNAME=relay.lab.test RELAY_DATA_DIR="$work/node$n" RELAY_DNS_SERVERS=127.0.0.1 \
        RELAY_HTTP_ADDR=127.0.0.1:1808$n RELAY_SUBMISSION_ADDR=127.0.0.1:1587$n \
        RELAY_SUBMISSIONS_ADDR=127.0.0.1:1465$n RELAY_INBOUND_ADDR=127.0.0.1:1025$n RELAY_PROXY_PROTOCOL=true \
        "$relay" serve >"$work/node$n/log" 2>&1 &
    pids+=($!)
done
node2=${pids[1]}

ready() { for n in 1 2 3; do curl -fs -o /dev/null "127.0.0.1:1808$n/readyz" || return 1; done; }
for _ in $(seq 60); do ready && break; sleep 0.5; done
check "three nodes ready (/readyz 200)" ready

# -n: a maxconn this shell's file limit allows (the file says 20000 for a real host).
haproxy -db -n 4000 -f "$here/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
state() { curl -s "127.0.0.1:8404/;csv" | awk -F, -v b="$1" -v s="$2" '$1 == b && $2 == s { print $18 }'; }
all_up() {
    for b in relay_http_nodes smtp_submission_nodes smtp_submissions_nodes smtp_inbound_nodes; do
        for s in relay1 relay2 relay3; do [ "$(state $b $s)" = UP ] || return 1; done
    done
}
for _ in $(seq 30); do all_up && break; sleep 0.5; done
check "HAProxy: every node UP in every backend" all_up
check "API through HAProxy (POST /admin/tenants)" \
    curl -fs -o /dev/null -X POST 127.0.0.1:8080/admin/tenants -H "Authorization: Bearer lab" -d '{"name":"lab"}'

smtp_banner=$(python3 - <<'EOF'
import socket
try:
    s = socket.create_connection(("127.0.0.1", 587), timeout=5)
    first = s.recv(200).split(b"\r\n")[0]
    s.sendall(b"EHLO lab.test\r\n")
    print(first.decode(errors="replace"), "/", s.recv(200).split(b"\r\n")[0].decode(errors="replace"))
except OSError as error:
    print("error:", error)
EOF
)
echo "info  SMTP 587 through HAProxy (PROXY v2): $smtp_banner"

# The drain: HTTP requests through HAProxy every 100 ms while node 2 gets SIGTERM.
(for _ in $(seq 50); do curl -s -o /dev/null -w "%{http_code}\n" --max-time 3 127.0.0.1:8080/readyz; sleep 0.1; done) \
    >"$work/drain-requests" &
loop=$!
sleep 1
kill -TERM "$node2"
down() { [ "$(state relay_http_nodes relay2)" != UP ] && [ "$(state smtp_submission_nodes relay2)" != UP ]; }
for _ in $(seq 20); do down && break; sleep 0.5; done
check "HAProxy takes node 2 out after its SIGTERM" down
wait "$loop"
all_200() { [ "$(grep -vc '^200$' "$work/drain-requests")" = 0 ]; }
check "no failed HTTP request through HAProxy during the drain ($(wc -l <"$work/drain-requests") sent)" all_200
# `wait` (not kill -0, which a zombie passes): the node ends its drain and exits on its own, with status 0.
check "node 2 exited by itself after draining, status 0" wait "$node2"

[ "$failures" = 0 ]
