//! The run's cgroup as a transient systemd slice (the systemd cgroup driver's containers need a
//! slice as their parent). Where systemd is PID 1 (the guest of `tests/vm/run.sh
//! --cgroup-driver systemd`), a real slice is started, limited, stopped and swept; elsewhere
//! (this project's development host has no systemd as PID 1) starting one must fail with a
//! reason, and nothing is left behind.

use std::path::{Path, PathBuf};

use memfit_sys::cgroup::{self, systemd, CgroupOwner, Hierarchy, OwnedCgroup};
use memfit_sys::CgroupVersion;

fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn memory_hierarchy() -> Option<Hierarchy> {
    Hierarchy::detect().ok().map(|h| Hierarchy {
        parent: h.mount.clone(),
        ..h
    })
}

fn slice_for(owner: CgroupOwner, sequence: u32) -> String {
    systemd::slice_name(&owner.cgroup_name(sequence).unwrap())
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn a_slice_holds_the_limits_and_is_gone_once_dropped() {
    let Some(hierarchy) = memory_hierarchy() else {
        eprintln!("no memory cgroup hierarchy here: nothing to check");
        return;
    };
    let name = slice_for(CgroupOwner::current(), 900);
    let limit = 96 * 1024 * 1024;
    let created = OwnedCgroup::create_slice(&hierarchy, &name, Some(limit), 0, Some(0.5));
    let path = hierarchy.mount.join(&name);
    if !systemd_runs() {
        let error = created.expect_err("a slice without systemd as PID 1");
        assert!(error.to_string().contains("systemd"), "{error}");
        assert!(!path.exists(), "{}", path.display());
        return;
    }
    let cgroup = created.unwrap();
    assert_eq!(cgroup.systemd_unit(), Some(name.as_str()));
    assert_eq!(cgroup.path(), path);
    let max_file = match hierarchy.version {
        CgroupVersion::V2 => "memory.max",
        CgroupVersion::V1 => "memory.limit_in_bytes",
    };
    assert_eq!(read(path.join(max_file)), limit.to_string());
    if hierarchy.version == CgroupVersion::V2 {
        // CPUQuota=50%: 50 ms of every 100 ms period, as `docker run --cpus 0.5`.
        assert_eq!(read(path.join("cpu.max")), "50000 100000");
    }
    // On v2 the docker CLI's leaf goes inside it (and is removed with it).
    if hierarchy.version == CgroupVersion::V2 {
        let leaf = cgroup.create_command_leaf().unwrap();
        assert!(leaf.path().starts_with(&path));
    }
    drop(cgroup);
    assert!(!path.exists(), "{} is left", path.display());
}

#[test]
fn a_slice_left_by_a_memfit_that_died_is_swept() {
    let Some(hierarchy) = memory_hierarchy() else {
        return;
    };
    if !systemd_runs() {
        eprintln!("systemd is not PID 1 here: no slice can be left behind");
        assert!(cgroup::sweep_stale_slices(&hierarchy.mount, hierarchy.version).is_empty());
        return;
    }
    // An owner that is not running: a pid past pid_max.
    let dead = CgroupOwner {
        pid: 4_194_305,
        start_ticks: 1,
        pid_namespace: CgroupOwner::current().pid_namespace,
    };
    let name = slice_for(dead, 1);
    let path =
        systemd::start_slice(&name, systemd::SliceLimits::default(), &hierarchy.mount).unwrap();
    // And one of a memfit that runs (this one): left alone.
    let alive = slice_for(CgroupOwner::current(), 901);
    let kept = OwnedCgroup::create_slice(&hierarchy, &alive, None, 0, None).unwrap();
    let swept = cgroup::sweep_stale_slices(&hierarchy.mount, hierarchy.version);
    assert_eq!(
        swept.iter().map(|s| s.path.clone()).collect::<Vec<_>>(),
        vec![path.clone()]
    );
    assert!(!path.exists());
    assert!(kept.path().exists());
}
