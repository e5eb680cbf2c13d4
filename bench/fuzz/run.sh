#!/usr/bin/env bash
# Property-based API fuzzing with schemathesis against the app's own OpenAPI schema: no request
# may get a 500 or an undocumented answer. The server runs on 127.0.0.1 with a throw-away
# database; schemathesis lives in its own venv (.venv-fuzz) so it cannot move the app's pins.
#   bash bench/fuzz/run.sh                 # SQLite;  MAX_EXAMPLES=100 by default
#   DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/fuzz bash bench/fuzz/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PORT:-18090}
MAX_EXAMPLES=${MAX_EXAMPLES:-100}
work=$(mktemp -d)
cleanup() {
    [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

[ -x .venv-fuzz/bin/st ] || { python3 -m venv .venv-fuzz && .venv-fuzz/bin/pip install -q schemathesis; }

export DATABASE_URL=${DATABASE_URL:-sqlite+aiosqlite:///$work/fuzz.db}
export SECRET_KEY="fuzz-secret-0123456789-abcdefghijklmnop" LOG_LEVEL=WARNING SCHEDULER_ENABLED=false
export PASSWORD_HASH_TIME_COST=1 PASSWORD_HASH_MEMORY_KIB=8
.venv/bin/chatbot serve --host 127.0.0.1 --port "$PORT" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 120); do curl -sf "127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.5; done

base="http://127.0.0.1:$PORT"
curl -sf "$base/api/signup/" -H 'Content-Type: application/json' \
    -d '{"email":"fuzz@example.com","username":"fuzz","password":"fuzz password 1"}' > /dev/null || true
TOKEN=$(curl -sf "$base/api/login/" -H 'Content-Type: application/json' \
    -d '{"email":"fuzz@example.com","password":"fuzz password 1"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])')

status=0
.venv-fuzz/bin/st run "$base/openapi.json" -H "Authorization: Bearer $TOKEN" \
    --max-examples "$MAX_EXAMPLES" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    || status=$?
echo "unhandled errors logged by the server: $(grep -c 'Unhandled error' "$work/server.log" || true)"
exit "$status"
