#!/usr/bin/env bash
# `make serve`: the whole service on this host, in the foreground. Starts a local Redis
# (append-only, under .run/) unless SANDBOX_REDIS_URL points at one. Ctrl-C stops everything.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "${SANDBOX_REDIS_URL:-}" ]; then
  SANDBOX_REDIS_URL="$("$root/deploy/local/ensure-redis.sh" 6379 "$root/.run/redis")"
  export SANDBOX_REDIS_URL
fi
echo "redis: $SANDBOX_REDIS_URL; API on http://${SANDBOX_HOST:-127.0.0.1}:${SANDBOX_PORT:-8000}" >&2
exec "$root/.venv/bin/sandbox" serve --workers "${WORKERS:-1}" --api-processes "${API_PROCESSES:-1}"
