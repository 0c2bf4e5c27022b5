/**
 * Small POSIX shell programs run inside session containers (`sh -c SCRIPT NAME ARGS...`). They use only
 * what busybox and a Debian minbase both have, so any image with /bin/sh works. Everything runs in the
 * container, never on the host: a symlink in the workdir can at most reach the container's own files.
 */

/**
 * Signals every process of one exec: every process whose environment carries AGENT9_EXEC=<marker>
 * (children inherit it, also after a double fork or setsid). KILL repeats until none is left, so a
 * process forking while it is being killed cannot escape. Prints how many processes it signalled.
 * Args: marker, signal name.
 */
export const SIGNAL_TREE_SCRIPT = String.raw`marker="AGENT9_EXEC=$1"; sig=\${2:-KILL}; self=$$; total=0; round=0
while [ $round -lt 50 ]; do
  round=$((round+1)); found=
  for d in /proc/[0-9]*; do
    p=\${d#/proc/}
    [ "$p" = "$self" ] && continue
    if tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qxF "$marker"; then found="$found $p"; fi
  done
  [ -z "$found" ] && break
  if [ "$sig" = KILL ]; then kill -STOP $found 2>/dev/null; kill -KILL $found 2>/dev/null
  else kill -"$sig" $found 2>/dev/null; fi
  set -- $found; total=$((total+$#))
  [ "$sig" = KILL ] || break
  sleep 0.02
done
echo $total`.replace(/\\\$/g, '$');

/** Prints `cpu_ns peak_memory_bytes oom_kills` from the container's cgroup (v1 or v2); `-` when unknown. */
export const USAGE_SCRIPT = String.raw`cg=/sys/fs/cgroup
if [ -f $cg/memory/memory.max_usage_in_bytes ]; then
  mem=$(cat $cg/memory/memory.max_usage_in_bytes 2>/dev/null)
  cpu=$(cat $cg/cpuacct/cpuacct.usage 2>/dev/null || cat $cg/cpu,cpuacct/cpuacct.usage 2>/dev/null)
  oom=$(grep '^oom_kill ' $cg/memory/memory.oom_control 2>/dev/null | cut -d' ' -f2)
else
  mem=$(cat $cg/memory.peak 2>/dev/null)
  us=$(grep '^usage_usec ' $cg/cpu.stat 2>/dev/null | cut -d' ' -f2)
  [ -n "$us" ] && cpu=$((us*1000))
  oom=$(grep '^oom_kill ' $cg/memory.events 2>/dev/null | cut -d' ' -f2)
fi
echo "\${cpu:--} \${mem:--} \${oom:--}"`.replace(/\\\$/g, '$');

/** The stat line the files script prints: raw mode (hex), size, atime, mtime, ctime (s), uid, gid. */
export const STAT_FORMAT = '%f %s %X %Y %Z %u %g';

/**
 * File operations on a session's workdir. Args: op, workdir, path relative to it ('' = the workdir), op
 * args. Every path is resolved inside the container (symlinks followed) and must stay in the workdir,
 * else exit 22. Exit codes are errno numbers: 2 ENOENT, 13 EACCES, 17 EEXIST, 20 ENOTDIR, 21 EISDIR,
 * 22 EINVAL, 27 EFBIG, 39 ENOTEMPTY; 1 = other (stderr says what).
 */
