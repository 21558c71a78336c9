#!/usr/bin/env bash
# Build the sandbox images (sandbox-<image>:$SANDBOX_IMAGE_TAG, default latest): every directory
# here with a Dockerfile, or those named as arguments. The base image is provided first, then the
# runner's image (runner/Dockerfile), which every other image copies the runner from. The build
# context is this directory. Images build in parallel (most of the time goes to downloading
# packages); a build's log is shown only when it fails.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
base="$(sed -n 's/^FROM \([^ ]*\).*/\1/p' "$here/runner/Dockerfile" | head -n1)"
"$here/bootstrap_base.sh" "$base"
tag="${SANDBOX_IMAGE_TAG:-latest}"
if [ "$#" -gt 0 ]; then
  images=("$@")
else
  images=()
  for dir in "$here"/*/; do
    [ -f "$dir/Dockerfile" ] && [ "$(basename "$dir")" != runner ] && images+=("$(basename "$dir")")
  done
fi
# The host's own CA certificates (a TLS-intercepting proxy's), for the Python image's step that
# fetches packages over HTTPS in a build stage; empty where the host has none.
rm -rf "$here/python/certs" && mkdir -p "$here/python/certs"
cp /usr/local/share/ca-certificates/*.crt "$here/python/certs/" 2>/dev/null || true
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
# build <image>: sandbox-<image>:<tag> from <image>/Dockerfile; its log only if it fails.
build() {
  echo "building sandbox-$1:$tag" >&2
  if ! docker build -q --force-rm -t "sandbox-$1:$tag" --build-arg "RUNNER_IMAGE=sandbox-runner:$tag" \
      -f "$here/$1/Dockerfile" "$here" >"$logs/$1" 2>&1; then
    echo "building sandbox-$1:$tag failed:" >&2
    cat "$logs/$1" >&2
    return 1
  fi
}
build runner  # first, with its compiled C module: every image copies it
pids=()
for image in "${images[@]}"; do
  build "$image" &
  pids+=("$!")
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
exit "$failed"
