#!/usr/bin/env bash
# Soaks SERVER (server.js or server.fixed.js) under `memfit run` for SECONDS while load.js
# drives it, and writes the timeline: soak.sh server.js 60 → leaky.svg / leaky.json. Prints
# the load's counts and the working memory every 30 s (the README's numbers).
set -euo pipefail
cd "$(dirname "$0")"
server=${1:-server.js}
seconds=${2:-60}
name=$([ "$server" = server.js ] && echo leaky || echo fixed)
memfit=${MEMFIT:-../../target/release/memfit}
port=$((3100 + RANDOM % 500))
node load.js "$port" "$seconds" 200 > "$name.load.json" &
load=$!
PORT=$port SOAK_SECONDS=$((seconds + 2)) "$memfit" run --limit 512M --json "$name.json" --svg "$name.svg" -- node "$server" > /dev/null
wait "$load"
cat "$name.load.json"
python3 - "$name.json" "$seconds" <<'PY'
import json, sys
report, seconds = json.load(open(sys.argv[1])), int(sys.argv[2])
samples = report["samples"]
mib = lambda b: b / 1048576
at = lambda t: mib(min(samples, key=lambda x: abs(x["t_ms"] - t))["working_bytes"])
marks = [at(t * 1000) for t in range(30, seconds + 1, 30)]
steady = [mib(x["working_bytes"]) for x in samples if 5000 <= x["t_ms"] <= seconds * 1000]
print("working MiB every 30 s:", " -> ".join(f"{m:.1f}" for m in marks))
if len(marks) > 1:
    print(f"growth {(marks[-1] - marks[0]) / (30 * (len(marks) - 1)):.2f} MiB/s")
print(f"range from 5 s: {min(steady):.1f}-{max(steady):.1f} MiB; peak charged {mib(report['peak']['charged_bytes']):.1f} MiB")
PY
