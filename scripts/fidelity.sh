#!/usr/bin/env bash
# Regenerates the tables of docs/fidelity.md: the Docker conformance suite
# (crates/memfit-cli/tests/docker.rs), each case run 3 times, against the Docker Engine running
# here (cgroupfs driver; as root). The text around the tables is kept.
#
#   scripts/fidelity.sh [RUNS]        default 3
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
tables=$(mktemp)
trap 'rm -f "$tables"' EXIT
MEMFIT_DOCKER_TESTS=required MEMFIT_FIDELITY_RUNS="$runs" MEMFIT_WRITE_FIDELITY="$tables" \
  cargo test -q -p memfit-cli --test docker -- --test-threads 1 >&2
{
  sed -n '1,/<!-- tables: scripts\/fidelity.sh -->/p' docs/fidelity.md
  printf 'Recorded %s with %s, dockerd %s (%s runs per case):\n\n' \
    "$(date -u +%Y-%m-%d)" "$(uname -r | sed 's/^/Linux /')" \
    "$(docker info --format '{{.ServerVersion}}, {{.CgroupDriver}} driver, cgroup v{{.CgroupVersion}}')" "$runs"
  cat "$tables"
  sed -n '/<!-- end of tables -->/,$p' docs/fidelity.md
} > docs/fidelity.md.new
mv docs/fidelity.md.new docs/fidelity.md
echo "docs/fidelity.md: $(grep -c '| agree |' docs/fidelity.md) rows agree, $(grep -c '| DIFFER |' docs/fidelity.md) differ" >&2
