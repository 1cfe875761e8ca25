#!/usr/bin/env python3
"""memfit guard against PM2 (--max-memory-restart) and tini, side by side in one run.

The same leaking Node app (tests/fixtures/guard/leak.js, ~20 MB/s) under each supervisor with a
150 MB limit:

1. RSS limit, no cgroup (PM2's own ground: it watches the app's RSS): how far the app's RSS
   gets before the supervisor acts (VmHWM of the app process, read every 5 ms until it ends),
   against the supervisor's threshold (PM2: 150 MB; memfit guard: its critical threshold, 92%
   of 150 MiB), and how long after crossing the threshold it acts.
2. A real 150 MiB container limit (memfit run --limit, cgroup v1/v2): does the kernel's OOM
   killer get there first?
3. Footprint: each supervisor's own RSS and CPU while guarding an idle app for 60 s, tini
   included.

    cargo build --release
    npm install --prefix /tmp/pm2 pm2        # PM2 7.0.4 here
    apt-get install tini                     # tini 0.19 here
    sudo python3 bench/guard_vs_pm2.py [--pm2 /tmp/pm2/node_modules/.bin/pm2-runtime]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMFIT = os.path.join(ROOT, "target", "release", "memfit")
GUARD = os.path.join(ROOT, "target", "release", "memfit-guard")
LEAK = os.path.join(ROOT, "crates", "memfit-cli", "tests", "fixtures", "guard", "leak.js")
IDLE = "setInterval(() => {}, 1000);"
MB = 1000 * 1000
MIB = 1024 * 1024


def status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def descendants(pid):
    result, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        for c in children(p):
            result.append(c)
            frontier.append(c)
    return result


def node_apps(root):
    apps = []
    for p in descendants(root):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # PM2 rewrites the app's process title over its argv ("node /path/lea…"): match the
        # node processes that are not a supervisor.
        words = cmd.split()
        if words and os.path.basename(words[0]) == "node" and not (len(words) > 1 and "pm2" in words[1]):
            apps.append(p)
    return apps


class Watcher(threading.Thread):
    """Follows the app processes under a supervisor: each one's final VmHWM, when it crossed
    the threshold and when it ended."""

    def __init__(self, root, threshold):
        super().__init__(daemon=True)
        self.root, self.threshold = root, threshold
        self.apps = {}  # pid -> dict(hwm, crossed, ended, started)
        self.stop = False

    def run(self):
        while not self.stop:
            now = time.monotonic()
            live = set(node_apps(self.root))
            for pid in live:
                a = self.apps.setdefault(pid, {"hwm": 0, "crossed": None, "ended": None, "started": now})
                hwm = status(pid, "VmHWM")
                if hwm:
                    a["hwm"] = max(a["hwm"], hwm)
                    if a["crossed"] is None and (status(pid, "VmRSS") or 0) >= self.threshold:
                        a["crossed"] = now
            for pid, a in self.apps.items():
                if pid not in live and a["ended"] is None:
                    a["ended"] = now
            time.sleep(0.005)


def run_leak(name, argv, threshold, seconds, env=None, cwd=None):
    e = dict(os.environ, MB_PER_S="20")
    e.pop("NODE_OPTIONS", None)
    if env:
        e.update(env)
    proc = subprocess.Popen(argv, env=e, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    watcher = Watcher(proc.pid, threshold)
    watcher.start()
    time.sleep(seconds)
    watcher.stop = True
    watcher.join()
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    restarted = [a for a in watcher.apps.values() if a["ended"] is not None and a["crossed"] is not None]
    return restarted, err.decode(errors="replace")


def footprint(name, argv, seconds, cwd=None, env=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    proc = subprocess.Popen(argv, cwd=cwd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(3)
    # The supervisor: the process we started (pm2-runtime runs its daemon in that process).
    c0, t0 = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(proc.pid), time.monotonic()
    rss = status(proc.pid, "VmRSS")
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    return rss, (c1 - c0) / (t1 - t0) * 100


def fmt(rows):
    lines = []
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pm2", default="/tmp/pm2/node_modules/.bin/pm2-runtime")
    ap.add_argument("--seconds", type=float, default=45)
    ap.add_argument("--idle-seconds", type=float, default=60)
    args = ap.parse_args()
    for path in (MEMFIT, GUARD):
        if not os.path.exists(path):
            sys.exit("build first: cargo build --release")
    pm2 = args.pm2 if os.path.exists(args.pm2) else shutil.which("pm2-runtime")
    tini = shutil.which("tini")
    pm2_home = tempfile.mkdtemp(prefix="pm2home")
    pm2_env = {"PM2_HOME": pm2_home}
    critical = int(0.92 * 150 * MIB)

    # 1. RSS limit, no cgroup.
    rows = [["supervisor", "threshold", "app RSS peak before acting (first 2 restarts)", "overshoot over the threshold", "time to act after crossing"],
            ["---"] * 5]
    results = {}
    guard_argv = [GUARD, "--no-listen", "--limit", "150M", "--", "node", LEAK]
    guard, log = run_leak("memfit guard", guard_argv, critical, args.seconds)
    results["guard"] = guard
    if pm2:
        pm2_argv = [pm2, "start", LEAK, "--max-memory-restart", "150M"]
        pm2r, _ = run_leak("pm2", pm2_argv, 150 * MB, args.seconds, env=pm2_env)
        results["pm2"] = pm2r
    for name, threshold, label in [("guard", critical, "memfit guard (critical 92% of 150 MiB)"), ("pm2", 150 * MB, "PM2 --max-memory-restart 150M")]:
        apps = results.get(name)
        if not apps:
            rows.append([label, "", "did not act within %ds" % args.seconds, "", ""])
            continue
        apps = sorted(apps, key=lambda a: a["started"])[:2]
        peaks = ", ".join(f"{a['hwm'] / MB:.0f} MB" for a in apps)
        over = max(a["hwm"] / threshold for a in apps)
        act = max(a["ended"] - a["crossed"] for a in apps)
        rows.append([label, f"{threshold / MB:.0f} MB", peaks, f"{(over - 1) * 100:+.0f}% (×{over:.2f})", f"{act:.2f} s"])
    print("## 1. Leaking app (~20 MB/s), 150 MB RSS limit, no cgroup\n")
    print(fmt(rows))

    # 2. A real container limit.
    print("\n## 2. The same app in a 150 MiB container (memfit run --limit 150M)\n")
    rows = [["supervisor", "restarts before the kernel", "kernel OOM kills", "container peak (kernel watermark)"], ["---"] * 4]
    for label, inner, env in [
        ("memfit guard", [GUARD, "--no-listen", "--", "node", LEAK], None),
        ("PM2 --max-memory-restart 150M", [pm2, "start", LEAK, "--max-memory-restart", "150M"] if pm2 else None, pm2_env),
    ]:
        if inner is None:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            report = os.path.join(tmp, "run.json")
            argv = [MEMFIT, "run", "-q", "--limit", "150M", "--json", report, "--"] + inner
            apps, err = run_leak(label, argv, critical, args.seconds / 2, env=env)
            with open(report) as f:
                r = json.load(f)
            restarts = err.count("restarted (memory)") if "guard" in label else "-"
            rows.append([label, restarts, r["oom"]["kill_count"], f"{r['peak']['charged_bytes'] / MIB:.0f} MiB"])
    print(fmt(rows))

    # 3. Footprint with an idle app.
    print(f"\n## 3. Own footprint guarding an idle app ({args.idle_seconds:.0f} s)\n")
    rows = [["supervisor", "own RSS", "own CPU (% of a core)"], ["---"] * 3]
    idle = ["node", "-e", IDLE]
    measured = {}
    measured["memfit-guard"] = footprint("memfit-guard", [GUARD, "--", *idle], args.idle_seconds)
    if pm2:
        with tempfile.TemporaryDirectory() as tmp:
            app = os.path.join(tmp, "idle.js")
            with open(app, "w") as f:
                f.write(IDLE + "\n")
            measured["PM2 (pm2-runtime, daemon in process)"] = footprint("pm2", [pm2, "start", app, "--max-memory-restart", "150M"], args.idle_seconds, env=pm2_env)
    if tini:
        measured["tini"] = footprint("tini", [tini, "--", *idle], args.idle_seconds)
    for name, (rss, cpu) in measured.items():
        rows.append([name, f"{rss / MIB:.1f} MiB", f"{cpu:.2f} %"])
    print(fmt(rows))
    if pm2 and "memfit-guard" in measured:
        g = measured["memfit-guard"][0]
        p = measured["PM2 (pm2-runtime, daemon in process)"][0]
        print(f"\nmemfit-guard RSS / PM2 RSS = 1/{p / g:.0f}")
    shutil.rmtree(pm2_home, ignore_errors=True)


if __name__ == "__main__":
    main()
