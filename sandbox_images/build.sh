#!/usr/bin/env bash
# Build every sandbox image (sandbox-<language>:$SANDBOX_IMAGE_TAG, default latest), providing the
# base image first.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
base="$(sed -n 's/^FROM //p' "$here/python/Dockerfile" | head -n1)"
"$here/bootstrap_base.sh" "$base"
tag="${SANDBOX_IMAGE_TAG:-latest}"
for dir in "$here"/*/; do
  [ -f "$dir/Dockerfile" ] || continue
  lang="$(basename "$dir")"
  echo "building sandbox-$lang:$tag" >&2
  docker build -q -t "sandbox-$lang:$tag" "$dir" >/dev/null
done
