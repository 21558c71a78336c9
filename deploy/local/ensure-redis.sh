#!/usr/bin/env bash
# Start a local Redis for this machine when none is configured: append-only, loopback only.
# Usage: ensure-redis.sh PORT DATADIR. Prints the URL to use. Idempotent.
set -euo pipefail

port="${1:-6379}"
dir="${2:-$PWD/.run/redis-$port}"
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server" >&2
  apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null
fi
if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
    --appendfsync everysec --save "" --daemonize yes --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log" >/dev/null
  for _ in $(seq 1 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
redis-cli -p "$port" ping >/dev/null
echo "redis://127.0.0.1:$port/0"
