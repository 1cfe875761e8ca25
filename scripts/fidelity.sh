#!/usr/bin/env bash
# Regenerates the tables of docs/fidelity.md: the Docker conformance suite
# (crates/memfit-cli/tests/docker.rs), each case run 3 times, against the Docker Engine running
# here (cgroupfs driver; as root). The text around the tables is kept.
#
#   scripts/fidelity.sh [RUNS]          default 3: the host's tables; the cgroup-v2 tables kept
#   scripts/fidelity.sh --v2 [RUNS]     the cgroup-v2 guest's tables too (tests/vm/run.sh
#                                       --with-docker -- docker, under emulation: an hour or more
#                                       with the matrix; RUNS for the guest defaults to 1)
set -euo pipefail
cd "$(dirname "$0")/.."
v2=no
if [ "${1:-}" = --v2 ]; then v2=yes; shift; fi
runs=${1:-3}
tables=$(mktemp)
v2_tables=$(mktemp)
trap 'rm -f "$tables" "$v2_tables"' EXIT
MEMFIT_DOCKER_TESTS=required MEMFIT_FIDELITY_RUNS="$runs" MEMFIT_WRITE_FIDELITY="$tables" \
  cargo test -q -p memfit-cli --test docker -- --test-threads 1 >&2
if [ "$v2" = yes ]; then
  # The guest runs the test binaries `cargo test` built; it prints the tables into its log and
  # tests/vm/run.sh writes them to MEMFIT_VM_TABLES under a line naming the guest.
  MEMFIT_VM_TIMEOUT="${MEMFIT_VM_TIMEOUT:-7200}" MEMFIT_VM_TABLES="$v2_tables" \
    MEMFIT_FIDELITY_RUNS="${MEMFIT_V2_RUNS:-1}" tests/vm/run.sh --with-docker -- docker >&2
  sed -i 's/^### /### cgroup v2: /' "$v2_tables"
else
  # Keep the v2 tables recorded last time.
  sed -n '/<!-- v2 tables: scripts\/fidelity.sh --v2 -->/,/<!-- end of tables -->/p' docs/fidelity.md \
    | sed '1d;$d' >"$v2_tables"
fi
{
  sed -n '1,/<!-- tables: scripts\/fidelity.sh -->/p' docs/fidelity.md
  printf 'Recorded %s with %s, dockerd %s (%s runs per case):\n\n' \
    "$(date -u +%Y-%m-%d)" "$(uname -r | sed 's/^/Linux /')" \
    "$(docker info --format '{{.ServerVersion}}, {{.CgroupDriver}} driver, cgroup v{{.CgroupVersion}}')" "$runs"
  cat "$tables"
  echo '<!-- v2 tables: scripts/fidelity.sh --v2 -->'
  cat "$v2_tables"
  sed -n '/<!-- end of tables -->/,$p' docs/fidelity.md
} > docs/fidelity.md.new
mv docs/fidelity.md.new docs/fidelity.md
echo "docs/fidelity.md: $(grep -c '| agree |' docs/fidelity.md) rows agree, $(grep -c '| DIFFER |' docs/fidelity.md) differ" >&2
