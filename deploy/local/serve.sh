#!/usr/bin/env bash
# `make serve`: the whole service on this host, in the foreground. Starts a local Redis
# (append-only, under .run/) unless SANDBOX_REDIS_URL points at one. Ctrl-C stops everything:
# the API, the workers (which remove their containers) and the Redis started here.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
started_redis=""
if [ -z "${SANDBOX_REDIS_URL:-}" ]; then
  redis-cli -p 6379 ping >/dev/null 2>&1 || started_redis=6379
  SANDBOX_REDIS_URL="$("$root/deploy/local/ensure-redis.sh" 6379 "$root/.run/redis")"
  export SANDBOX_REDIS_URL
fi
echo "redis: $SANDBOX_REDIS_URL; API on http://${SANDBOX_HOST:-127.0.0.1}:${SANDBOX_PORT:-8000}" >&2

status=0
"$root/.venv/bin/sandbox" serve --workers "${WORKERS:-1}" --api-processes "${API_PROCESSES:-1}" \
  || status=$?
if [ -n "$started_redis" ]; then
  redis-cli -p "$started_redis" shutdown >/dev/null 2>&1 || true  # the append-only file keeps its data
fi
exit "$status"
