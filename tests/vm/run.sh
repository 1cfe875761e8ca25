#!/usr/bin/env bash
# Boot a real cgroup-v2 Linux kernel under qemu (software emulation) and run memfit's tests in it.
#
#   tests/vm/run.sh                 # cgroup v2 only (cgroup_no_v1=all): the tests listed below
#   tests/vm/run.sh --layout hybrid # v1 memory controller + v2 unified hierarchy, as many hosts have
#   tests/vm/run.sh -- run guard    # only these test targets (names as in `cargo test --test NAME`)
#   MEMFIT_VM_TEST_ARGS="--skip NAME" tests/vm/run.sh …   # arguments for every test binary
#   tests/vm/run.sh --with-docker -- docker   # a Docker Engine in the guest, for tests/docker.rs
#   tests/vm/run.sh --with-docker --cgroup-driver systemd -- docker
#                                   # systemd as the guest's PID 1 (with D-Bus), dockerd and
#                                   # containerd started as systemd units with the systemd
#                                   # cgroup driver, as Docker's packages install them
#   MEMFIT_VM_PRELUDE=FILE tests/vm/run.sh …   # a shell script the guest runs before the tests
#                                   # (to look around; its output goes to the console)
#   MEMFIT_VM_TABLES=FILE MEMFIT_FIDELITY_RUNS=N tests/vm/run.sh --with-docker -- docker
#                                   # also writes the Docker suite's tables the guest prints to
#                                   # FILE, under a line naming the guest (scripts/fidelity.sh --v2)
#
# The host's cgroup layout is whatever the machine has; the guest's is chosen on the kernel
# command line, so `.ci/run` tests both for real. The guest is an initramfs: static busybox, node,
# the test binaries already built by `cargo test --workspace` (copied to the same absolute paths,
# so CARGO_BIN_EXE_* resolve), the libraries `ldd` lists, and the repository's test fixtures.
# Exit status: the tests' (0 when all passed), 3 when the guest gave no status line.
#
# The kernel is Debian's: pinned below. When Debian's mirror drops the pinned package (a kernel
# ABI bump, e.g. linux-image-6.1.0-58-amd64), the script falls back to what `linux-image-amd64`
# depends on and says so; then set KERNEL_PKG and KERNEL_VERSION to that package
# (`apt-cache depends linux-image-amd64`, `apt-cache policy PKG`).
set -euo pipefail

KERNEL_PKG="${MEMFIT_VM_KERNEL_PKG:-linux-image-6.1.0-57-amd64}"
KERNEL_VERSION="${MEMFIT_VM_KERNEL_VERSION:-6.1.192-3}"

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${MEMFIT_VM_CACHE:-$HOME/.cache/memfit-vm}"
layout=v2
with_docker=no
cgroup_driver=cgroupfs
# What the kernel decides: the integration tests of run, bisect, guard, plan, the reports and
# the cgroup placement, and the unit tests of the crates that read cgroups and /proc. The
# parsers' tests (audit, explain) behave the same on any kernel and stay on the host.
targets=(run bisect guard guard_http plan fidelity reports measurements stale_cgroups exit_status cgroup_v2 cgroup_trees
         memfit_sys memfit_measure memfit_guard memfit_core)
while [ $# -gt 0 ]; do
  case "$1" in
    --layout) layout="$2"; shift 2 ;;
    --with-docker) with_docker=yes; shift ;;
    --cgroup-driver) cgroup_driver="$2"; shift 2 ;;
    --) shift; targets=("$@"); break ;;
    *) echo "usage: tests/vm/run.sh [--layout v2|hybrid] [--with-docker [--cgroup-driver cgroupfs|systemd]] [-- TEST_TARGET...]" >&2; exit 2 ;;
  esac
done
case "$cgroup_driver" in
  cgroupfs) ;;
  systemd) [ "$with_docker" = yes ] || { echo "tests/vm/run.sh: --cgroup-driver is dockerd's: give --with-docker too" >&2; exit 2; } ;;
  *) echo "tests/vm/run.sh: --cgroup-driver is cgroupfs or systemd, not '$cgroup_driver'" >&2; exit 2 ;;
