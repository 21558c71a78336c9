#!/usr/bin/env bash
# Provide the base image our Dockerfiles start FROM. On a normal host it is pulled; where no
# registry is reachable it is built from Debian's archive with debootstrap and `docker import`d
# under the same tag, so one Dockerfile serves both.
set -euo pipefail

tag="${1:-debian:bookworm-slim}"
suite="${tag#*:}"; suite="${suite%-slim}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
if timeout 60 docker pull "$tag" >/dev/null 2>&1; then
  echo "pulled $tag"
  exit 0
fi

echo "cannot pull $tag: bootstrapping it from $mirror with debootstrap" >&2
command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null
root="$(mktemp -d /var/tmp/rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase "$suite" "$root" "$mirror" >/dev/null
# Keep it slim: no caches, docs or man pages, as the official -slim images.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar -C "$root" -c . | docker import \
  --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$tag" >/dev/null
echo "built $tag with debootstrap"
