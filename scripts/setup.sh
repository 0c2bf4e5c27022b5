#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian machine: system packages, npm dependencies, the FUSE addon,
# and (when the containers feature is present) the Docker engine and local images. Does nothing when
# all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root for: $*"; return 1
  fi
}

# --- system packages -------------------------------------------------------------------------
APT_PACKAGES=(fuse3 libfuse3-dev pkg-config build-essential python3 curl ca-certificates rsync)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- npm dependencies ------------------------------------------------------------------------
# The lock file names every dependency: reinstall only when it changes.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.agent9-setup
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  log "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > "$stamp"
fi

# --- the FUSE addon (native/, on libfuse3): rebuilt only when its sources changed -------------------
bash scripts/build-native.sh

# --- optional parts (containers: docker engine and images) ---------------------------------------
for part in scripts/setup.d/*.sh; do
  [ -e "$part" ] || continue
  bash "$part"
done
