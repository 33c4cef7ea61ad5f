#!/usr/bin/env bash
# Installs the system packages the tests and benchmarks need, when they are missing.
# CI runs as root on a clean Debian 12 machine; elsewhere this only says what is missing.
#   postgresql-15       real clusters for the archiving and recovery tests
#   openssl             the self-signed certificate of the TLS S3 server
#   buildah podman ...  building and running the archiver image (no Docker engine here)
#   catatonit           the pause image of `podman kube play`'s pods (npm run rehearse): without it, play fails
#   debootstrap         the root filesystem of the postgres:15 stand-in (testkit/postgres-image-standin.sh)
#   containernetworking-plugins  podman 4.3's network backend here is CNI (netavark is not installed): its
#                       bridge and host-local plugins give `podman network create` + `kube play --ip` static IPs
#   docker-registry     a registry on 127.0.0.1 that the image command pushes to (npm run archiver:image -- --push)
#   zstd lz4 brotli     the command-line tools that must read what the archiver writes
#   prometheus          its promtool checks and unit-tests the rendered alert rules
set -euo pipefail

need=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
for tool in openssl buildah podman runc fuse-overlayfs zstd lz4 brotli docker-registry; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
command -v promtool >/dev/null || need+=(prometheus)
command -v catatonit >/dev/null || [ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || need+=(containernetworking-plugins)

if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
