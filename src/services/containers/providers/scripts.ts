/**
 * Small POSIX shell programs run inside session containers (`sh -c SCRIPT NAME ARGS...`). They use only
 * what busybox and a Debian minbase both have, so any image with /bin/sh works. They are the fallbacks
 * for an engine on another machine; files/ acts from the host (../workdir/), never through a script.
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
