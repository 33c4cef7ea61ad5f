#!/usr/bin/env bash
# Builds the archiver container image (archiver/Containerfile) and, with --push, pushes it to the
# registry its reference names.
#
#   ARCHIVER_IMAGE=ghcr.io/your-org/pg-wal-archiver:0.1.0 archiver/scripts/build-image.sh --push
#   archiver/scripts/build-image.sh [--rootfs-only]
#
#   ARCHIVER_IMAGE            the reference to tag (and push): registry/repository:tag. Default
#                             localhost/pg-wal-archiver:VERSION, an image on this machine only
#                             (the app refuses it unless ArchiverImage.use(..., { allowLocalImage: true })).
#   --push                    push it (log in first: `buildah login REGISTRY` or `docker login
#                             REGISTRY`); the last line printed is then the reference pinned to
#                             what was pushed, REFERENCE@sha256:..., to put into app.ts.
#   ARCHIVER_IMAGE_BUILDER    buildah (the default where it is installed) or docker.
#   ARCHIVER_PUSH_TLS_VERIFY  false for a registry served over plain HTTP (a test registry).
#   BUILDAH_STORAGE, BUILDAH_RUNROOT  buildah's --root and --runroot: a storage root of the
#                             caller's own (npm run rehearse), instead of the machine's.
#
# The root filesystem is assembled from this machine: archiver/dist with the real Node binary in
# place of its symlink, and the shared libraries `ldd` lists for it (glibc, libstdc++). No registry
# is needed to build. With --rootfs-only (or with neither buildah nor docker), it stops after
# preparing build/archiver-image/ (Containerfile + rootfs/), which any builder can use. The last
# line printed is the image reference.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(node -p 'require("./archiver/package.json").version')
image=${ARCHIVER_IMAGE:-localhost/pg-wal-archiver:$version}
context=build/archiver-image
push=false rootfs_only=false
for arg in "$@"; do
  case "$arg" in
    --push) push=true ;;
    --rootfs-only) rootfs_only=true ;;
    *) echo "build-image: unknown argument $arg (use --push or --rootfs-only)" >&2; exit 2 ;;
  esac
done
builder=${ARCHIVER_IMAGE_BUILDER:-$(command -v buildah >/dev/null && echo buildah || { command -v docker >/dev/null && echo docker; } || echo none)}
if [ "$push" = true ]; then
  # Only a reference that names a registry can be pushed; localhost/ names no registry at all.
  first=${image%%/*}
  if [ "$first" = "$image" ] || [ "$first" = localhost ] || ! [[ "$first" == *.* || "$first" == *:* ]]; then
    echo "build-image: --push needs ARCHIVER_IMAGE to name the registry the nodes pull from, e.g. ghcr.io/your-org/pg-wal-archiver:$version (got $image)" >&2
    exit 2
  fi
  if [ "$builder" = none ] || [ "$rootfs_only" = true ]; then
    echo "build-image: --push needs buildah or docker (ARCHIVER_IMAGE_BUILDER)" >&2
    exit 2
  fi
fi

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

if [ "$rootfs_only" = true ] || [ "$builder" = none ]; then
  echo "archiver image context in $context (no image built)"
  exit 0
fi
tls_verify=${ARCHIVER_PUSH_TLS_VERIFY:-true}
case "$builder" in
  buildah)
    export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/../shared/containers/containers.conf}
    buildah=(buildah ${BUILDAH_STORAGE:+--root "$BUILDAH_STORAGE"} ${BUILDAH_RUNROOT:+--runroot "$BUILDAH_RUNROOT"} --storage-driver overlay)
    "${buildah[@]}" bud --pull=never --quiet \
      --label "org.opencontainers.image.version=$version" -t "$image" "$context" >/dev/null
    echo "build-image: $image is $("${buildah[@]}" images --format '{{.Size}}' "$image" | head -1)" >&2
    if [ "$push" = true ]; then
      "${buildah[@]}" push --quiet --tls-verify="$tls_verify" --digestfile "$context/digest" "$image" "docker://$image"
      digest=$(cat "$context/digest")
    fi
    ;;
  docker)
    # Docker reads the registry's TLS settings from its daemon (insecure-registries), not from here.
    docker build --quiet --label "org.opencontainers.image.version=$version" -t "$image" "$context" >/dev/null
    echo "build-image: $image is $(docker image inspect --format '{{.Size}}' "$image") bytes" >&2
    if [ "$push" = true ]; then
      docker push --quiet "$image" >/dev/null
      repo_digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$image" | grep -m1 "^${image%:*}@")
      digest=${repo_digest#*@}
    fi
    ;;
  *)
    echo "build-image: ARCHIVER_IMAGE_BUILDER must be buildah or docker, got $builder" >&2
    exit 2
    ;;
esac
if [ "$push" = true ]; then
  echo "build-image: pushed $image; pin it in app.ts:" >&2
  echo "$image@$digest"
else
  echo "$image"
fi
