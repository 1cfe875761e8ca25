#!/usr/bin/env python3
"""memfit plan --prometheus on a synthetic cluster: WORKLOADS Deployments (default 1,000) of
two pods each, one day of cAdvisor and kube-state-metrics series at a 5-minute step (a tenth of
the workloads also run memfit guard, a tenth are OOM-killed), loaded into a real Prometheus with
`promtool tsdb create-blocks-from openmetrics`, then `memfit plan --prometheus --format json`
timed. Needs Debian's prometheus package.

    cargo build --release -p memfit-cli && python3 bench/fleet_1000.py [WORKLOADS]
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

MIB = 1024 * 1024
STEP = 300
POINTS = 24 * 3600 // STEP
HASH = "bcdfghjklmnpqrstvwxz2456789"


def name_hash(i, n):
    out = ""
    for _ in range(n):
        out += HASH[i % len(HASH)]
        i //= len(HASH)
    return out


def series(out, name, labels, values, start):
    for k, v in enumerate(values):
        if v is not None:
            out.write(f"{name}{{{labels}}} {v} {start + k * STEP}\n")


def generate(path, workloads, end):
    start = end - POINTS * STEP
    with open(path, "w") as out:
        # Grouped by metric name, each series' samples together and in time order.
        rows = {}
        for w in range(workloads):
            ns = f"team-{w % 20}"
            dep = f"svc-{w}"
            rs = f"{dep}-{name_hash(w * 7 + 3, 9)}"
            for p in range(2):
                pod = f"{rs}-{name_hash(w * 31 + p, 5)}"
                base = f'namespace="{ns}",pod="{pod}",container="app"'
                ws = [(100 + w % 400) * MIB + ((k * 37 + p) % 17) * MIB for k in range(POINTS + 1)]
                rows.setdefault("container_memory_working_set_bytes", []).append((base, ws))
                limit = (256 + (w % 4) * 256) * MIB
                rows.setdefault("kube_pod_container_resource_limits", []).append(
                    (base + ',resource="memory",unit="byte"', [limit] * (POINTS + 1)))
                rows.setdefault("kube_pod_container_resource_requests", []).append(
                    (base + ',resource="memory",unit="byte"', [limit // 2] * (POINTS + 1)))
                oom = w % 10 == 0
                restarts = [int(oom and k >= POINTS // 2) for k in range(POINTS + 1)]
                rows.setdefault("kube_pod_container_status_restarts_total", []).append((base, restarts))
                if oom:
                    rows.setdefault("kube_pod_container_status_last_terminated_reason", []).append(
                        (base + ',reason="OOMKilled"', [1 if k >= POINTS // 2 else None for k in range(POINTS + 1)]))
                if w % 10 == 5:
                    rows.setdefault("memfit_guard_memory_watermark_bytes", []).append(
                        (base, [max(ws[: k + 1]) + 200 * MIB for k in range(POINTS + 1)]))
                rows.setdefault("kube_pod_owner", []).append(
                    (f'namespace="{ns}",pod="{pod}",owner_kind="ReplicaSet",owner_name="{rs}"', [1] * (POINTS + 1)))
            rows.setdefault("kube_replicaset_owner", []).append(
                (f'namespace="{ns}",replicaset="{rs}",owner_kind="Deployment",owner_name="{dep}"', [1] * (POINTS + 1)))
        count = 0
        for name, entries in rows.items():
            for labels, values in entries:
                series(out, name, labels, values, start)
                count += 1
        out.write("# EOF\n")
    return count


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    workloads = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    memfit = os.environ.get("MEMFIT", os.path.join(os.path.dirname(__file__), "..", "target", "release", "memfit"))
    with tempfile.TemporaryDirectory() as tmp:
        end = (int(time.time()) - 300) // STEP * STEP
        om = os.path.join(tmp, "series.om")
        t0 = time.monotonic()
        n = generate(om, workloads, end)
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", om, data], check=True)
        print(f"{workloads} workloads, {n} series x {POINTS + 1} samples generated and loaded in {time.monotonic() - t0:.1f} s")
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("scrape_configs: []\n")
        port = free_port()
        prom = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={data}",
             "--storage.tsdb.retention.time=3650d", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(600):
                try:
                    if urllib.request.urlopen(url + "/-/ready", timeout=2).status == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            for run in range(3):
                t0 = time.monotonic()
                out = subprocess.run([memfit, "plan", "--prometheus", url, "--range", "2d", "--format", "json"],
                                     check=True, capture_output=True)
                wall = time.monotonic() - t0
                report = json.loads(out.stdout)
                ws = report["workloads"]
                print(f"run {run + 1}: {len(ws)} containers, {report['queries']['count']} queries in "
                      f"{report['queries']['seconds']:.2f} s, wall {wall:.2f} s; "
                      f"watermark-sized {sum(w['peak_source'] == 'watermark' for w in ws)}, "
                      f"OOM-bumped {sum(w['oom_kills'] > 0 for w in ws)}")
        finally:
            prom.kill()
            prom.wait()


if __name__ == "__main__":
    main()
