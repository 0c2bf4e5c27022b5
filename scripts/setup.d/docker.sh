#!/usr/bin/env bash
# The container engine for /containers: docker.io installed, dockerd running, and the local default images
# imported without any registry. Idempotent: when everything is there it only checks, in well under a second.
#
# - packages: docker.io, busybox-static, debootstrap (apt-get, only when missing)
# - dockerd: started when `docker version` cannot reach it, with no bridge and no iptables changes
#   (--bridge=none --iptables=false --ip-masq=false), detached, log in $AGENT9_DOCKERD_LOG
# - agent9/busybox:latest: a busybox-static rootfs (always)
# - agent9/python:latest: a Debian minbase rootfs with python3 made by debootstrap from the apt mirror; the
#   rootfs tarball is cached in $AGENT9_CACHE so a rerun (or a wiped engine) imports it in seconds. Skipped
#   with a message when it cannot be built (no mirror reachable); AGENT9_SKIP_PYTHON_IMAGE=1 skips it too.
set -euo pipefail

log() { printf 'setup(docker): %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root for: $*"; return 1
  fi
}

CACHE_DIR=${AGENT9_CACHE:-/var/cache/agent9}
DOCKERD_LOG=${AGENT9_DOCKERD_LOG:-/var/log/agent9-dockerd.log}
SOCKET=/var/run/docker.sock
# Bump when the way an image is built changes: an image with another rootfs label is rebuilt.
BUSYBOX_ROOTFS_VERSION=2
PYTHON_ROOTFS_VERSION=1
DEBIAN_SUITE=bookworm

# --- packages ---------------------------------------------------------------------------------
missing=()
for p in docker.io busybox-static debootstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  # docker.io's postinst cannot start a service without an init system; that is expected, dockerd starts below.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The docker.io CLI speaks the daemon's own API version; a newer CLI elsewhere on PATH also works.
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker)
engine_up() { DOCKER_HOST=unix://$SOCKET "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# --- dockerd ----------------------------------------------------------------------------------
if ! engine_up; then
  if pid=$(cat /var/run/docker.pid 2>/dev/null) && kill -0 "$pid" 2>/dev/null; then
    log "dockerd (pid $pid) is running but not answering yet; waiting"
  else
    log "starting dockerd (no bridge, no iptables changes; log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    # setsid + nohup: the engine outlives this script and any process group that runs it (npm, test runners).
    as_root setsid nohup dockerd --bridge=none --iptables=false --ip-masq=false \
      >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 150); do
    engine_up && break
    sleep 0.2
  done
  if ! engine_up; then
    log "dockerd did not become ready in 30 s; last log lines:"
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    exit 1
  fi
  log "dockerd ready: $("$DOCKER" version --format '{{.Server.Version}}')"
fi

image_version() { "$DOCKER" image inspect --format '{{index .Config.Labels "agent9.rootfs.version"}}' "$1" 2>/dev/null || true; }

# --- agent9/busybox ---------------------------------------------------------------------------
if [ "$(image_version agent9/busybox:latest)" != "$BUSYBOX_ROOTFS_VERSION" ]; then
  log "importing agent9/busybox:latest from busybox-static"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,root,workspace}
  mkdir -m 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  # busybox --list names busybox itself: linking it would turn the binary into a self-symlink.
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  echo agent9 >"$root/etc/hostname"
  tar -C "$root" -c . | "$DOCKER" import \
    --change "LABEL agent9.rootfs.version=$BUSYBOX_ROOTFS_VERSION" \
    --change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
    --change 'WORKDIR /workspace' \
    --change 'CMD ["/bin/sh"]' \
    - agent9/busybox:latest >/dev/null
  rm -rf "$root"
  trap - EXIT
fi

# --- agent9/python ----------------------------------------------------------------------------
build_python_rootfs() {
  local tarball=$1 mirror work
  mirror=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    grep -oE 'https?://[^ ]*/debian/?' | grep -v security | head -n1)
  mirror=${mirror:-http://deb.debian.org/debian}
  work=$(mktemp -d "${TMPDIR:-/tmp}/agent9-debootstrap-XXXXXX")
  log "building a Debian $DEBIAN_SUITE minbase rootfs with python3 from $mirror (about a minute, cached afterwards)"
  if ! as_root debootstrap --variant=minbase --include=python3 "$DEBIAN_SUITE" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    log "debootstrap failed (last lines below); agent9/python:latest is not available"
    tail -n 5 "$work/debootstrap.log" >&2 || true
    as_root rm -rf "$work"
    return 1
  fi
  as_root rm -rf "$work/root/var/cache/apt/archives"/*.deb "$work/root/var/lib/apt/lists"/* 2>/dev/null || true
  mkdir -p "$work/root/workspace"
  mkdir -p "$(dirname "$tarball")"
  as_root tar -C "$work/root" -cf "$tarball.partial" . && mv "$tarball.partial" "$tarball"
  as_root rm -rf "$work"
}

if [ "${AGENT9_SKIP_PYTHON_IMAGE:-0}" = 1 ]; then
  :
elif [ "$(image_version agent9/python:latest)" != "$PYTHON_ROOTFS_VERSION" ]; then
  tarball="$CACHE_DIR/debian-$DEBIAN_SUITE-python3-v$PYTHON_ROOTFS_VERSION.tar"
  if [ -s "$tarball" ] || build_python_rootfs "$tarball"; then
    log "importing agent9/python:latest from $tarball"
    "$DOCKER" import \
      --change "LABEL agent9.rootfs.version=$PYTHON_ROOTFS_VERSION" \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'WORKDIR /workspace' \
      --change 'CMD ["/bin/sh"]' \
      "$tarball" agent9/python:latest >/dev/null
  else
    log "skipping agent9/python:latest (the Debian mirror is not reachable); agent9/busybox:latest is the default image"
  fi
fi