export const FILES_SCRIPT = String.raw`op=$1; wd=$2; rel=$3; shift 3
F='${STAT_FORMAT}'
fail() { printf '%s\n' "$2" >&2; exit "$1"; }
wd=$(readlink -f "$wd" 2>/dev/null)
[ -n "$wd" ] && [ -d "$wd" ] || fail 2 "the workdir does not exist"
if [ -n "$rel" ]; then p="$wd/$rel"; else p="$wd"; fi
inside() { case "$1" in "$wd"|"$wd"/*) return 0;; esac; return 1; }
missing() {
  d=$(dirname "$1")
  while [ "$d" != / ] && [ ! -e "$d" ]; do d=$(dirname "$d"); done
  [ -e "$d" ] && [ ! -d "$d" ] && fail 20 "not a directory"
  fail 2 "no such file or directory"
}
# The path with every symlink followed must stay in the workdir.
check() {
  r=$(readlink -f "$1" 2>/dev/null)
  [ -n "$r" ] || missing "$1"
  inside "$r" || fail 22 "the path leads outside the workdir"
}
# The same for the parent only: the last name itself is not followed (rm, rename, lstat).
checkp() {
  r=$(readlink -f "$(dirname "$1")" 2>/dev/null)
  [ -n "$r" ] || missing "$1"
  inside "$r" || fail 22 "the path leads outside the workdir"
}
exists() { [ -e "$1" ] || [ -L "$1" ]; }
isdir() { [ -d "$1" ] && [ ! -L "$1" ]; }
statp() { stat -L -c "$F" "$1" 2>/dev/null || stat -c "$F" "$1"; }
case $op in
stat)
  [ -z "$rel" ] && { statp "$wd"; exit; }
  checkp "$p"; exists "$p" || fail 2 "no such file or directory"
  [ -L "$p" ] && check "$p"
  statp "$p";;
list)
  check "$p"; [ -d "$p" ] || { exists "$p" && fail 20 "not a directory"; fail 2 "no such file or directory"; }
  cd "$p" 2>/dev/null || fail 13 "permission denied"
  set -- .* *; n=$#
  for f; do case $f in .|..) ;; *) [ -e "$f" ] && set -- "$@" "$f";; esac; done
  shift $n
  [ $# -gt 0 ] && printf '%s\0' "$@"; printf '\0'
  [ $# -gt 0 ] && stat -L -c "$F" "$@"; printf '\0'
  set -- .* *; n=$#
  for f; do case $f in .|..) ;; *) [ -L "$f" ] && [ ! -e "$f" ] && set -- "$@" "$f";; esac; done
  shift $n
  [ $# -gt 0 ] && printf '%s\0' "$@"; printf '\0'
  [ $# -gt 0 ] && stat -c "$F" "$@"; printf '\0';;
read)
  check "$p"; exists "$p" || fail 2 "no such file or directory"
  [ -d "$p" ] && fail 21 "is a directory"
  [ -r "$p" ] || fail 13 "permission denied"
  s=$(stat -L -c %s "$p")
  [ "$s" -gt "$1" ] && fail 27 "the file has $s bytes, more than the $1 a read may take"
  exec cat "$p";;
write)
  check "$p"; [ -d "$p" ] && fail 21 "is a directory"
  [ -d "$(dirname "$r")" ] || fail 2 "no such directory"
  if [ "$1" = append ]; then cat >> "$r" || fail 1 "write failed"
  else
    # Write aside, then rename over: a failed write (no space) leaves the old content whole.
    t="$(dirname "$r")/.agent9-write.$$"
    if ! cat > "$t"; then rm -f "$t"; fail 1 "write failed"; fi
    [ -e "$r" ] && chmod "$(stat -c %a "$r")" "$t" 2>/dev/null
    mv -f "$t" "$r" || { rm -f "$t"; fail 1 "write failed"; }
  fi
  statp "$r";;
create)
  check "$p"
  if exists "$p"; then
    [ "$1" = 1 ] && fail 17 "file exists"
    [ -d "$p" ] && fail 21 "is a directory"
    if [ "$2" = 1 ]; then : > "$p" || fail 1 "truncate failed"; fi
  else
    [ -d "$(dirname "$p")" ] || fail 2 "no such directory"
    : > "$p" || fail 1 "create failed"
    chmod "$3" "$p"
  fi
  statp "$p";;
mkdir)
  checkp "$p"; exists "$p" && fail 17 "file exists"
  [ -d "$(dirname "$p")" ] || missing "$p"
  mkdir -m "$1" "$p" || fail 1 "mkdir failed"
  statp "$p";;
rm)
  checkp "$p"; exists "$p" || fail 2 "no such file or directory"
  if isdir "$p"; then
    [ "$1" = 0 ] && fail 21 "is a directory"
    [ -n "$(ls -A "$p")" ] && fail 39 "directory not empty"
    rmdir "$p" || fail 1 "rmdir failed"
  else
    [ "$1" = 1 ] && fail 20 "not a directory"
    rm -f "$p" || fail 1 "rm failed"
  fi;;
rename)
  q="$wd/$1"; checkp "$p"; checkp "$q"
  exists "$p" || fail 2 "no such file or directory"
  if isdir "$q"; then
    isdir "$p" || fail 21 "the target is a directory"
    [ -n "$(ls -A "$q")" ] && fail 39 "the target directory is not empty"
    rmdir "$q" || fail 1 "rmdir failed"
  elif exists "$q" && isdir "$p"; then fail 20 "the target is not a directory"
  fi
  [ -d "$(dirname "$q")" ] || fail 2 "the target's directory does not exist"
  mv -f "$p" "$q" || fail 1 "rename failed";;
truncate)
  check "$p"; exists "$p" || fail 2 "no such file or directory"
  [ -d "$p" ] && fail 21 "is a directory"
  if [ "$1" = 0 ]; then : > "$p" || fail 1 "truncate failed"; else truncate -s "$1" "$p" || fail 1 "truncate failed"; fi
  statp "$p";;
setattr)
  check "$p"; exists "$p" || fail 2 "no such file or directory"
  [ "$1" = - ] || chmod "$1" "$p" || fail 1 "chmod failed"
  [ "$2" = - ] || chown "$2" "$p" || fail 1 "chown failed"
  [ "$3" = - ] || touch -c -a -d "@$3" "$p" || fail 1 "touch failed"
  [ "$4" = - ] || touch -c -m -d "@$4" "$p" || fail 1 "touch failed"
  statp "$p";;
*) fail 22 "unknown operation $op";;
esac`;
