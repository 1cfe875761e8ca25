#!/usr/bin/env python3
"""memfit vs GNU time vs psrecord, side by side, against the kernel's own watermark.

Run from the repository root, as root (the reference watermark needs a cgroup):

    cargo build --release --features memfit-cli/workload
    pip install psrecord            # and: apt-get install time
    python3 bench/compare.py

Part 1 runs each workload four times: inside a bare cgroup made by this script (the kernel's
watermark, the reference), under memfit, under /usr/bin/time -v and under psrecord
--include-children, and prints each tool's peak and its ratio to the reference.
Part 2 measures what sampling costs memfit itself (CPU and RSS) with 1, 10 and 100 live
processes at its default (adaptive) interval, and psrecord's cost on the same trees.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMFIT = os.path.join(ROOT, "target/release/memfit")
WORKLOAD = os.path.join(ROOT, "target/release/memfit-workload")
MIB = 1024 * 1024

WORKLOADS = [
    ("one process, 300 MiB", ["alloc", "300M", "1500"]),
    ("copy-on-write tree: 200 MiB + 3 forked children", ["cow", "200M", "3", "1500"]),
    ("4 concurrent children x 100 MiB", ["children", "4", "100M", "1500"]),
    ("20 ms spike of 400 MiB", ["spike", "400M", "20", "1000"]),
]


def own_cgroup_dir():
    """Where to create the reference cgroup: v1 memory controller, else cgroup v2."""
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            base = "/sys/fs/cgroup/memory" + path
            return ("v1", base if os.path.isdir(base) else "/sys/fs/cgroup/memory")
    for line in lines:
        if line.startswith("0::"):
            return ("v2", "/sys/fs/cgroup")
    sys.exit("no cgroup memory controller found")


def watermark(args):
    """Runs args in a fresh cgroup and returns the kernel's watermark in bytes."""
    version, parent = own_cgroup_dir()
    path = os.path.join(parent, "memfit-bench-%d" % os.getpid())
    os.mkdir(path)
    try:
        procs = os.path.join(path, "cgroup.procs")
        subprocess.run(
            ["sh", "-c", 'echo $$ > "$0" && exec "$@"', procs] + args,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        peak_file = "memory.max_usage_in_bytes" if version == "v1" else "memory.peak"
        with open(os.path.join(path, peak_file)) as f:
            return int(f.read())
    finally:
        for _ in range(100):
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.02)


def memfit_peak(args):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run.json")
        subprocess.run([MEMFIT, "run", "-q", "--json", out, "--"] + args, check=True)
        with open(out) as f:
            return json.load(f)


def gnu_time_peak(args):
    result = subprocess.run(
        ["/usr/bin/time", "-v"] + args, stderr=subprocess.PIPE, text=True, check=True
    )
    kib = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    return int(kib.group(1)) * 1024


def psrecord_peak(args, interval="0.05"):
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.txt")
        subprocess.run(
            ["psrecord", " ".join(args), "--include-children", "--interval", interval, "--log", log],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        peak = 0.0
        with open(log) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and not line.startswith("#"):
                    peak = max(peak, float(fields[2]))
        return int(peak * MIB)


def fmt(n):
    return "%8.1f MiB" % (n / MIB)


def part1():
    print("## Peak memory: each tool against the kernel watermark (ratio = tool / watermark)\n")
    print("| workload | kernel watermark | memfit | GNU time -v | psrecord --include-children |")
    print("|---|---|---|---|---|")
    for name, wl in WORKLOADS:
        args = [WORKLOAD] + wl
        ref = watermark(args)
        m = memfit_peak(args)["peak"]["charged_bytes"]
        g = gnu_time_peak(args)
        p = psrecord_peak(args)
        print(
            "| %s | %s | %s (%.3f) | %s (%.3f) | %s (%.3f) |"
            % (name, fmt(ref), fmt(m), m / ref, fmt(g), g / ref, fmt(p), p / ref)
        )
    print()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def part2():
    print("## What sampling costs (default interval for memfit, 0.05 s for psrecord)\n")
    print("| live processes | memfit CPU (% of a core) | memfit max RSS | memfit mean interval | psrecord CPU (% of a core) | psrecord max RSS |")
    print("|---|---|---|---|---|---|")
    hold_ms = 10000
    for n in (1, 10, 100):
        args = [WORKLOAD, "children", str(n), "1M", str(hold_ms)]
        report = memfit_peak(args)
        s = report["sampling"]
        wall = report["duration_ms"] / 1000
        memfit_cpu = 100 * s["own_cpu_ms"] / 1000 / wall
        # psrecord attached to the same tree, measured by GNU time.
        tree = subprocess.Popen(args)
        time.sleep(0.3)
        timed = subprocess.run(
            ["/usr/bin/time", "-f", "%U %S %M", "psrecord", str(tree.pid), "--include-children",
             "--interval", "0.05", "--duration", str(hold_ms / 1000 - 1), "--log", "/dev/null"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )
        tree.wait()
        user, system, max_kib = timed.stderr.strip().splitlines()[-1].split()
        ps_cpu = 100 * (float(user) + float(system)) / (hold_ms / 1000 - 1)
        print(
            "| %d | %.2f %% | %.1f MiB | %.0f ms | %.2f %% | %.1f MiB |"
            % (n, memfit_cpu, s["own_max_rss_bytes"] / MIB, s["mean_interval_ms"], ps_cpu, int(max_kib) / 1024)
        )
    print()


def main():
    for tool in (MEMFIT, WORKLOAD):
        if not os.path.exists(tool):
            sys.exit("build first: cargo build --release --features memfit-cli/workload (missing %s)" % tool)
    for tool in ("/usr/bin/time", "psrecord"):
        if not shutil.which(tool):
            sys.exit("missing %s: apt-get install time; pip install psrecord" % tool)
    print("memfit bench, %s, kernel %s, %d CPUs\n" % (time.strftime("%Y-%m-%d"), os.uname().release, os.cpu_count()))
    part1()
    part2()


if __name__ == "__main__":
    main()