esac
case "$layout" in
  v2) cmdline_cgroup="cgroup_no_v1=all" ;;
  hybrid) cmdline_cgroup="" ;;
  *) echo "tests/vm/run.sh: --layout is v2 or hybrid, not '$layout'" >&2; exit 2 ;;
esac

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
command -v jq >/dev/null 2>&1 || need+=(jq)
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then need+=(busybox-static); fi
if [ "$with_docker" = yes ]; then
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
fi
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The kernel, from Debian's package, unpacked once.
mkdir -p "$cache"
kdir="$cache/$KERNEL_PKG-$KERNEL_VERSION"
# overlay.ko came later than the rest: a cache without it is fetched again.
if [ ! -f "$kdir/vmlinuz" ] || [ ! -f "$kdir/modules/overlay.ko" ]; then
  dl="$(mktemp -d)"
  if ! (cd "$dl" && apt-get download -q "$KERNEL_PKG=$KERNEL_VERSION" >/dev/null 2>&1); then
    fallback="$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -1)"
    echo "*** tests/vm/run.sh: the pinned kernel $KERNEL_PKG=$KERNEL_VERSION is not in the mirror;" \
         "using $fallback: pin it in tests/vm/run.sh (KERNEL_PKG, KERNEL_VERSION)" >&2
    KERNEL_PKG="$fallback"
    KERNEL_VERSION="$(apt-cache policy "$fallback" | sed -n 's/^ *Candidate: //p')"
    kdir="$cache/$KERNEL_PKG-$KERNEL_VERSION"
    (cd "$dl" && apt-get download -q "$KERNEL_PKG" >/dev/null 2>&1)
  fi
  rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
  dpkg-deb -x "$dl"/*.deb "$kdir.tmp/root"
  cp "$kdir.tmp"/root/boot/vmlinuz-* "$kdir.tmp/vmlinuz"
  mods="$(echo "$kdir.tmp"/root/lib/modules/*)"
  mkdir -p "$kdir.tmp/modules"
  cp "$mods/kernel/mm/zsmalloc.ko" "$mods/kernel/drivers/block/zram/zram.ko" \
     "$mods/kernel/fs/overlayfs/overlay.ko" "$kdir.tmp/modules/"
  rm -rf "$kdir.tmp/root" "$dl"
  rm -rf "$kdir" && mv "$kdir.tmp" "$kdir"
fi

# The test binaries `cargo test --workspace` built (no rebuild: same profile and features).
cd "$repo"
artifacts="$(mktemp)"
cargo test --workspace --no-run --message-format=json 2>/dev/null \
  | jq -r 'select(.reason == "compiler-artifact" and .executable != null)
           | [.executable, .target.name, (.target.kind | join(",")), (.manifest_path | rtrimstr("/Cargo.toml")), (.profile.test | tostring)]
           | @tsv' >"$artifacts"

root="$(mktemp -d /tmp/memfit-vm-root.XXXXXX)"
chmod 755 "$root"   # the guest's / : a non-root user must get through it
trap 'rm -rf "$root" "$artifacts"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,proc,sys,dev,tmp,run,etc,root,lib/modules}
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
cp "$kdir"/modules/*.ko "$root/lib/modules/"

copy_with_libs() { # copy_with_libs SRC [DEST]: a binary and the libraries ldd lists, at their paths
  local src="$1" dest="${2:-$1}"
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$src" "$root$dest"
  # A static binary (docker-init) has none: ldd fails and nothing matches.
  { ldd "$src" 2>/dev/null || true; } | { grep -oE '/[^ ]+' || true; } | while read -r lib; do
    [ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
  done
}
copy_with_libs "$(command -v node)" /usr/bin/node
# util-linux's setpriv: busybox's cannot change the user (the delegated-subtree test needs it).
copy_with_libs "$(command -v setpriv)" /usr/bin/setpriv

# The repository's sources and fixtures (tests read fixtures relative to their crate).
rel="${repo#/}"
tar -C / --exclude="$rel/target" --exclude="$rel/.git" --exclude="$rel/fuzz" -cf - "$rel" \
  | tar -C "$root" -xf -

tests_list="$root/vm-tests"
: >"$tests_list"
while IFS=$'\t' read -r exe name kind dir is_test; do
  copy_with_libs "$exe"
  strip --strip-debug "$root$exe" 2>/dev/null || true
  [ "$is_test" = true ] || continue
  # The Docker suite needs a Docker Engine in the guest (--with-docker).
  [ "$name" = docker ] && [ "$with_docker" = no ] && continue
  case " ${targets[*]} " in *" $name "*) ;; *) continue ;; esac
  printf '%s\t%s\t%s\n' "$dir" "$exe" "$name" >>"$tests_list"
done <"$artifacts"
if [ ! -s "$tests_list" ]; then
  echo "tests/vm/run.sh: no test binary matched (build them first: cargo test --workspace --no-run)" >&2
  exit 2
fi

# --with-docker: Debian's Docker Engine (dockerd, containerd, its runc shim, runc, docker-init),
# both docker CLIs the host has (the suite runs `docker` from PATH, /usr/local/bin first, and
# /usr/bin/docker for builds: Debian's 20.10 CLI drives BuildKit with DOCKER_BUILDKIT=1), and
# what the suite's image needs (bash for glibc's ldd script). /init starts dockerd before the
# tests and stops it after.
if [ "$with_docker" = yes ]; then
  for bin in /usr/sbin/dockerd /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 \
             /usr/sbin/runc /usr/bin/docker-init /usr/bin/docker /usr/local/bin/docker; do
    [ -x "$bin" ] && copy_with_libs "$bin"
  done
  ln -sf ../sbin/runc "$root/usr/bin/runc"
  # The Compose v2 plugin (scripts/compose-v2.sh) for tests/compose.rs; 1.x (Python) stays out.
  if [ -x /usr/local/lib/docker/cli-plugins/docker-compose ]; then
    copy_with_libs /usr/local/lib/docker/cli-plugins/docker-compose
    touch "$root/vm-compose-v2"
  fi
  copy_with_libs "$(command -v bash)" /bin/bash
  cp /usr/bin/ldd "$root/usr/bin/ldd"
  : >"$root/etc/resolv.conf"
  printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
  touch "$root/vm-docker"
  echo "$cgroup_driver" >"$root/vm-cgroup-driver"
fi

# --cgroup-driver systemd: systemd 252 as PID 1 and the D-Bus system bus, both the host's
# (Debian's packages), which runc and dockerd ask for the containers' scopes and slices. Only
# the units the boot needs: the targets and slices, D-Bus, and memfit-vm.service, which runs
# /init's second half (the tests) once the bus is up.
if [ "$cgroup_driver" = systemd ]; then
  for bin in /lib/systemd/systemd /bin/systemctl /usr/bin/busctl /usr/bin/systemd-run \
             /usr/bin/dbus-daemon /usr/bin/dbus-send /lib/systemd/systemd-executor; do
    [ -x "$bin" ] && copy_with_libs "$bin"
  done
  mkdir -p "$root/lib/systemd/system" "$root/usr/share" "$root/etc/dbus-1" "$root/var/lib/dbus"
  cp /lib/systemd/system/*.target /lib/systemd/system/*.slice /lib/systemd/system/dbus.socket \
     /lib/systemd/system/dbus.service "$root/lib/systemd/system/"
  cp -r /usr/share/dbus-1 "$root/usr/share/"
  printf 'messagebus:x:100:102::/nonexistent:/bin/false\n' >>"$root/etc/passwd"
  printf 'messagebus:x:102:\n' >>"$root/etc/group"
  # A fixed machine id: D-Bus needs one; systemd would otherwise make a transient one.
  echo 6d656d6669742d766d2d6775657374a0 >"$root/etc/machine-id"
  cat >"$root/lib/systemd/system/memfit-vm.service" <<'UNIT'
[Unit]
Description=memfit's tests (tests/vm/run.sh)
DefaultDependencies=no
Requires=dbus.socket
After=dbus.socket
[Service]
Type=oneshot
ExecStart=/init tests
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
UNIT
  touch "$root/vm-systemd"
fi

cp "$repo/tests/vm/init" "$root/init"
chmod +x "$root/init"
echo "$layout" >"$root/vm-layout"
echo "${MEMFIT_FIDELITY_RUNS:-1}" >"$root/vm-fidelity-runs"
# Extra arguments for every test binary, e.g. MEMFIT_VM_TEST_ARGS="--skip NAME".
echo "${MEMFIT_VM_TEST_ARGS:-}" >"$root/vm-test-args"
[ -n "${MEMFIT_VM_PRELUDE:-}" ] && cp "$MEMFIT_VM_PRELUDE" "$root/vm-prelude"

initrd="$(mktemp /tmp/memfit-vm-initrd.XXXXXX)"
trap 'rm -rf "$root" "$artifacts" "$initrd"' EXIT
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$initrd"
echo "tests/vm/run.sh: $(wc -l <"$tests_list") test binaries, initramfs $(( $(stat -c %s "$initrd") / 1048576 )) MiB, kernel $KERNEL_PKG $KERNEL_VERSION, layout $layout" >&2

cmdline_init=""
if [ "$cgroup_driver" = systemd ]; then
  # systemd reads these from the kernel command line: start only memfit-vm.service (and
  # what it needs), quietly; not as an initrd (no switch to a real root follows). apparmor=0:
  # systemd mounts securityfs, where dockerd then finds AppArmor and wants apparmor_parser.
  cmdline_init="systemd.unit=memfit-vm.service systemd.show_status=0 systemd.log_level=warning systemd.log_target=console SYSTEMD_IN_INITRD=0 apparmor=0"
  # The hybrid layout under systemd: v1 controllers, v2 beside them (systemd's "hybrid").
  [ "$layout" = hybrid ] && cmdline_init="$cmdline_init systemd.unified_cgroup_hierarchy=0"
fi
log="$(mktemp /tmp/memfit-vm-log.XXXXXX)"
# -accel tcg: KVM hangs on this kind of machine. thread=multi lets the guest's 2 CPUs run on 2
# host threads; the memory holds the initramfs (unpacked in RAM) and the tests' limits.
# no_timer_check: on a loaded host the emulated timer can miss the kernel's IO-APIC check,
# which then panics ("IO-APIC + timer doesn't work!"), seen here.
timeout "${MEMFIT_VM_TIMEOUT:-2400}" qemu-system-x86_64 \
  -accel tcg,thread=multi,tb-size=1024 -cpu max -m "${MEMFIT_VM_MEMORY:-4096}" -smp 2 \
  -nographic -no-reboot -nic none \
  -kernel "$kdir/vmlinuz" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 quiet no_timer_check $cmdline_cgroup $cmdline_init" </dev/null | tee "$log" || true
status="$(sed -n 's/^MEMFIT-VM-STATUS: \([0-9]*\).*/\1/p' "$log" | tail -1)"
if [ -n "${MEMFIT_VM_TABLES:-}" ]; then
  # The tables follow "memfit-vm: --- …/fidelity-tables.md" up to the guest's next line of its
  # own; the serial console ends lines with CR.
  {
    printf 'Recorded %s in the cgroup-v2 guest (`tests/vm/run.sh --layout %s --with-docker -- docker`), Linux %s (%s), %s (%s runs per case):\n\n' \
      "$(date -u +%Y-%m-%d)" "$layout" "${KERNEL_PKG#linux-image-}" "$KERNEL_VERSION" \
      "$(tr -d '\r' <"$log" | sed -n 's/^memfit-vm: dockerd /dockerd /p' | tail -1)" "${MEMFIT_FIDELITY_RUNS:-1}"
    tr -d '\r' <"$log" | awk '/^memfit-vm: --- /{on=1; next} /^(memfit-vm:|MEMFIT-VM-STATUS)/{on=0} on'
  } >"$MEMFIT_VM_TABLES"
fi
rm -f "$log"
if [ -z "$status" ]; then
  echo "tests/vm/run.sh: the guest ended without a status line" >&2
  exit 3
fi
exit "$status"
