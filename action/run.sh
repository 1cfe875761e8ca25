#!/usr/bin/env bash
# memfit's GitHub Action, step 2: run the command under `memfit run`, compare with a baseline,
# audit, and tell GitHub.
#
# Reads (all optional but INPUT_COMMAND and MEMFIT_BIN): INPUT_COMMAND (a bash command line),
# INPUT_PLATFORM or INPUT_LIMIT, INPUT_CPUS, INPUT_BASELINE (a run report of an earlier run),
# INPUT_MAX_INCREASE (10% or 50M), INPUT_AUDIT (true: `memfit audit --format sarif`).
# Writes under $RUNNER_TEMP/memfit: report.json, report.html, and with a baseline
# compare.json, compare.html; memfit.sarif with the audit. Appends markdown to
# $GITHUB_STEP_SUMMARY and peak-bytes, oom-killed, exit-status, report, html, regression and
# sarif to $GITHUB_OUTPUT. Exits with memfit run's status: the command's own when it failed,
# 1 when the peak rose past the allowance.
# Every input is data: passed to memfit as one argument each, never evaluated here (the
# command is run by `bash -c` under memfit, as the user wrote it).
set -eu

fail() {
  printf '::error title=memfit::%s\n' "$1" >&2
  exit 2
}

: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: run this as a step of the action}"
: "${GITHUB_STEP_SUMMARY:?GITHUB_STEP_SUMMARY is not set: run this as a step of the action}"
: "${RUNNER_TEMP:?RUNNER_TEMP is not set: run this as a step of the action}"
memfit=${MEMFIT_BIN:?MEMFIT_BIN is not set: the install step gives it}
command -v jq >/dev/null || fail "jq is needed to read memfit's JSON report (GitHub's runners have it; apt-get install jq)"
[ -n "${INPUT_COMMAND:-}" ] || fail "the command input is empty: give the build or test command to measure"

out="$RUNNER_TEMP/memfit"
mkdir -p -- "$out"
rm -f -- "$out/report.json" "$out/report.html" "$out/compare.json" "$out/compare.html" "$out/memfit.sarif"

output() {
  printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"
}

if [ "${INPUT_AUDIT:-false}" = "true" ]; then
  # Findings go to code scanning; only an audit that could not run fails the step.
  "$memfit" audit --format sarif --fail-on none >"$out/memfit.sarif" || fail "memfit audit could not run"
  output sarif "$out/memfit.sarif"
fi

args=(run --json "$out/report.json" --html "$out/report.html")
[ -z "${INPUT_PLATFORM:-}" ] || args+=(--platform "$INPUT_PLATFORM")
[ -z "${INPUT_LIMIT:-}" ] || args+=(--limit "$INPUT_LIMIT")
[ -z "${INPUT_CPUS:-}" ] || args+=(--cpus "$INPUT_CPUS")
baseline=
if [ -n "${INPUT_BASELINE:-}" ]; then
  if [ -e "$INPUT_BASELINE" ]; then
    baseline=$INPUT_BASELINE
    args+=(--baseline "$baseline")
    [ -z "${INPUT_MAX_INCREASE:-}" ] || args+=(--max-increase "$INPUT_MAX_INCREASE")
  else
    # The first run on a branch has no artifact to compare with yet.
    printf '::warning title=memfit::no baseline report at %s: this run is not compared\n' "$INPUT_BASELINE" >&2
  fi
fi

status=0
"$memfit" "${args[@]}" -- bash -c "$INPUT_COMMAND" || status=$?
if [ ! -s "$out/report.json" ]; then
  fail "memfit run wrote no report (status $status): see the log above"
fi

# Text from the report as literal markdown, as `memfit compare --format markdown` writes it:
# controls become spaces, every ASCII punctuation character is backslash-escaped.
md='gsub("[\\p{Cc}\\x{202a}-\\x{202e}\\x{2066}-\\x{2069}]"; " ") | gsub("(?<c>[!-/:-@\\[-`{-~])"; "\\\(.c)")'
size='if . == null then "—" else (if . >= 1073741824 then "\(. / 1073741824 * 100 | round / 100) GiB" else "\(. / 1048576 * 10 | round / 10) MiB" end) end'
jq -r "def md: $md; def size: $size;"'
  "### memfit run: \(.command | join(" ") | .[0:200] | md)\n",
  "| | |", "|---|---|",
  "| charged peak | \(.peak.charged_bytes | size) |",
  "| working peak | \(.peak.working_bytes | size) |",
  "| limit | \(.limit_bytes | size)\(if .platform then " (\(.platform | md))" else "" end) |",
  "| OOM-killed | \(if .oom_killed == null then "unknown (measure-only)" elif .oom_killed then "**yes**, \(.oom.kill_count) kill(s)" else "no" end) |",
  "| exit status | \(.exit.status) |",
  "| duration | \(.duration_ms / 100 | round / 10) s |",
  ""' "$out/report.json" >>"$GITHUB_STEP_SUMMARY"

regression=false
if [ -n "$baseline" ]; then
  compare=(compare "$baseline" "$out/report.json")
  [ -z "${INPUT_MAX_INCREASE:-}" ] || compare+=(--max-increase "$INPUT_MAX_INCREASE")
  compared=0
  "$memfit" "${compare[@]}" --format markdown -o "$out/compare.md" --html "$out/compare.html" || compared=$?
  case $compared in
    0) ;;
    1) regression=true ;;
    *) fail "memfit compare could not compare with $baseline (status $compared): see the log above" ;;
  esac
  cat -- "$out/compare.md" >>"$GITHUB_STEP_SUMMARY"
  rm -f -- "$out/compare.md"
  "$memfit" "${compare[@]}" --format json -o "$out/compare.json" || true
  output html-compare "$out/compare.html"
fi
printf '\nThe JSON report and the HTML timeline are in this run'"'"'s artifacts.\n' >>"$GITHUB_STEP_SUMMARY"

output peak-bytes "$(jq -r '.peak.charged_bytes' "$out/report.json")"
output oom-killed "$(jq -r 'if .oom_killed == null then "unknown" else .oom_killed end' "$out/report.json")"
output exit-status "$(jq -r '.exit.status' "$out/report.json")"
output report "$out/report.json"
output html "$out/report.html"
output regression "$regression"
output dir "$out"
exit "$status"
