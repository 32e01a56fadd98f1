#!/usr/bin/env bash
# Load test: gunicorn with production settings, driven by wrk on loopback.
#
# Serves the project with gunicorn (gunicorn.conf.py: sync workers, 2 × cores
# + 1 of them) and production settings (DEBUG off, a SECRET_KEY, hashed and
# compressed static files collected into a temporary STATIC_ROOT) on
# 127.0.0.1, against the 1M-row PostgreSQL benchmark database that
# bench/pages_bench.py builds. A superuser's session is created with a
# manage.py shell snippet (SessionStore); wrk then sends its cookie for
# DURATION to each page with 2 threads × 8 connections (a 30 s timeout, so
# slow answers are measured rather than dropped), and the script
# prints requests/s, p50 and p99 (wrk --latency) and the status codes that
# gunicorn's access log recorded, with the machine's load average before and
# after each run. It fails if any response was a 5xx.
#
#   bench/load_test.sh                   # the overview and the message changelist, 60 s each
#   bench/load_test.sh /admin/usage/modelusage/   # other pages
#   DURATION=10s bench/load_test.sh      # a quicker look
#   BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/aa_bench_100000 bench/load_test.sh
#   INGEST_RATE=1000 bench/load_test.sh  # while bench/api_ingest.py posts 1,000 ledger rows/s
#   DATABASE_REPLICA_URLS=postgres://…replica… bench/load_test.sh  # dashboard reads on a replica
#
# Needs wrk (Debian: apt-get install -y wrk) and the database built first:
#   .venv/bin/python bench/pages_bench.py --sizes 1000000 --databases postgres --build-only
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="$ROOT/.venv/bin/python"
GUNICORN="$ROOT/.venv/bin/gunicorn"

