#!/usr/bin/env bash
# memfit-guard's own RSS and CPU while it guards an idle Node app for SECONDS (default 600):
# is it flat over time? Prints one line per minute, then the totals.
#   cargo build --release -p memfit-guard && bash bench/guard_idle.sh 600
set -euo pipefail
seconds=${1:-600}
guard=${MEMFIT_GUARD:-$(dirname "$0")/../target/release/memfit-guard}
tck=$(getconf CLK_TCK)
"$guard" --no-listen -- node -e 'setInterval(() => {}, 1000)' &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
# Anonymous memory (heap, stacks): what a leak would grow. The rest of RSS is code pages of
# the binary and libc, touched once as new paths run.
anon() { awk '/^RssAnon/ {print $2}' "/proc/$pid/status"; }
t0=$(ticks); r0=$(rss); a0=$(anon)
printf '%8s %10s %11s %10s\n' "t (s)" "RSS (KiB)" "anon (KiB)" "CPU ticks"
printf '%8d %10d %11d %10d\n' 0 "$r0" "$a0" 0
for ((t = 60; t <= seconds; t += 60)); do
  sleep 60
  printf '%8d %10d %11d %10d\n' "$t" "$(rss)" "$(anon)" "$(( $(ticks) - t0 ))"
done
used=$(( $(ticks) - t0 ))
awk -v u="$used" -v s="$seconds" -v hz="$tck" -v r0="$r0" -v r1="$(rss)" -v a0="$a0" -v a1="$(anon)" 'BEGIN {
  printf "RSS %d -> %d KiB (anonymous %d -> %d KiB) over %d s; CPU %d ticks = %.3f%% of a core\n", r0, r1, a0, a1, s, u, 100 * u / hz / s }'
