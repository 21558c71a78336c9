#!/usr/bin/env bash
# Build every sandbox image (sandbox-<language>:latest), providing the base image first.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
base="$(sed -n 's/^FROM //p' "$here/python/Dockerfile" | head -n1)"
"$here/bootstrap_base.sh" "$base"
for dir in "$here"/*/; do
  [ -f "$dir/Dockerfile" ] || continue
  lang="$(basename "$dir")"
  echo "building sandbox-$lang:latest" >&2
  docker build -q -t "sandbox-$lang:latest" "$dir" >/dev/null
done
