#!/usr/bin/env bash
# Measures what a JVM commits beside its heap, itemised by Native Memory Tracking
# (-XX:NativeMemoryTracking=summary, printed at exit by -XX:+PrintNMTStatistics), for a trivial
# program and for programs that load thousands of classes, JIT-compile a large program (javac)
# and start 50 or 200 threads, each run under `memfit run --limit 1G` so the JVM sizes itself
# as in a 1 GiB container. Reproduces the table in docs/rules.md (jvm-heap-over-limit) and the
# figures of crates/memfit-core/src/jvm.rs. Needs root (cgroups), a JDK 17+ (java, javac) and
# python3.
#
#   bench/jvm_nonheap.sh            prints a Markdown table, sizes in MiB
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p memfit-cli
memfit=$PWD/target/release/memfit
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
javac -d "$work" bench/jvm_nonheap/NonHeap.java
source=$PWD/bench/jvm_nonheap/NonHeap.java
nmt=(-XX:NativeMemoryTracking=summary -XX:+UnlockDiagnosticVMOptions -XX:+PrintNMTStatistics)

echo "$(java -version 2>&1 | head -1), $(nproc) CPUs, memfit run --limit 1G"
echo
echo "| program | classes | threads | metaspace | code cache | thread stacks (per thread) | GC | other | non-heap (without NMT) | heap committed | RSS peak (VmHWM) | memfit peak |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
# name, JVM options, THREADS CLASSES ROUNDS (see NonHeap.java)
while IFS='|' read -r name opts args; do
  # shellcheck disable=SC2086  # $opts and $args are word lists
  "$memfit" run -q --limit 1G --json "$work/run.json" -- \
    java "${nmt[@]}" $opts -cp "$work" NonHeap $args "$source" >"$work/out.txt"
  python3 - "$name" "$work/out.txt" "$work/run.json" <<'PY'
import json, re, sys
name, out, run = sys.argv[1], open(sys.argv[2]).read(), json.load(open(sys.argv[3]))
mib = lambda b: b / 1048576
def committed(category):
    m = re.search(r"^-\s+%s \(reserved=\d+, committed=(\d+)\)" % re.escape(category), out, re.M)
    return int(m.group(1)) if m else 0
total = int(re.search(r"^Total: reserved=\d+, committed=(\d+)", out, re.M).group(1))
heap = committed("Java Heap")
# JDK 17 itemises the metaspace under "Class": Metadata and Class space, each committed.
meta = sum(int(x) for x in re.findall(r"\(\s+(?:Metadata|Class space):\s*\)\s*\n\s*\(\s+reserved=\d+, committed=(\d+)\)", out))
code = committed("Code")
stack = int(re.search(r"\(stack: reserved=\d+, committed=(\d+)\)", out).group(1))
threads = int(re.search(r"\(thread #(\d+)\)", out).group(1))
gc = committed("GC")
# Everything else the JVM commits: symbols, the CDS archive, the JIT compilers' arenas, the
# class loaders' and threads' malloc; not NMT's own tracking (absent without the flag).
nmt = committed("Native Memory Tracking")
other = total - heap - meta - code - stack - gc - nmt
classes = re.search(r"^loaded_classes (\d+)", out, re.M).group(1)
hwm = int(re.search(r"^VmHWM: (\d+) kB", out, re.M).group(1)) * 1024
print(f"| {name} | {classes} | {threads} | {mib(meta):.1f} | {mib(code):.1f} | "
      f"{mib(stack):.1f} ({stack / threads / 1024:.0f} KiB) | {mib(gc):.1f} | {mib(other):.1f} | "
      f"{mib(total - heap - nmt):.1f} | {mib(heap):.1f} | {mib(hwm):.1f} | "
      f"{mib(run['peak']['charged_bytes']):.1f} |")
PY
done <<'RUNS'
trivial (no work)||0 0 0
javac ×40||0 0 40
5000 classes, javac ×40, 50 threads||50 5000 40
15000 classes, javac ×40, 200 threads||200 15000 40
same, -XX:+UseG1GC|-XX:+UseG1GC|200 15000 40
same, -Xss256k|-Xss256k|200 15000 40
RUNS
