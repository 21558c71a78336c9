#!/usr/bin/env bash
# Build the deployment's images from this tree: sandbox-service (API and worker, the root
# Dockerfile), sandbox-redis and sandbox-proxy (deploy/redis, deploy/proxy). The base is pulled,
# or bootstrapped with debootstrap where no registry is reachable. CA certificates this host
# trusts locally (/usr/local/share/ca-certificates) are handed to the build, so pip also works
# behind a TLS-intercepting proxy.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/sandbox_images/bootstrap_base.sh" debian:bookworm-slim
extra_ca="$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)"

build() {  # tag context [dockerfile]
  echo "building $1" >&2
  docker build -q --force-rm -t "$1" --build-arg EXTRA_CA_CERTS="$extra_ca" -f "${3:-$2/Dockerfile}" "$2" \
    2> >(grep -v -i -E 'legacy builder|buildx|^\s*$' >&2) >/dev/null
}

build "${SANDBOX_SERVICE_IMAGE:-sandbox-service:latest}" "$root" "$root/Dockerfile"
build sandbox-redis:latest "$root/deploy/redis"
build sandbox-proxy:latest "$root/deploy/proxy"
# Drop the images these tags replaced: dangling ones carrying our title label only.
for title in sandbox-service sandbox-redis sandbox-proxy; do
  docker image prune -f --filter "label=org.opencontainers.image.title=$title" >/dev/null
done
