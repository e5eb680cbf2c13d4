#!/usr/bin/env bash
# Load through nginx on 127.0.0.1, against the same uvicorn directly as the same-run baseline.
# Bounded: each wrk run lasts DURATION seconds; everything listens on 127.0.0.1 and is stopped
# on exit. Needs Debian's nginx and wrk (apt-get install nginx wrk).
#   bash bench/load/run.sh            # DURATION=10 WORKERS=2 CONNECTIONS=16
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
WORKERS=${WORKERS:-2}
CONNECTIONS=${CONNECTIONS:-16}
APP_PORT=${APP_PORT:-18000}
PROXY_PORT=${PROXY_PORT:-18080}
work=$(mktemp -d)
cleanup() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

export DATABASE_URL="sqlite+aiosqlite:///$work/load.db" SECRET_KEY="load-test-secret-0123456789-abcdefghij"
export LOG_LEVEL=WARNING SCHEDULER_ENABLED=false PASSWORD_HASH_TIME_COST=1 PASSWORD_HASH_MEMORY_KIB=8
.venv/bin/chatbot serve --host 127.0.0.1 --port "$APP_PORT" --workers "$WORKERS" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 120); do curl -sf "127.0.0.1:$APP_PORT/health" > /dev/null && break; sleep 0.5; done

sed -e "s|@WORK@|$work|g" -e "s|@APP_PORT@|$APP_PORT|g" -e "s|@PROXY_PORT@|$PROXY_PORT|g" \
    bench/load/nginx.conf > "$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work"

base="127.0.0.1:$APP_PORT"
curl -sf "$base/api/signup/" -H 'Content-Type: application/json' \
    -d '{"email":"load@example.com","username":"load","password":"load password 1"}' > /dev/null
TOKEN=$(curl -sf "$base/api/login/" -H 'Content-Type: application/json' \
    -d '{"email":"load@example.com","password":"load password 1"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])')
export TOKEN
curl -sf "$base/api/documents/" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"title":"Handbook","content":"Employees receive 25 days of paid annual leave. Unused leave can be carried over until the end of March. The office opens at 8am on weekdays."}' > /dev/null

run() {  # name url [script]
    local args=(-t2 "-c$CONNECTIONS" "-d${DURATION}s" --latency)
    [ -n "${3:-}" ] && args+=(-s "$3")
    wrk "${args[@]}" "$2" > "$work/$1.txt"
    local rps p50 p99 errors
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.txt")
    p50=$(awk '$1=="50%" {print $2}' "$work/$1.txt")
    p99=$(awk '$1=="99%" {print $2}' "$work/$1.txt")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' "$work/$1.txt" | tr '\n' ' ')
    printf '%-22s %10s req/s  p50 %-9s p99 %-9s %s\n' "$1" "$rps" "$p50" "$p99" "${errors:-no errors}"
    echo "$rps" > "$work/$1.rps"
}

echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s, $WORKERS uvicorn workers, $(nproc) cores"
run health-direct "http://$base/health"
run health-nginx "http://127.0.0.1:$PROXY_PORT/health"
run chat-direct "http://$base/api/chat/" bench/load/chat.lua
run chat-nginx "http://127.0.0.1:$PROXY_PORT/api/chat/" bench/load/chat.lua
python3 - "$work" <<'PY'
import sys
from pathlib import Path
work = Path(sys.argv[1])
rps = {p.stem: float(p.read_text()) for p in work.glob("*.rps")}
for name in ("health", "chat"):
    print(f"{name}: nginx/direct throughput ratio {rps[name + '-nginx'] / rps[name + '-direct']:.2f}")
PY
grep -c '"POST /api/chat/ HTTP/1.1" 200' "$work/access.log" | xargs echo "chat requests answered 200 through nginx:"
