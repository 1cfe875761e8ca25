//! The cgroup readers on recorded file trees (see tests/fixtures/README.md): the parts of
//! cgroup v2 support that the cgroup-v1 development VM cannot exercise for real.

use std::fs;
use std::path::{Path, PathBuf};

use memfit_sys::CgroupVersion;

use memfit_sys::cgroup::{find_memory_hierarchy, parse_flat_keyed, parse_v1_stat, CgroupFiles};

fn fixture(tree: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(tree)
}

fn read(tree: &str, file: &str) -> String {
    fs::read_to_string(fixture(tree).join(file)).unwrap()
}

/// Replays a tree's root `cgroup.controllers` for whatever mount point is asked.
fn detect(tree: &str) -> Option<memfit_sys::cgroup::FoundHierarchy> {
    let controllers = fs::read_to_string(fixture(tree).join("root-cgroup.controllers")).ok();
    find_memory_hierarchy(&read(tree, "mountinfo"), &read(tree, "cgroup"), |_| {
        controllers.clone()
    })
}

#[test]
fn v2_host_finds_the_unified_mount_and_the_session_scope() {
    let found = detect("v2-systemd-host").unwrap();
    assert_eq!(found.version, CgroupVersion::V2);
    assert_eq!(found.mount, PathBuf::from("/sys/fs/cgroup"));
    assert!(found.own_path.ends_with("vte-spawn-1.scope"));
}

#[test]
fn v2_container_with_a_cgroup_namespace_is_its_own_root() {
    let found = detect("v2-container-cgroupns").unwrap();
    assert_eq!(found.version, CgroupVersion::V2);
    assert_eq!(found.own_path, "/");
}

#[test]
fn v2_without_the_memory_controller_is_not_used() {
    let tree = "v2-systemd-host";
    let none = find_memory_hierarchy(&read(tree, "mountinfo"), &read(tree, "cgroup"), |_| {
        Some("cpu io pids".to_string())
    });
    assert!(none.is_none());
}

#[test]
fn hybrid_v1_host_uses_the_v1_memory_controller() {
    let found = detect("v1-hybrid-devvm").unwrap();
    assert_eq!(found.version, CgroupVersion::V1);
    assert_eq!(found.mount, PathBuf::from("/sys/fs/cgroup/memory"));
    assert!(found.own_path.starts_with("/process_api/"));
}

#[test]
fn v2_counters_read_from_a_recorded_tree() {
    let files = CgroupFiles::open(CgroupVersion::V2, fixture("v2-systemd-host"));
    assert_eq!(files.usage(), 547_356_672);
    assert_eq!(files.peak(), Some(536_870_912));
    let stat = files.stat();
    assert_eq!(stat.anon, 402_653_184);
    assert_eq!(stat.kernel, 18_874_368);
    assert_eq!(stat.inactive_file, 100_663_296);
    // Working = usage − inactive_file, as docker stats and cAdvisor compute it.
    assert_eq!(stat.working(files.usage()), 547_356_672 - 100_663_296);
    let counters = files.oom_counters();
    assert_eq!(counters.oom_kill, 1);
    assert_eq!(counters.limit_hits, 57);
}

#[test]
fn v2_memcg_oom_recorded_on_a_real_host() {
    let files = CgroupFiles::open(CgroupVersion::V2, fixture("v2-systemd-unit-oom"));
    // The watermark reached the limit; what is left after the kill is tiny.
    assert_eq!(files.peak(), Some(536_870_912));
    assert_eq!(files.usage(), 278_528);
    let counters = files.oom_counters();
    assert_eq!((counters.oom_kill, counters.limit_hits), (1, 35));
}

#[test]
fn old_v2_kernel_without_memory_peak_or_kernel_total() {
    let files = CgroupFiles::open(CgroupVersion::V2, fixture("v2-old-kernel"));
    assert_eq!(files.peak(), None, "no memory.peak before Linux 5.19");
    let stat = files.stat();
    // kernel_stack + pagetables + slab + sock + percpu.
    assert_eq!(stat.kernel, 327_680 + 1_048_576 + 6_291_456 + 4096 + 720);
    assert_eq!(files.oom_counters().oom_kill, 0);
    let found = detect("v2-old-kernel").unwrap();
    assert_eq!(found.own_path, "/system.slice/ci-runner.service");
}

