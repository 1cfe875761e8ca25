#!/usr/bin/env bash
# Soaks SERVER (server.js or server.fixed.js) under `memfit run` for SECONDS while load.js
# drives it, and writes the timeline: soak.sh server.js 60 → leaky.svg / leaky.json.
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
