#!/usr/bin/env bash
# Makes gVisor available to this machine's Docker engine as the runtime "runsc", without
# restarting the engine: installs Debian's runsc, adds it to /etc/docker/daemon.json (keeping
# whatever else is there) and asks dockerd to reload its configuration (SIGHUP; running
# containers are not touched). Idempotent. Usage: enable_gvisor.sh [NAME]
#
# The runtime is registered with --network=none: the Debian 12 build of runsc cannot set up its
# own network stack under this engine ("cannot run with network enabled in root network
# namespace"), and the warm pool's sandboxes have no network anyway.
set -euo pipefail

name="${1:-runsc}"
registered() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q "\"$name\""; }
registered && exit 0

if ! command -v runsc >/dev/null 2>&1; then
  echo "installing runsc" >&2
  apt-get update -q >/dev/null && apt-get install -y -q runsc >/dev/null
fi
python3 - "$name" "$(command -v runsc)" <<'PY'
import json, os, sys
path = "/etc/docker/daemon.json"
config = {}
if os.path.exists(path) and os.path.getsize(path):
    with open(path) as f:
        config = json.load(f)
config.setdefault("runtimes", {})[sys.argv[1]] = {"path": sys.argv[2],
                                                  "runtimeArgs": ["--network=none"]}
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path + ".tmp", "w") as f:
    json.dump(config, f, indent=2)
os.replace(path + ".tmp", path)
PY
kill -HUP "$(pidof dockerd)"
for _ in $(seq 1 50); do
  registered && exit 0
  sleep 0.2
done
echo "dockerd did not take the runtime $name; see its log" >&2
exit 1