#[test]
fn v1_recorded_stat_and_oom_control() {
    let stat = parse_v1_stat(&read("v1-hybrid-devvm", "memory.stat"));
    assert!(stat.file > 0, "the recorded cgroup has page cache");
    let control = parse_flat_keyed(&read("v1-hybrid-devvm", "memory.oom_control"));
    assert_eq!(control.get("oom_kill"), Some(&0));
    assert_eq!(control.get("under_oom"), Some(&0));
}

#[test]
fn the_enclosing_limit_is_the_lowest_on_the_way_up() {
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("kubepods/pod1");
    let container = pod.join("c1");
    fs::create_dir_all(&container).unwrap();
    fs::write(dir.path().join("kubepods/memory.max"), "max\n").unwrap();
    fs::write(pod.join("memory.max"), "268435456\n").unwrap();
    fs::write(container.join("memory.max"), "536870912\n").unwrap();
    fs::write(container.join("memory.high"), "max\n").unwrap();
    let files = CgroupFiles::open(CgroupVersion::V2, &container);
    // The pod's 256 MiB holds above the container's 512 MiB; the walk stops at the first
    // directory without limit files (here the temporary directory).
    let lowest = files.enclosing_limit().unwrap();
    assert_eq!(
        (lowest.bytes, lowest.cgroup.as_path()),
        (268_435_456, pod.as_path())
    );
    fs::write(pod.join("memory.max"), "max\n").unwrap();
    assert_eq!(files.enclosing_limit().unwrap().bytes, 536_870_912);
    // memory.high counts for the guard, not for what the OOM killer enforces.
    fs::write(container.join("memory.high"), "134217728\n").unwrap();
    assert_eq!(files.enclosing_limit().unwrap().bytes, 134_217_728);
    assert_eq!(files.enclosing_hard_limit().unwrap().bytes, 536_870_912);
}

#[test]
fn cpu_throttling_reads_both_versions_units() {
    // cpu.stat as Linux 6.1 writes it (v2 in µs; v1's cpu controller in ns).
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("cpu.stat"),
        "usage_usec 835000\nuser_usec 830000\nsystem_usec 5000\nnr_periods 12\nnr_throttled 9\nthrottled_usec 1204000\nnr_bursts 0\nburst_usec 0\n",
    )
    .unwrap();
    let v2 = CgroupFiles::open(CgroupVersion::V2, dir.path())
        .cpu_throttling()
        .unwrap();
    assert_eq!(
        (v2.periods, v2.throttled_periods, v2.throttled_us),
        (12, 9, 1_204_000)
    );
    fs::write(
        dir.path().join("cpu.stat"),
        "nr_periods 10\nnr_throttled 1\nthrottled_time 26000000\n",
    )
    .unwrap();
    let v1 = CgroupFiles::open(CgroupVersion::V1, dir.path())
        .cpu_throttling()
        .unwrap();
    assert_eq!(
        (v1.periods, v1.throttled_periods, v1.throttled_us),
        (10, 1, 26_000)
    );
    // Without a quota's counters (v2 cpu.stat without the cpu controller): none.
    fs::write(
        dir.path().join("cpu.stat"),
        "usage_usec 5\nuser_usec 5\nsystem_usec 0\n",
    )
    .unwrap();
    assert_eq!(
        CgroupFiles::open(CgroupVersion::V2, dir.path()).cpu_throttling(),
        None
    );
}

#[test]
fn swap_of_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, value: &str| std::fs::write(dir.path().join(name), value).unwrap();
    // v2 (cgroup-v2.rst): memory.swap.current, and memory.swap.peak from Linux 6.5.
    write("memory.swap.current", "37748736\n");
    let v2 = CgroupFiles::open(CgroupVersion::V2, dir.path());
    assert_eq!(v2.swap_usage(), Some(37_748_736));
    assert_eq!(v2.swap_peak(), None, "no memory.swap.peak before Linux 6.5");
    write("memory.swap.peak", "41943040\n");
    assert_eq!(v2.swap_peak(), Some(41_943_040));
    // v1 (cgroup-v1/memory.rst): memsw counts memory + swap.
    let v1 = CgroupFiles::open(CgroupVersion::V1, dir.path());
    assert_eq!(v1.swap_usage(), None, "no swap accounting without memsw");
    write("memory.usage_in_bytes", "67108864\n");
    write("memory.memsw.usage_in_bytes", "104857600\n");
    write("memory.max_usage_in_bytes", "67108864\n");
    write("memory.memsw.max_usage_in_bytes", "106954752\n");
    assert_eq!(v1.swap_usage(), Some(104_857_600 - 67_108_864));
    assert_eq!(v1.swap_peak(), Some(106_954_752 - 67_108_864));
}
