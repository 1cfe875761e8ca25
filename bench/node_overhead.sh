#!/usr/bin/env bash
# What a Node process keeps resident beside its V8 heap: the constants of `memfit plan`'s Node
# budget (crates/memfit-core/src/node.rs BASELINE_RSS and NATIVE_OVERHEAD). What heap flags do
# and do not cap (Buffers) is bench/node_flag_effects.sh.
#
#   bench/node_overhead.sh [NODE]        default: node on PATH; 3 runs of each probe
set -euo pipefail
cd "$(dirname "$0")/node_overhead"
node=${1:-node}
mib() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(' '.join(f'{k}={v/1048576:.1f}MiB' for k,v in d.items()))" "$1"; }
echo "$("$node" --version)"
for i in 1 2 3; do
  echo "idle process (node idle.js):                                $(mib "$("$node" idle.js)")"
  echo "heap of arrays, 200 MiB cap (RSS - heapTotal = native):      $(mib "$("$node" --max-old-space-size=200 heap_arrays.js)")"
  echo "server-like heap (http, crypto, zlib; Map of objects), 200 MiB cap: $(mib "$("$node" --max-old-space-size=200 heap_server_like.js)")"
done
