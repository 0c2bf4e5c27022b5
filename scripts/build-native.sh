#!/usr/bin/env bash
# Builds the FUSE addon (native/, an N-API module on libfuse3) with node-gyp, offline: the headers are
# the installed node's (<prefix>/include/node). Does nothing when the build is newer than its sources.
# Run by `npm install` (the package's install script, with --optional: a machine without libfuse3-dev
# still installs, and the server says FUSE is unavailable and why) and by scripts/setup.sh (which
# installs libfuse3-dev first, and fails if the build does).
set -euo pipefail
cd "$(dirname "$0")/../native"
optional=false
[ "${1:-}" = "--optional" ] && optional=true

addon=build/Release/agent9_fuse.node
if [ -f "$addon" ] && [ -z "$(find . -maxdepth 1 \( -name '*.c' -o -name '*.gyp' \) -newer "$addon")" ]; then
  exit 0
fi
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists fuse3; then
  echo "build-native: libfuse3-dev is missing (apt-get install libfuse3-dev pkg-config, or npm run setup); the FUSE mount will be unavailable" >&2
  $optional && exit 0
  exit 1
fi
node_prefix=$(dirname "$(dirname "$(command -v node)")")
gyp=node-gyp
if ! command -v node-gyp >/dev/null 2>&1; then
  # npm ships one; `npm run` puts it on PATH, a plain shell does not.
  gyp="node $(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
fi
echo "build-native: building the FUSE addon" >&2
if ! nice -n 10 $gyp rebuild --nodedir="$node_prefix" --loglevel=warn >&2; then
  echo "build-native: the FUSE addon did not build; the FUSE mount will be unavailable" >&2
  $optional && exit 0
  exit 1
fi
