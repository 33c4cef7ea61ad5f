#!/usr/bin/env bash
# Installs the project's other packages, each from its own lockfile, when their node_modules is
# missing or older than the lockfile:
#   archiver/   the archiver's cloud SDKs and native codecs (needed to build and test it)
#   testkit/    the servers the tests start (s3rver, the GCS emulator from firebase-tools) and ajv
#   bench/      the extra runners the synthesis benchmark compares
# README's first command (npm ci && npm run synth) needs none of them; `npm test` installs the
# first two, `npm run bench` all three.
#
#   scripts/install-packages.sh archiver testkit [bench]
set -euo pipefail
cd "$(dirname "$0")/.."
for package in "$@"; do
  lock="$package/package-lock.json"
  stamp="$package/node_modules/.installed-from-lock"
  want=$(sha256sum "$lock" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then continue; fi
  echo "install-packages: npm ci in $package/" >&2
  (cd "$package" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$want" >"$stamp"
done
