#!/usr/bin/env python3
"""What --python-tracemalloc costs a Python command: the same allocation-heavy script under
`memfit run` with and without the flag, alternated, N times each. Reports the command's
duration (the report's duration_ms), its CPU time (user + sys of memfit's children, from
getrusage), the Python process's own peak RSS (processes[0].peak_rss_bytes), and what
tracemalloc reported.

    python3 bench/python_tracemalloc.py [MEMFIT] [RUNS] [PYTHON]
    default: target/release/memfit, 5, /usr/bin/python3

The workload (written to a temporary directory) makes and drops small objects — dicts,
tuples, strings, lists — as a parser or an ETL step does: the worst case for tracemalloc,
which hooks every allocation.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile

WORKLOAD = r"""
rows = []
for round_ in range(10):
    rows = [{"id": i, "name": "row-%d" % i, "tags": (i % 7, i % 11)} for i in range(60000)]
    total = sum(len(r["name"]) for r in rows)
print(len(rows), total)
"""


def one(memfit, python, script, traced, workdir, index):
    out = os.path.join(workdir, f"run-{index}-{int(traced)}.json")
    args = [memfit, "run", "--quiet", "--json", out]
    if traced:
        args.append("--python-tracemalloc")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args + ["--", python, script], check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.load(open(out))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    process = report["processes"][0]
    return (report["duration_ms"], cpu * 1000, process["peak_rss_bytes"] / 1048576,
            process.get("python"))


def spread(values, digits):
    return (f"{statistics.median(values):.{digits}f} "
            f"({min(values):.{digits}f}–{max(values):.{digits}f})")


def main():
    memfit = sys.argv[1] if len(sys.argv) > 1 else "target/release/memfit"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    python = sys.argv[3] if len(sys.argv) > 3 else "/usr/bin/python3"
    with tempfile.TemporaryDirectory() as workdir:
        script = os.path.join(workdir, "work.py")
        open(script, "w").write(WORKLOAD)
        results = {True: [], False: []}
        for index in range(runs):
            for traced in (True, False):
                results[traced].append(one(memfit, python, script, traced, workdir, index))
    version = subprocess.run([python, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"{version}, {runs} runs each, medians (min–max)\n")
    print("| --python-tracemalloc | duration (ms) | CPU, memfit + python (ms) | python peak RSS (MiB) |")
    print("|---|---|---|---|")
    for traced in (True, False):
        rows = results[traced]
        cols = [spread([r[0] for r in rows], 0), spread([r[1] for r in rows], 0),
                spread([r[2] for r in rows], 1)]
        print(f"| {'on' if traced else 'off'} | " + " | ".join(cols) + " |")
    ratio = (statistics.median(r[0] for r in results[True])
             / statistics.median(r[0] for r in results[False]))
    print(f"\nduration with the flag: {ratio:.2f}× the median without")
    reported = [r[3] for r in results[True] if r[3]]
    if reported:
        last = reported[-1]
        print(f"tracemalloc in the last run: traced peak {last['traced_peak_bytes'] / 1048576:.1f} MiB, "
              f"its own tables {last['tracemalloc_overhead_peak_bytes'] / 1048576:.1f} MiB")


if __name__ == "__main__":
    main()
