#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io where missing, start dockerd
# where none runs. Idempotent; used by `make serve` and `make test`.
set -euo pipefail

if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing docker.io" >&2
  apt-get update -q >/dev/null && apt-get install -y -q docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd" >&2
  # A dockerd that died without cleaning up leaves its pid file, and a new one refuses to start.
  pidfile=/var/run/docker.pid
  if [ -f "$pidfile" ] && ! pgrep -x dockerd >/dev/null; then rm -f "$pidfile"; fi
  log="${DOCKERD_LOG:-/var/log/dockerd.log}"
  nohup dockerd >>"$log" 2>&1 &
  for _ in $(seq 1 100); do
    docker info >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
docker info >/dev/null 2>&1 || { echo "dockerd did not start; see its log" >&2; exit 1; }