DATABASE="${BENCH_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/aa_bench_1000000}"
PORT="${PORT:-8765}"
DURATION="${DURATION:-60s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-8}"
WRK_TIMEOUT="${WRK_TIMEOUT:-30s}"  # gunicorn's own request timeout
if (($#)); then PAGES=("$@"); else PAGES=(/admin/dashboards/ /admin/chats/message/); fi

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

WORK="$(mktemp -d /tmp/aa_load_test.XXXXXX)"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Production settings: everything from the environment, as in deployment.
export DATABASE_URL="$DATABASE"
export DEBUG=false
export SECRET_KEY="load-test-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
export ALLOWED_HOSTS=127.0.0.1
export SECURE_COOKIES=false
export SECURE_SSL_REDIRECT=false  # wrk speaks plain http on loopback
export STATIC_ROOT="$WORK/static"
export GUNICORN_BIND="127.0.0.1:$PORT"
export GUNICORN_ACCESS_LOG="$WORK/access.log"
export GUNICORN_ERROR_LOG="$WORK/error.log"
export LOG_LEVEL=WARNING

echo "== collectstatic into $STATIC_ROOT"
"$PYTHON" manage.py collectstatic --noinput -v0

echo "== a superuser session"
SESSION="$("$PYTHON" manage.py shell -v0 -c '
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from core.models import User

user = User.objects.filter(username="bench").first()
if user is None:
    user = User.objects.create_superuser("bench", "bench@example.com", None)
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(session.session_key)
' | tail -n 1)"
COOKIE="sessionid=$SESSION"

INGEST_RATE="${INGEST_RATE:-0}"
if [[ "$INGEST_RATE" != 0 ]]; then
    echo "== an ingest API key (usage:write)"
    INGEST_KEY="$("$PYTHON" manage.py shell -v0 -c '
from core.apikeys import generate_api_key
from core.models import ApiKey, Source

source, _ = Source.objects.get_or_create(name="bench-ingest", defaults={"kind": Source.Kind.API})
raw, prefix, key_hash = generate_api_key()
ApiKey.objects.create(
    key_name="bench ingest", key_hash=key_hash, key_prefix=prefix, user=None,
    permissions=None, ingest_source=source,
)
print(raw)
' | tail -n 1)"
fi

echo "== gunicorn on 127.0.0.1:$PORT"
"$GUNICORN" --config gunicorn.conf.py &
SERVER_PID=$!
for _ in $(seq 1 60); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/health/" && break
    sleep 1
done
WORKERS="$(pgrep -c -P "$SERVER_PID" || true)"
echo "gunicorn master $SERVER_PID with $WORKERS workers"

SUMMARY="$WORK/summary.txt"
for page in "${PAGES[@]}"; do
    url="http://127.0.0.1:$PORT$page"
    status="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$url")"
    if [[ "$status" != 200 ]]; then
        echo "$page answered $status before the run (not logged in?)" >&2
        exit 1
    fi
    lines_before="$(wc -l <"$GUNICORN_ACCESS_LOG")"
    echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $page"
    load_before="$(cut -d' ' -f1 /proc/loadavg)"
    INGEST_PID=""
    if [[ "$INGEST_RATE" != 0 ]]; then
        "$PYTHON" bench/api_ingest.py --url "http://127.0.0.1:$PORT" --key "$INGEST_KEY" \
            --rate "$INGEST_RATE" --seconds "${DURATION%s}" >"$WORK/ingest.txt" &
        INGEST_PID=$!
    fi
    # --timeout: a slow response is measured, not dropped as a socket timeout (wrk's 2 s)
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout "$WRK_TIMEOUT" --latency \
        -H "Cookie: $COOKIE" "$url" | tee "$WORK/wrk.txt"
    load_after="$(cut -d' ' -f1 /proc/loadavg)"
    ingest="-"
    if [[ -n "$INGEST_PID" ]]; then
        wait "$INGEST_PID" || true
        cat "$WORK/ingest.txt"
        ingest="$(awk '{print $2}' "$WORK/ingest.txt") rows/s"
    fi
    sleep 1
    # Status codes of this run, from gunicorn's access log ('"GET … HTTP/1.1" 200 …').
    codes="$(tail -n +"$((lines_before + 1))" "$GUNICORN_ACCESS_LOG" \
        | grep -oE '" [0-9]{3} ' | tr -d '" ' | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}')"
    non2xx="$(tail -n +"$((lines_before + 1))" "$GUNICORN_ACCESS_LOG" \
        | grep -oE '" [0-9]{3} ' | tr -d '" ' | grep -vc '^2' || true)"
    server5xx="$(tail -n +"$((lines_before + 1))" "$GUNICORN_ACCESS_LOG" \
        | grep -oE '" [0-9]{3} ' | tr -d '" ' | grep -c '^5' || true)"
    rps="$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")"
    p50="$(awk '$1 == "50%" {print $2}' "$WORK/wrk.txt")"
    p99="$(awk '$1 == "99%" {print $2}' "$WORK/wrk.txt")"
    total="$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")"
    timeouts="$(awk -F'timeout ' '/Socket errors/ {print $2 + 0}' "$WORK/wrk.txt")"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$page" "$DURATION" \
        "$total" "$rps" "$p50" "$p99" "$non2xx" "$server5xx" "${timeouts:-0}" \
        "$load_before → $load_after" "$ingest" >>"$SUMMARY"
    echo "status codes: $codes"
done

echo
echo "gunicorn: $WORKERS sync workers on $(nproc) cores; wrk: $THREADS threads × $CONNECTIONS connections"
echo "| page | duration | requests | requests/s | p50 | p99 | non-2xx | 5xx | wrk timeouts |" \
    "load avg (1 min) | API ingest |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
cat "$SUMMARY"
if awk -F'|' '{ if ($9 + 0 > 0) bad = 1 } END { exit !bad }' "$SUMMARY"; then
    echo "FAILED: some responses were 5xx (see above)" >&2
    exit 1
fi
