#!/usr/bin/env python3
"""What the runtime view costs a Node command: the same command under `memfit run` with and
without it (--no-runtime-view), alternated, N times each. Reports the command's duration
(the report's duration_ms), its CPU time (user + sys of memfit's children, from
getrusage), and the Node process's own peak RSS (processes[0].peak_rss_bytes).

    python3 bench/runtime_view.py [MEMFIT] [RUNS]     default: target/release/memfit, 10

The workload (written to a temporary directory) allocates and drops objects for about two
seconds with the event loop turning, as a build or a server does, so the preload's timer
and its GC observer both run.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile

WORKLOAD = r"""
let keep = [];
let rounds = 0;
function step() {
  for (let i = 0; i < 20000; i++) keep.push({ i, s: 'x'.repeat(16) + i });
  if (keep.length > 400000) keep = [];
  if (++rounds < 400) setImmediate(step);
}
step();
"""


def one(memfit, script, view, workdir, index):
    out = os.path.join(workdir, f"run-{index}-{int(view)}.json")
    args = [memfit, "run", "--quiet", "--json", out]
    if not view:
        args.append("--no-runtime-view")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args + ["--", "node", script], check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.load(open(out))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    node = report["processes"][0]
    return report["duration_ms"], cpu * 1000, node["peak_rss_bytes"] / 1048576, node.get("v8")


def main():
    memfit = sys.argv[1] if len(sys.argv) > 1 else "target/release/memfit"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    with tempfile.TemporaryDirectory() as workdir:
        script = os.path.join(workdir, "work.js")
        open(script, "w").write(WORKLOAD)
        results = {True: [], False: []}
        for index in range(runs):
            for view in (True, False):
                results[view].append(one(memfit, script, view, workdir, index))
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"node {node}, {runs} runs each, medians (min–max)\n")
    print("| runtime view | duration (ms) | CPU, memfit + node (ms) | node peak RSS (MiB) |")
    print("|---|---|---|---|")
    for view in (True, False):
        rows = results[view]
        cols = []
        for k in range(3):
            values = [r[k] for r in rows]
            cols.append(f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"
                        if k < 2 else
                        f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})")
        print(f"| {'on' if view else 'off'} | " + " | ".join(cols) + " |")
    reported = [r[3] for r in results[True] if r[3]]
    if reported:
        print(f"\nreports seen: heap used peak {reported[-1]['heap_used_peak_bytes'] / 1048576:.1f} MiB, "
              f"gc pauses {reported[-1]['gc_pause_total_ms']} ms in the last run")


if __name__ == "__main__":
    main()
