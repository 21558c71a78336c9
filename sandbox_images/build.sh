#!/usr/bin/env bash
# Build every sandbox image (sandbox-<language>:$SANDBOX_IMAGE_TAG, default latest), providing the
# base image first.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
base="$(sed -n 's/^FROM \([^ ]*\).*/\1/p' "$here/python/Dockerfile" | head -n1)"
"$here/bootstrap_base.sh" "$base"
tag="${SANDBOX_IMAGE_TAG:-latest}"
for dir in "$here"/*/; do
  [ -f "$dir/Dockerfile" ] || continue
  lang="$(basename "$dir")"
  # The host's own CA certificates (a TLS-intercepting proxy's), for steps that fetch packages
  # over HTTPS in a build stage; empty where the host has none.
  rm -rf "$dir/certs" && mkdir -p "$dir/certs"
  cp /usr/local/share/ca-certificates/*.crt "$dir/certs/" 2>/dev/null || true
  echo "building sandbox-$lang:$tag" >&2
  docker build -q -t "sandbox-$lang:$tag" "$dir" >/dev/null
done
