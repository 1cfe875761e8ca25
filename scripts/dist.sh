#!/usr/bin/env bash
# Release artefacts in dist/: static stripped binaries, a tarball per target, npm packages.
#
#   scripts/dist.sh                 # writes dist/ (replaced as a whole at the end)
#   MEMFIT_DIST_OUT=/tmp/d scripts/dist.sh
#
# dist/memfit, dist/memfit-guard      static x86_64-unknown-linux-gnu binaries (glibc crt-static)
# dist/memfit-VERSION-TARGET.tar.gz    both binaries, shell completions, man pages, README,
#                                      licences; one per target (musl too, when rustup has it)
# dist/npm/memfit-VERSION.tgz          the npm launcher package `memfit` (bin/memfit.js)
# dist/npm/memfit-linux-x64-VERSION.tgz  `@memfit/linux-x64`: the static binaries
# dist/memfit-VERSION-TARGET.tar.gz.sha256  its checksum alone (what the GitHub Action checks)
# dist/SHA256SUMS                      sha256sum -c SHA256SUMS, from inside dist/
#
# Checks, each fatal: every binary is static (`file`, `ldd`), runs in an empty root (chroot
# into a directory holding only it), and memfit-guard is at most 2 MiB (it is copied into
# users' images). Everything is made in a temporary directory beside dist/ and moved into
# place at the end: a failure leaves the previous dist/ as it was. Running it twice gives the
# same bytes (tar and gzip without timestamps, files dated by the last commit).
#
# Needs: cargo, npm, file, sha256sum, tar, gzip, chroot (as root; otherwise unshare -r).
# CARGO_TARGET_DIR is honoured (CI reuses the test build's dependency sources and host
# build scripts; the static builds land in target/TARGET/release).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
out="${MEMFIT_DIST_OUT:-$repo/dist}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
guard_budget=$((2 * 1024 * 1024))

die() { echo "scripts/dist.sh: $*" >&2; exit 1; }

for tool in cargo npm file ldd sha256sum tar gzip; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed and not on PATH"
done

pkgid="$(cargo pkgid -p memfit-cli)"
version="${pkgid##*[#@]}"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "cannot read memfit-cli's version from '$pkgid'"
# Files in the archives are dated by the last commit. Not exported: cc-based build scripts
# (signal-hook's) track SOURCE_DATE_EPOCH, and a new value would rebuild them and all above.
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"

targets=(x86_64-unknown-linux-gnu)
if command -v rustup >/dev/null 2>&1 && rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  targets+=(x86_64-unknown-linux-musl)
else
  echo "scripts/dist.sh: x86_64-unknown-linux-musl is not installed (rustup target add x86_64-unknown-linux-musl): gnu only" >&2
fi

mkdir -p "$(dirname "$out")"
stage="$(mktemp -d "$(dirname "$out")/.dist-stage.XXXXXX")"
scratch="$(mktemp -d)"
trap 'rm -rf "$stage" "$scratch"' EXIT

# A binary is static when `file` and ldd say so (ldd lists nothing to load).
check_static() {
  local bin="$1" what
  what="$(file -b "$bin")"
  case "$what" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) die "$bin is not static: $what" ;;
  esac
  what="$(ldd "$bin" 2>&1 || true)"
  case "$what" in
    *"statically linked"* | *"not a dynamic executable"*) ;;
    *) die "$bin is not static: ldd lists $(echo "$what" | tr -s ' \t\n' ' ')" ;;
  esac
}

# Runs BIN ARG in a root holding only BIN: no libc, no /proc, no /etc.
check_empty_root() {
  local bin="$1" arg="$2" root
  root="$(mktemp -d "$scratch/root.XXXXXX")"
  cp "$bin" "$root/"
  local run=(chroot "$root" "/$(basename "$bin")" "$arg")
  [ "$(id -u)" = 0 ] || run=(unshare --map-root-user "${run[@]}")
  "${run[@]}" >"$scratch/empty-root.out" 2>&1 \
    || die "$(basename "$bin") $arg failed in an empty root: $(head -c 400 "$scratch/empty-root.out")"
  rm -rf "$root"
}

