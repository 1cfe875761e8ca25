#!/usr/bin/env bash
# memfit's GitHub Action, step 1: the memfit binary to use.
#
# Either INPUT_MEMFIT_PATH (a binary already on the runner), or the release tarball of
# INPUT_VERSION, downloaded from INPUT_DOWNLOAD_URL (default: the action repository's GitHub
# release for that version; https://, file:// or a local directory) and checked against its
# SHA-256: INPUT_SHA256 when given, else the `.sha256` file published beside the tarball.
# Writes `path=<binary>` to $GITHUB_OUTPUT. Every input is data: nothing is evaluated.
set -eu

fail() {
  printf '::error title=memfit::%s\n' "$1" >&2
  exit 1
}

: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: run this as a step of the action}"
: "${RUNNER_TEMP:?RUNNER_TEMP is not set: run this as a step of the action}"

if [ -n "${INPUT_MEMFIT_PATH:-}" ]; then
  bin=$INPUT_MEMFIT_PATH
  if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
    fail "memfit-path: $bin is not an executable file"
  fi
  "$bin" --version >/dev/null || fail "memfit-path: $bin --version failed: is it memfit?"
  printf 'path=%s\n' "$bin" >>"$GITHUB_OUTPUT"
  exit 0
fi

version=${INPUT_VERSION:-}
version=${version#v}
# A version is a semantic version, nothing else: it becomes part of a URL and a file name.
if ! printf '%s' "$version" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$'; then
  fail "version: '${INPUT_VERSION:-}' is not a release version such as 0.1.0; or give memfit-path"
fi
case "$(uname -m)" in
  x86_64) target=x86_64-unknown-linux-gnu ;;
  *) fail "no memfit release for $(uname -m); build memfit and give memfit-path" ;;
esac
name="memfit-$version-$target.tar.gz"
base=${INPUT_DOWNLOAD_URL:-}
if [ -z "$base" ]; then
  # github.action_repository: the repository the action was taken from (owner/name).
  case "${MEMFIT_REPOSITORY:-}" in
    */*) base="https://github.com/$MEMFIT_REPOSITORY/releases/download/v$version" ;;
    *) fail "cannot tell which repository this action came from: give download-url, or memfit-path" ;;
  esac
fi
base=${base%/}

dir="$RUNNER_TEMP/memfit-install-$version"
rm -rf -- "$dir"
mkdir -p -- "$dir"

# https:// and file:// only (no redirect to anything else), or a local directory.
fetch() {
  case "$1" in
    https://* | file://*)
      curl --fail --silent --show-error --location --proto '=https,file' --proto-redir '=https' \
        --retry 3 --output "$2" -- "$1" || fail "cannot download $1"
      ;;
    /*) cp -- "$1" "$2" || fail "cannot copy $1" ;;
    *) fail "download-url must be https://, file:// or an absolute directory, not $1" ;;
  esac
}

fetch "$base/$name" "$dir/$name"
expected=${INPUT_SHA256:-}
if [ -z "$expected" ]; then
  fetch "$base/$name.sha256" "$dir/$name.sha256"
  expected=$(head -c 200 "$dir/$name.sha256" | awk '{print $1; exit}')
fi
expected=$(printf '%s' "$expected" | tr 'A-F' 'a-f')
if ! printf '%s' "$expected" | grep -Eq '^[0-9a-f]{64}$'; then
  rm -rf -- "$dir"
  fail "no SHA-256 for $name (give the sha256 input, or publish $name.sha256 beside it)"
fi
actual=$(sha256sum -- "$dir/$name" | awk '{print $1}')
if [ "$actual" != "$expected" ]; then
  rm -rf -- "$dir"
  fail "checksum mismatch for $name: expected $expected, got $actual; refusing to install it"
fi

# The one member named memfit (a regular file), wherever the tarball keeps it.
member=$(tar -tzf "$dir/$name" | grep -E '(^|/)memfit$' | head -n 1) || true
[ -n "$member" ] || fail "$name holds no memfit binary"
case "/$member/" in
  *"/../"*) fail "$name: $member leaves the directory it is unpacked in" ;;
esac
member=${member#/}
tar -xzf "$dir/$name" -C "$dir" --no-same-owner -- "$member" || fail "cannot unpack $name"
bin="$dir/$member"
if [ -L "$bin" ] || [ ! -f "$bin" ]; then
  fail "$name: $member is not a regular file"
fi
chmod +x -- "$bin"
"$bin" --version >/dev/null || fail "$bin --version failed"
printf 'path=%s\n' "$bin" >>"$GITHUB_OUTPUT"
