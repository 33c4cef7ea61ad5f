#!/usr/bin/env bash
# Builds the archiver container image (archiver/Containerfile) as localhost/pg-wal-archiver:VERSION.
#
#   archiver/scripts/build-image.sh [--rootfs-only]
#
# The root filesystem is assembled from this machine: archiver/dist with the real Node binary in
# place of its symlink, and the shared libraries `ldd` lists for it (glibc, libstdc++). No registry
# is needed. With --rootfs-only (or without buildah), it stops after preparing
# build/archiver-image/ (Containerfile + rootfs/), which any builder can use.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(node -p 'require("./archiver/package.json").version')
image=${ARCHIVER_IMAGE:-localhost/pg-wal-archiver:$version}
context=build/archiver-image

npx --no-install tsx archiver/scripts/build.ts >/dev/null
rm -rf "$context"
mkdir -p "$context/rootfs"
cp -a archiver/dist "$context/rootfs/archiver"
node_binary=$(readlink -f "$(command -v node)")
rm "$context/rootfs/archiver/bin/node"
cp "$node_binary" "$context/rootfs/archiver/bin/node"
# The libraries of Node and of the native compression module.
for lib in $(ldd "$node_binary" archiver/dist/lib/node_modules/zstd-napi/build/Release/binding.node | grep -v ':$' | grep -o '/[^ ]*' | sort -u); do
  mkdir -p "$context/rootfs$(dirname "$lib")"
  cp -L "$lib" "$context/rootfs$lib"
done
cp archiver/Containerfile "$context/Containerfile"

if [ "${1:-}" = "--rootfs-only" ] || ! command -v buildah >/dev/null; then
  echo "archiver image context in $context (buildah not used)"
  exit 0
fi
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/../shared/containers/containers.conf}
buildah ${BUILDAH_STORAGE:+--root "$BUILDAH_STORAGE"} --storage-driver overlay bud --pull=never --quiet \
  --label "org.opencontainers.image.version=$version" -t "$image" "$context" >/dev/null
echo "$image"
