#!/usr/bin/env bash
# Builds every fuzz target once, then runs each for a fixed time from its seeds in
# corpus/TARGET/ (what it finds goes to a scratch corpus, not into the repository).
#
#   fuzz/run.sh                  every target, 20 s each
#   FUZZ_SECONDS=300 fuzz/run.sh dockerfile project
#   FUZZ_ARGS=-max_len=65536 fuzz/run.sh explain      (more libFuzzer options; the last wins)
#
# A dictionary in dicts/TARGET.dict (tokens the inputs are made of) is used when present.
#
# Exit status: 0 when no target crashed; 1 when one did (its input is printed, and kept in
# fuzz/artifacts/TARGET/); 2 when the targets could not be built.
#
# cargo-fuzz needs a nightly compiler: with a nightly toolchain installed, it is used, with
# AddressSanitizer; otherwise the stable compiler is used with RUSTC_BOOTSTRAP=1 and no
# sanitizer (Rust code panics on every memory error anyway; the sanitizer adds checks of the
# unsafe code and of C dependencies).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-20}"
cargo_fuzz_version=0.13.2

# libFuzzer's options: -detect_leaks=0 because the thread pools and caches of the audit
# (rayon, oxc) keep allocations across runs, which LeakSanitizer rescans after every run that
# allocated more than it freed (the project target: 200 runs of one input took 17 s of CPU
# with it, 1.7 s without), and finds none. -timeout: one input taking 30 s is a bug (a hang).

# The largest input each target is given, in bytes: enough for the files and logs that
# exercise it (the seeds are smaller); larger only slows every run.
max_len() {
  case "$1" in
    cli_args) echo 512 ;;
    project | explain) echo 16384 ;;
    *) echo 8192 ;;
  esac
}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing cargo-fuzz $cargo_fuzz_version" >&2
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --quiet
fi

# FUZZ_TOOLCHAIN=stable forces the stable path (to check it where a nightly exists).
if [ "${FUZZ_TOOLCHAIN:-}" != stable ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
  build_flags=(--sanitizer address)
  toolchain="nightly, AddressSanitizer"
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
  build_flags=(--sanitizer none)
  toolchain="$(rustc --version | cut -d' ' -f2) with RUSTC_BOOTSTRAP=1, no sanitizer"
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <("${fuzz[@]}" list)
fi

echo "fuzz/run.sh: building ${#targets[@]} target(s) ($toolchain)" >&2
start=$SECONDS
for target in "${targets[@]}"; do
  if ! "${fuzz[@]}" build "${build_flags[@]}" "$target"; then
    echo "fuzz/run.sh: the fuzz target $target does not build" >&2
    exit 2
  fi
done
echo "fuzz/run.sh: built in $((SECONDS - start)) s" >&2

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=0
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target" "artifacts/$target"
  log="$scratch/$target.log"
  dict=()
  if [ -f "dicts/$target.dict" ]; then dict=(-dict="dicts/$target.dict"); fi
  echo "fuzz/run.sh: $target for ${seconds} s" >&2
  if "${fuzz[@]}" run "${build_flags[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -max_len="$(max_len "$target")" -rss_limit_mb=2048 \
      -timeout=30 -detect_leaks=0 -print_final_stats=1 "${dict[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^Done ' "$log" | sed "s/^/  $target: /" >&2 || true
  else
    failed=1
    tail -40 "$log" >&2
    input="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
    input="$(realpath "${input:-artifacts/$target}")"
    echo "fuzz/run.sh: $target FAILED; input: $input" >&2
    echo "  reproduce: cd fuzz && ${fuzz[*]} run ${build_flags[*]} $target $input" >&2
    echo "  minimize:  cd fuzz && ${fuzz[*]} tmin ${build_flags[*]} $target $input" >&2
  fi
done
echo "fuzz/run.sh: done in $((SECONDS - start)) s" >&2
exit "$failed"
