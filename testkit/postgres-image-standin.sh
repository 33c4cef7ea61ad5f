#!/usr/bin/env bash
# Builds a stand-in for the official docker.io/library/postgres:15 image, for running the rendered
# pods under `podman kube play` (npm run rehearse): no container registry is reachable here, so the
# official image cannot be pulled. TEST INFRASTRUCTURE ONLY: it is not the official image.
#
#   testkit/postgres-image-standin.sh WORKDIR [IMAGE]   (default docker.io/library/postgres:15)
#   BUILDAH="buildah --root DIR --runroot DIR --storage-driver overlay" selects the storage root
#   (testkit/containers.ts: ContainerStorage.own().buildahCommand); without it, the machine's own.
#
# Root; needs debootstrap, buildah and deb.debian.org. WORKDIR holds the build's files (build.sh
# replaces WORKDIR/base); the caller removes it.
#
# What it holds: ../shared/containers/postgres-standin/build.sh's image (Debian 12's postgresql-15
# from debootstrap minbase at the official image's paths, postgres uid/gid 999, PGDATA, a minimal
# docker-entrypoint.sh with the official one's initdb contract; see its header), plus one layer:
# /usr/local/bin/docker-entrypoint.sh reads POSTGRES_PASSWORD_FILE, POSTGRES_USER_FILE,
# POSTGRES_DB_FILE and POSTGRES_INITDB_ARGS_FILE as the official entrypoint's `file_env` does
# (setting both VAR and VAR_FILE is an error), then runs the shared entrypoint, moved to
# /usr/local/bin/docker-entrypoint-standin.sh. How it differs from the official image: Debian's
# postgresql-15 build and minor version instead of the image's own, no gosu (setpriv), only the
# entrypoint behaviour above and in build.sh's docker-entrypoint.sh (no POSTGRES_HOST_AUTH_METHOD
# warnings, no POSTGRES_INITDB_WALDIR, no *.sql.gz/.xz/.zst init scripts), no docs.
# The printed last line is the image's name.
set -euo pipefail
work=${1:?usage: postgres-image-standin.sh WORKDIR [IMAGE]}
image=${2:-docker.io/library/postgres:15}
read -r -a buildah <<<"${BUILDAH:-buildah --storage-driver overlay}"
# build.sh is called by its path relative to the repository's root (../shared is not ours to edit).
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$repo/../shared/containers/postgres-standin/build.sh
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/../shared/containers/containers.conf}
t0=$(date +%s)

mkdir -p "$work"; work=$(cd "$work" && pwd)
# build.sh runs `buildah [--root $BUILDAH_ROOT] --storage-driver overlay bud`: it takes no runroot,
# and buildah's default runroot (/run/containers/storage) is the machine's shared one, whose layer
# mount records would then mix with ours. So the caller's root and runroot are given to it as a
# storage.conf of its own (containers/storage reads CONTAINERS_STORAGE_CONF; this machine has no
# /etc/containers/storage.conf to keep).
root='' runroot=''
for ((i = 1; i < ${#buildah[@]}; i++)); do
  case "${buildah[i]}" in
    --root) root=${buildah[i + 1]} ;;
    --root=*) root=${buildah[i]#--root=} ;;
    --runroot) runroot=${buildah[i + 1]} ;;
    --runroot=*) runroot=${buildah[i]#--runroot=} ;;
  esac
done
if [ -n "$runroot" ]; then
  printf '[storage]\ndriver = "overlay"\nrunroot = "%s"\ngraphroot = "%s"\n' \
    "$runroot" "${root:-/var/lib/containers/storage}" >"$work/storage.conf"
  export CONTAINERS_STORAGE_CONF=$work/storage.conf
fi
# An intermediate name, so that the caller's IMAGE is only ever the finished image.
base=localhost/postgres-standin-base:$$
BUILDAH_ROOT=$root "$build" "$work/base" "$base" >/dev/null

container=''
trap '[ -z "$container" ] || "${buildah[@]}" rm "$container" >/dev/null 2>&1 || true' EXIT
container=$("${buildah[@]}" from --pull=never "$base")
mnt=$("${buildah[@]}" mount "$container")
mv "$mnt/usr/local/bin/docker-entrypoint.sh" "$mnt/usr/local/bin/docker-entrypoint-standin.sh"
cat >"$mnt/usr/local/bin/docker-entrypoint.sh" <<'ENTRYPOINT'
#!/usr/bin/env bash
# Stand-in for the official postgres image's entrypoint (TEST INFRASTRUCTURE ONLY): the official
# `file_env` for the variables it reads from files (VAR_FILE's content becomes VAR; both set is an
# error), then the shared stand-in entrypoint, docker-entrypoint-standin.sh.
set -Eeo pipefail
file_env() {
  local var=$1 fileVar=${1}_FILE
  if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
    printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$fileVar"
    exit 1
  fi
  if [ "${!fileVar:-}" ]; then
    export "$var"="$(<"${!fileVar}")"
  fi
  unset "$fileVar"
}
if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
if [ "$1" = postgres ]; then
  for var in POSTGRES_PASSWORD POSTGRES_USER POSTGRES_DB POSTGRES_INITDB_ARGS; do file_env "$var"; done
fi
exec /usr/local/bin/docker-entrypoint-standin.sh "$@"
ENTRYPOINT
chmod 0755 "$mnt/usr/local/bin/docker-entrypoint.sh"
"${buildah[@]}" umount "$container" >/dev/null
"${buildah[@]}" config --label "io.github.pg-wal-gitops.standin=postgres:15 from Debian 12's postgresql-15 (test only)" "$container"
"${buildah[@]}" commit --quiet "$container" "$image" >/dev/null
"${buildah[@]}" rm "$container" >/dev/null; container=''
# Only the name goes: its layers are the new image's.
"${buildah[@]}" rmi "$base" >/dev/null
echo "postgres-image-standin: $image built in $(($(date +%s) - t0)) s" >&2
echo "$image"
