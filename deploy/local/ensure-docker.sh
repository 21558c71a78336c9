#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io where missing, start dockerd
# where none runs. Idempotent; used by `make serve` and `make test`.
set -euo pipefail

answers() { timeout 20 docker info >/dev/null 2>&1; }

if answers; then exit 0; fi
if pgrep -x dockerd >/dev/null; then
  # It runs but does not answer: hung (Debian 12's engine, 20.10, can deadlock in libnetwork
  # when many containers are removed at once). Its containers were started with --rm and the
  # new engine removes them as it starts.
  echo "dockerd does not answer: restarting it" >&2
  pkill -TERM -x dockerd || true
  for _ in $(seq 1 50); do pgrep -x dockerd >/dev/null || break; sleep 0.2; done
  pkill -KILL -x dockerd || true
  pkill -KILL -x containerd || true
  # The new engine refuses a containerd it finds still running (its pid file), and then times out.
  for _ in $(seq 1 50); do pgrep -x 'dockerd|containerd' >/dev/null || break; sleep 0.2; done
  rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing docker.io" >&2
  apt-get update -q >/dev/null && apt-get install -y -q docker.io >/dev/null
fi
if ! answers; then
  echo "starting dockerd" >&2
  # A dockerd that died without cleaning up leaves its pid file, and a new one refuses to start.
  pidfile=/var/run/docker.pid
  if [ -f "$pidfile" ] && ! pgrep -x dockerd >/dev/null; then rm -f "$pidfile"; fi
  log="${DOCKERD_LOG:-/var/log/dockerd.log}"
  nohup dockerd >>"$log" 2>&1 &
  for _ in $(seq 1 100); do
    answers && break
    sleep 0.2
  done
fi
answers || { echo "dockerd did not start; see its log" >&2; exit 1; }
