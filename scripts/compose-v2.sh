#!/usr/bin/env bash
# Installs Docker Compose v2 (the `docker compose` CLI plugin, a Go binary) for
# crates/memfit-cli/tests/compose.rs, from Debian trixie's docker-compose package, on a Debian
# bookworm host whose own docker-compose is 1.29 (Python). Nothing of the host's apt setup is
# changed and bookworm's docker-compose stays as it is: the .deb is fetched from the mirror's
# pool by its pinned version and SHA-256, unpacked in a temporary directory, and only its
# plugin binary is installed, into the CLI plugin directory for locally installed plugins
# (docs.docker.com/compose/install/linux/, "Install the plugin manually"; the docker CLI
# looks there: cli/cli-plugins/manager/manager_unix.go `defaultSystemPluginDirs`).
#
# Idempotent: does nothing when the pinned binary is installed already.
#
# When trixie's docker-compose moves on, the mirror drops this version and the download fails
# (404). To update the pin, read the current version, pool path and SHA-256 from trixie's
# package index with a throwaway apt state (the host's sources are not touched):
#   t=$(mktemp -d); mkdir -p "$t/lists/partial"
#   echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main' >"$t/sources.list"
#   o="-o Dir::Etc::SourceList=$t/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$t/lists"
#   apt-get $o update && apt-cache $o show docker-compose | grep -E '^(Version|Filename|SHA256):'
# then set VERSION, DEB_SHA256 below, run this script once more and set BIN_SHA256 to the
# installed binary's `sha256sum`.
set -euo pipefail

VERSION="2.26.1-4"
DEB_SHA256="47681197cb2b1ab88206b42a1a92fc75f50d9530a6322d03494a473eed0408ea"
# The plugin binary inside that .deb (usr/libexec/docker/cli-plugins/docker-compose).
BIN_SHA256="c0ef2e286ba1c45bf1868b70a1c71d30a802bb3996888f2f986c3166f9e45f57"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEB="docker-compose_${VERSION}_amd64.deb"
URL="$MIRROR/pool/main/d/docker-compose/$DEB"
PLUGIN_DIR="/usr/local/lib/docker/cli-plugins"
PLUGIN="$PLUGIN_DIR/docker-compose"

fail() {
  echo "compose-v2.sh: $*" >&2
  exit 1
}

[ "$(uname -m)" = x86_64 ] || fail "the pinned package is amd64; this machine is $(uname -m)"

if [ -x "$PLUGIN" ] && echo "$BIN_SHA256  $PLUGIN" | sha256sum --check --status; then
  :
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  status=$(curl -sS -L -o "$work/$DEB" -w '%{http_code}' "$URL") || fail "cannot download $URL"
  if [ "$status" != 200 ]; then
    fail "$URL answered HTTP $status: Debian trixie no longer has docker-compose $VERSION. Update the pin at the top of $0 (the comment there says how)."
  fi
  echo "$DEB_SHA256  $work/$DEB" | sha256sum --check --status \
    || fail "$DEB does not have the pinned SHA-256 $DEB_SHA256 (got $(sha256sum "$work/$DEB" | cut -d' ' -f1)); not installed"
  dpkg-deb -x "$work/$DEB" "$work/root"
  binary="$work/root/usr/libexec/docker/cli-plugins/docker-compose"
  echo "$BIN_SHA256  $binary" | sha256sum --check --status \
    || fail "the plugin binary in $DEB does not have the pinned SHA-256 $BIN_SHA256"
  install -d -m 0755 "$PLUGIN_DIR"
  install -m 0755 "$binary" "$PLUGIN.new"
  mv -f "$PLUGIN.new" "$PLUGIN"
fi

# A Go binary built with cgo: it links the C library only (Depends: libc6 >= 2.34).
if ldd "$PLUGIN" | grep -q 'not found'; then
  ldd "$PLUGIN" >&2
  fail "$PLUGIN misses shared libraries"
fi
# Every docker CLI on this machine finds it: Debian's (/usr/bin/docker, 20.10) and the one
# first on PATH.
for docker in /usr/bin/docker "$(command -v docker || true)"; do
  [ -x "$docker" ] || continue
  version=$("$docker" compose version --short 2>&1) \
    || fail "$docker compose version failed: $version"
  [ "$version" = "$VERSION" ] || fail "$docker compose is $version, not the $VERSION just installed (another plugin directory comes first?)"
done
echo "docker compose $VERSION: $PLUGIN"
