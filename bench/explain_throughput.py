#!/usr/bin/env python3
"""memfit explain's throughput on a 1 GiB log, next to grep with the same patterns.

    cargo build --release
    python3 bench/explain_throughput.py [SIZE_MIB]

The log is build noise (npm fetches, webpack, cargo, maven, request logs) with the real
failure logs of crates/memfit-explain/tests/corpus sprinkled in. grep gets every signature and
fact pattern of crates/memfit-explain/{signatures,facts}.toml: `grep -P` as they are (PCRE reads them
unchanged), `grep -E` translated to POSIX ERE where possible (patterns that cannot be
translated are counted and left out, which only helps grep). Each tool runs twice; the best
time counts. Throughput = bytes / wall-clock seconds.
"""
import glob
import os
import random
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMFIT = os.path.join(ROOT, "target/release/memfit")
KNOWLEDGE = [
    os.path.join(ROOT, "crates/memfit-explain", name)
    for name in ("signatures.toml", "facts.toml")
]
CORPUS = os.path.join(ROOT, "crates/memfit-explain/tests/corpus/*.log")

FILLER = [
    "npm http fetch GET 200 https://registry.npmjs.org/react/-/react-18.2.0.tgz 34ms (cache hit)\n",
    "#12 45.67 webpack 5.88.2 compiled with 3 warnings in 41234 ms\n",
    "2024-03-01T10:00:00.123Z INFO  request handled path=/api/items status=200 duration=12ms\n",
    "   Compiling serde_derive v1.0.190\n",
    "[INFO] Building jar: /build/target/app-1.0.jar\n",
]


def make_log(path, size):
    random.seed(1)
    corpus = [open(f, encoding="utf-8").read() for f in sorted(glob.glob(CORPUS))]
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < size:
            block = "".join(random.choice(FILLER) for _ in range(20000))
            out.write(block)
            written += len(block.encode())
            if random.random() < 0.05:
                case = random.choice(corpus)
                out.write(case)
                written += len(case.encode())


def patterns():
    text = "".join(open(f, encoding="utf-8").read() for f in KNOWLEDGE)
    found = re.findall(r"^pattern = '''(.*?)'''$|^pattern = '(.*?)'$", text, re.M)
    return [a or b for a, b in found]


def to_ere(p):
    """Best-effort PCRE → POSIX ERE; None when a construct has no ERE form."""
    if "(?P<" in p or "(?i" in p or "(?-" in p:
        return None
    p = p.replace("(?m)", "").replace("(?:", "(")
    p = p.replace(r"\d", "[0-9]").replace(r"\s", "[[:space:]]").replace(r"\S", "[^[:space:]]")
    if "(?" in p or "+?" in p or "*?" in p:
        return None
    return p


def best_time(cmd):
    # Output goes to a pipe, not /dev/null: GNU grep stops at the first match when its output
    # is /dev/null, which would not be a scan of the whole log.
    best = None
    for _ in range(2):
        start = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if done.returncode > 1:
            sys.exit(f"{cmd[0]} failed: {done.stderr.decode()[:300]}")
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best


def main():
    size = int(sys.argv[1]) * 1024 * 1024 if len(sys.argv) > 1 else 1 << 30
    if not os.path.exists(MEMFIT):
        sys.exit("build first: cargo build --release")
    path = "/tmp/memfit-explain-bench.log"
    if not os.path.exists(path) or os.path.getsize(path) < size:
        make_log(path, size)
    size = os.path.getsize(path)
    pats = patterns()
    # grep -P takes one pattern: the alternation of all, named groups made plain.
    pcre = ["-e", "|".join("(?:%s)" % re.sub(r"\(\?P<\w+>", "(?:", p) for p in pats)]
    ere = [e for e in (to_ere(p) for p in pats) if e]
    ere_file = "/tmp/memfit-explain-bench.ere"
    with open(ere_file, "w", encoding="utf-8") as f:
        f.write("\n".join(ere) + "\n")
    rows = [
        ("memfit explain", best_time([MEMFIT, "explain", "--json", path])),
        (f"grep -P -c ({len(pats)} patterns)", best_time(["grep", "-P", "-c"] + pcre + [path])),
        (f"grep -E -c ({len(ere)} of {len(pats)} patterns)", best_time(["grep", "-E", "-c", "-f", ere_file, path])),
    ]
    base = rows[0][1]
    print(f"log: {size / 2**20:.0f} MiB, {os.cpu_count()} CPUs\n")
    print("| tool | seconds | MB/s | time vs memfit |")
    print("|---|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.2f} | {size / 1e6 / t:.0f} | {t / base:.2f}× |")


if __name__ == "__main__":
    main()