gnu_dir=""
for target in "${targets[@]}"; do
  echo "scripts/dist.sh: building memfit and memfit-guard for $target (release, static)" >&2
  # +crt-static links the C library into the binary (the default on musl). With --target,
  # RUSTFLAGS reach only the target's code, not build scripts and proc macros.
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --locked --quiet --target "$target" \
      -p memfit-cli -p memfit-guard --bin memfit --bin memfit-guard
  built="$target_dir/$target/release"
  name="memfit-$version-$target"
  dir="$scratch/$name"
  mkdir -p "$dir/completions" "$dir/man/man1"
  for bin in memfit memfit-guard; do
    install -m 755 "$built/$bin" "$dir/$bin"
    check_static "$dir/$bin"
  done
  check_empty_root "$dir/memfit" --version
  grep -qx "memfit $version" "$scratch/empty-root.out" \
    || die "memfit --version printed '$(cat "$scratch/empty-root.out")', not 'memfit $version'"
  check_empty_root "$dir/memfit-guard" --version
  grep -qx "memfit-guard $version" "$scratch/empty-root.out" \
    || die "memfit-guard --version printed '$(cat "$scratch/empty-root.out")', not 'memfit-guard $version'"
  guard_size="$(stat -c %s "$dir/memfit-guard")"
  if [ "$guard_size" -gt "$guard_budget" ]; then
    die "memfit-guard for $target is $guard_size bytes, over its budget of $guard_budget (2 MiB): it is copied into users' images; find what grew (cargo bloat, cargo tree -p memfit-guard -e normal)"
  fi

  "$dir/memfit" completions bash >"$dir/completions/memfit.bash"
  "$dir/memfit" completions zsh >"$dir/completions/_memfit"
  "$dir/memfit" completions fish >"$dir/completions/memfit.fish"
  "$dir/memfit" completions elvish >"$dir/completions/memfit.elv"
  "$dir/memfit" completions powershell >"$dir/completions/_memfit.ps1"
  "$dir/memfit" man --dir "$dir/man/man1"
  cp README.md LICENSE-MIT LICENSE-APACHE "$dir/"

  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -C "$scratch" -cf - "$name" | gzip -9n >"$stage/$name.tar.gz"
  if [ "$target" = x86_64-unknown-linux-gnu ]; then
    gnu_dir="$dir"
    cp -p "$dir/memfit" "$dir/memfit-guard" "$stage/"
  fi
done

# npm: the launcher `memfit` and the platform package `@memfit/linux-x64` (the gnu static
# binaries: they need no C library), both at the workspace's version.
mkdir -p "$stage/npm"
npm_pack() { # npm_pack DIR: the package in DIR, as a tarball in dist/npm
  local dir="$1"
  node -e '
    const fs = require("fs");
    const [file, version] = process.argv.slice(1);
    const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
    pkg.version = version;
    for (const dep of Object.keys(pkg.optionalDependencies || {})) pkg.optionalDependencies[dep] = version;
    fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n");
  ' "$dir/package.json" "$version"
  find "$dir" -exec touch -d "@$epoch" {} +
  (cd "$dir" && npm pack --silent --offline --pack-destination "$stage/npm" >/dev/null)
}
cp -r npm/memfit "$scratch/npm-memfit"
cp README.md LICENSE-MIT LICENSE-APACHE "$scratch/npm-memfit/"
chmod 755 "$scratch/npm-memfit/bin/memfit.js"
npm_pack "$scratch/npm-memfit"
cp -r npm/linux-x64 "$scratch/npm-linux-x64"
mkdir -p "$scratch/npm-linux-x64/bin"
install -m 755 "$gnu_dir/memfit" "$gnu_dir/memfit-guard" "$scratch/npm-linux-x64/bin/"
cp LICENSE-MIT LICENSE-APACHE "$scratch/npm-linux-x64/"
npm_pack "$scratch/npm-linux-x64"
for tgz in "memfit-$version.tgz" "memfit-linux-x64-$version.tgz"; do
  [ -s "$stage/npm/$tgz" ] || die "npm pack did not write npm/$tgz"
done

# One .sha256 beside each tarball too: the GitHub Action (action/install.sh) checks the
# tarball it downloads against the file published beside it.
for tarball in "$stage"/memfit-*.tar.gz; do
  (cd "$stage" && sha256sum -- "$(basename "$tarball")" >"$(basename "$tarball").sha256")
done
(cd "$stage" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)

# Into place: the previous dist/ goes only once the new one is complete.
chmod 755 "$stage"
if [ -e "$out" ]; then
  mv "$out" "$stage.old"
fi
mv "$stage" "$out"
rm -rf "$stage.old"

echo "scripts/dist.sh: memfit $version in $out:"
(cd "$out" && find . -type f -printf '%P\n' | LC_ALL=C sort | while read -r f; do
  printf '  %-48s %10s bytes  %s\n' "$f" "$(stat -c %s "$f")" "$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$f")")"
done)
