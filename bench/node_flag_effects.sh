#!/usr/bin/env bash
# What Node heap flags do, measured: the facts behind the audit rules heap-over-limit and
# node-flag-folklore (docs/rules.md).
#   1. `--max-old-space-size` caps V8's heap, not the process: Buffers live outside it, and a
#      process near its cap holds more than heapTotal.
#   2. `--gc-interval=N` changes nothing in a release build of Node (GC events counted with
#      --trace-gc); `--optimize-for-size` trades memory for GC work and run time.
#
#   bench/node_flag_effects.sh [NODE]      default: node on PATH
set -euo pipefail
node="${1:-node}"
echo "$("$node" --version), $(uname -m)"

echo
echo "## --max-old-space-size caps the heap, not the process"
"$node" --max-old-space-size=64 -e '
  const kept = [];
  for (let i = 0; i < 300; i++) kept.push(Buffer.alloc(1 << 20, 1));
  const m = process.memoryUsage();
  console.log(`300 MiB of Buffers under --max-old-space-size=64: RSS ${Math.round(m.rss / 2 ** 20)} MiB, heapTotal ${Math.round(m.heapTotal / 2 ** 20)} MiB, no V8 error`);
'
"$node" --max-old-space-size=200 -e '
  const kept = [];
  for (let i = 0; i < 1.2e6; i++) kept.push({ i, s: "x" + i, t: [i] });
  const m = process.memoryUsage();
  const mib = (b) => Math.round(b / 2 ** 20);
  console.log(`live objects under --max-old-space-size=200: heapUsed ${mib(m.heapUsed)} MiB, heapTotal ${mib(m.heapTotal)} MiB, RSS ${mib(m.rss)} MiB (heapTotal + ${mib(m.rss - m.heapTotal)} MiB)`);
'

echo
echo "## GC flags on an allocation-heavy loop (3 million short-lived objects)"
workload='
  const started = process.hrtime.bigint();
  let kept = [];
  for (let i = 0; i < 3e6; i++) {
    kept.push({ n: i, s: "item" + i });
    if (kept.length > 2e5) kept = [];
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.error(`${Math.round(ms)} ${Math.round(process.resourceUsage().maxRSS / 1024)}`);
'
printf '%-22s %10s %10s %12s\n' "flag" "GC events" "time ms" "max RSS MiB"
for flag in "" --gc-interval=100 --gc-interval=1 --optimize-for-size; do
  # --trace-gc prints one line per GC event on stdout; the workload reports on stderr.
  events=$("$node" --trace-gc $flag -e "$workload" 2>/tmp/node_flag_effects.$$ | grep -c ' ms: ')
  read -r ms rss </tmp/node_flag_effects.$$
  printf '%-22s %10s %10s %12s\n' "${flag:-(none)}" "$events" "$ms" "$rss"
done
rm -f /tmp/node_flag_effects.$$
