#!/usr/bin/env bash
# Production-shaped load on 127.0.0.1: two `chatbot serve` replicas and one `chatbot worker` on
# PostgreSQL and Redis, behind nginx running deploy/nginx.conf (the compose file's). wrk mixes
# chats, history reads and uploads (every upload queued for the worker); the run fails on any
# 5xx or on a document the worker did not index. Bounded: DURATION seconds of load, then at most
# 180 s for the queue to drain; everything is stopped on exit.
#   bash bench/load/mixed.sh          # DURATION=20 CONNECTIONS=8
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-8}
PG=${PG:-postgresql://postgres@127.0.0.1:5432}
REDIS_DB=${REDIS_DB:-12}
work=$(mktemp -d)
pids=()
cleanup() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    dropdb -h 127.0.0.1 -U postgres --if-exists ragchat_load 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

dropdb -h 127.0.0.1 -U postgres --if-exists ragchat_load
createdb -h 127.0.0.1 -U postgres ragchat_load
redis-cli -n "$REDIS_DB" FLUSHDB > /dev/null
export DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/ragchat_load"
export TASK_BROKER_URL="redis://127.0.0.1:6379/$REDIS_DB" RATE_LIMIT_ENABLED=false
export SECRET_KEY="load-test-secret-0123456789-abcdefghij" LOG_LEVEL=WARNING
export PASSWORD_HASH_TIME_COST=1 PASSWORD_HASH_MEMORY_KIB=8 INGEST_INLINE_MAX_CHUNKS=0
export SCHEDULER_ENABLED=false FORWARDED_ALLOW_IPS=127.0.0.1

.venv/bin/chatbot migrate > "$work/migrate.log" 2>&1
app1=$(free_port); app2=$(free_port); proxy=$(free_port)
.venv/bin/chatbot serve --no-migrate --port "$app1" > "$work/app1.log" 2>&1 & pids+=($!)
.venv/bin/chatbot serve --no-migrate --port "$app2" > "$work/app2.log" 2>&1 & pids+=($!)
.venv/bin/chatbot worker > "$work/worker.log" 2>&1 & pids+=($!)
for port in "$app1" "$app2"; do
    for _ in $(seq 180); do curl -sf "127.0.0.1:$port/health" > /dev/null && break; sleep 0.5; done
done
for _ in $(seq 180); do grep -q "waiting for ingestion jobs" "$work/worker.log" && break; sleep 0.5; done

# deploy/nginx.conf as the container runs it, with the compose hostnames on loopback.
sed -e "s|server app1:8000;|server 127.0.0.1:$app1;|" -e "s|server app2:8000;|server 127.0.0.1:$app2;|" \
    -e "s|listen 8080;|listen 127.0.0.1:$proxy;|" \
    -e "s|server_tokens off;|server_tokens off; access_log $work/logs/access.log;|" \
    deploy/nginx.conf > "$work/nginx.conf"
mkdir -p "$work/logs"
nginx -p "$work" -c "$work/nginx.conf" -g "pid $work/nginx.pid; error_log $work/logs/error.log;"
base="http://127.0.0.1:$proxy"
for _ in $(seq 40); do curl -sf "$base/health" > /dev/null && break; sleep 0.25; done

curl -sSf "$base/api/signup/" -H 'Content-Type: application/json' \
    -d '{"email":"load@example.com","username":"load","password":"load password 1"}' > /dev/null
TOKEN=$(curl -sSf "$base/api/login/" -H 'Content-Type: application/json' \
    -d '{"email":"load@example.com","password":"load password 1"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])')
export TOKEN
curl -sSf "$base/api/documents/" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"title":"Handbook","content":"Employees receive 25 days of paid annual leave. Unused leave can be carried over until the end of March."}' > /dev/null

echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s through nginx: 2 replicas, 1 worker, PostgreSQL, Redis, $(nproc) cores"
wrk -t2 "-c$CONNECTIONS" "-d${DURATION}s" --timeout 30s --latency -s bench/load/mixed.lua "$base" > "$work/wrk.txt"
grep -E "Requests/sec|Latency  |50%|99%|status|Non-2xx|Socket errors" "$work/wrk.txt" || true

# Per route and status, from nginx's access log.
awk '{print $6, $7, $9}' "$work/logs/access.log" | sed 's/"//g; s/?[^ ]*//' \
    | sort | uniq -c | sort -rn | head -20
errors=$(awk '$9 ~ /^5/' "$work/logs/access.log" | wc -l)

# The worker must index every queued upload.
psql_count() { psql -h 127.0.0.1 -U postgres -d ragchat_load -tAc "$1"; }
for _ in $(seq 360); do
    [ "$(psql_count "SELECT COUNT(*) FROM documents WHERE status = 'processing'")" = "0" ] && break
    sleep 0.5
done
total=$(psql_count "SELECT COUNT(*) FROM documents")
ready=$(psql_count "SELECT COUNT(*) FROM documents WHERE status = 'ready'")
echo "documents: $ready of $total ready after the run"
echo "5xx responses through nginx: $errors"
[ "$errors" = "0" ] && [ "$ready" = "$total" ]
