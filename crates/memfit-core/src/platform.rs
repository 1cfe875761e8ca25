//! PaaS and CI plans that `--platform NAME` emulates: a memory limit and a CPU count.
//!
//! Kept as data, each entry with the page its numbers come from, so that a reader can check
//! them and a change of plan is a one-line edit. Memory is what the plan enforces as the
//! container limit; CPUs is what the plan advertises (fractional for shared plans), applied as
//! a CPU quota as the platforms apply it; how the platform starts the command (as PID 1 of a
//! container, or behind its own init) where the provider documents it.

use crate::size::{ByteSize, MIB};
use crate::CgroupVersion;

/// One plan of one provider.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Platform {
    /// `provider:plan`, lower case, as typed after `--platform`.
    pub name: &'static str,
    pub memory: ByteSize,
    /// vCPUs the plan advertises; `None` where the provider publishes no number.
    pub cpus: Option<f32>,
    /// Where the numbers come from.
    pub source: &'static str,
    /// What the numbers do not say (shared CPUs, swap, older page…).
    pub note: &'static str,
    /// How the platform starts the command, where documented.
    pub process: ProcessModel,
    /// The cgroup version its hosts run, where documented (it decides whether Node < 20.3
    /// sees the limit at all).
    pub cgroup: Option<CgroupVersion>,
}

/// How a platform starts the command, which decides its exit status on a V8 heap abort (139
/// as PID 1, 134 behind an init) and whether SIGTERM without a handler stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ProcessModel {
    /// The command is PID 1 of its container (Kubernetes, `docker run`): `memfit run --pid1`.
    Pid1 { source: &'static str },
    /// The platform's own init is PID 1 and runs the command: `memfit run --init`.
    Init { source: &'static str },
    /// Not documented by the provider.
    Unknown,
}

const fn mib(n: u64) -> ByteSize {
    ByteSize(n * MIB)
}

const RENDER: &str = "https://render.com/docs/workflows-limits (instance types; same specs as https://render.com/pricing)";
const RENDER_FREE: &str = "https://render.com/pricing";
// Heroku support article that reads the dyno's own cgroup v1 memory.limit_in_bytes: dynos run
// on cgroup v1.
const HEROKU: &str =
    "https://help.heroku.com/Q386NUGG/how-can-i-determine-the-memory-limit-of-a-dyno";
const FLY: &str = "https://fly.io/docs/machines/guides-examples/machine-sizing (minimum 256 MB per shared CPU, 2048 MB per performance CPU) and https://fly.io/docs/about/pricing/";
const RAILWAY: &str = "https://docs.railway.app/reference/plans";
const NORTHFLANK: &str =
    "https://northflank.com/docs/v1/application/billing/resource-plans-and-quotas";
const GITHUB: &str = "https://docs.github.com/en/actions/reference/runners/github-hosted-runners";

const FLY_INIT: ProcessModel = ProcessModel::Init {
    source: "https://fly.io/docs/app-guides/multiple-processes/ (\"when your entrypoint program exits, our init kills the Machine\")",
};
const KUBERNETES: ProcessModel = ProcessModel::Pid1 {
    source: "Northflank runs services as Kubernetes containers; https://kubernetes.io/docs/tasks/configure-pod-container/share-process-namespace/ (without a shared namespace the container process has PID 1)",
};

/// Every plan memfit knows, grouped by provider.
pub const PLATFORMS: &[Platform] = &[
    Platform { name: "render:free", memory: mib(512), cpus: Some(0.1), source: RENDER_FREE, note: "spins down when idle", process: ProcessModel::Unknown, cgroup: None },
    Platform { name: "render:starter", memory: mib(512), cpus: Some(0.5), source: RENDER, note: "", process: ProcessModel::Unknown, cgroup: None },
    Platform { name: "render:standard", memory: mib(2048), cpus: Some(1.0), source: RENDER, note: "", process: ProcessModel::Unknown, cgroup: None },
    Platform { name: "render:pro", memory: mib(4096), cpus: Some(2.0), source: RENDER, note: "", process: ProcessModel::Unknown, cgroup: None },
    Platform { name: "render:pro-plus", memory: mib(8192), cpus: Some(4.0), source: RENDER, note: "", process: ProcessModel::Unknown, cgroup: None },
    Platform { name: "heroku:eco", memory: mib(512), cpus: None, source: HEROKU, note: "same limit as standard-1x; Heroku swaps past the quota (R14) and restarts at 5x (R15)", process: ProcessModel::Unknown, cgroup: Some(CgroupVersion::V1) },
    Platform { name: "heroku:basic", memory: mib(512), cpus: None, source: HEROKU, note: "same limit as standard-1x; Heroku swaps past the quota (R14)", process: ProcessModel::Unknown, cgroup: Some(CgroupVersion::V1) },
    Platform { name: "heroku:standard-1x", memory: ByteSize(536_870_912), cpus: None, source: HEROKU, note: "Heroku swaps past the quota (R14) instead of killing; try --swap", process: ProcessModel::Unknown, cgroup: Some(CgroupVersion::V1) },
    Platform { name: "heroku:standard-2x", memory: ByteSize(1_073_741_824), cpus: None, source: HEROKU, note: "Heroku swaps past the quota (R14) instead of killing; try --swap", process: ProcessModel::Unknown, cgroup: Some(CgroupVersion::V1) },
    Platform { name: "heroku:performance-m", memory: ByteSize(2_684_354_560), cpus: None, source: HEROKU, note: "", process: ProcessModel::Unknown, cgroup: Some(CgroupVersion::V1) },
    Platform { name: "heroku:performance-l", memory: ByteSize(15_032_385_536), cpus: None, source: HEROKU, note: "", process: ProcessModel::Unknown, cgroup: Some(CgroupVersion::V1) },
    Platform { name: "fly:shared-cpu-1x", memory: mib(256), cpus: Some(1.0), source: FLY, note: "the default Machine size; a Firecracker VM, so the guest kernel's OOM killer acts", process: FLY_INIT, cgroup: None },
    Platform { name: "fly:shared-cpu-1x-512", memory: mib(512), cpus: Some(1.0), source: FLY, note: "shared CPU", process: FLY_INIT, cgroup: None },
    Platform { name: "fly:shared-cpu-1x-1gb", memory: mib(1024), cpus: Some(1.0), source: FLY, note: "shared CPU", process: FLY_INIT, cgroup: None },
    Platform { name: "fly:shared-cpu-2x", memory: mib(512), cpus: Some(2.0), source: FLY, note: "shared CPUs", process: FLY_INIT, cgroup: None },
    Platform { name: "fly:performance-1x", memory: mib(2048), cpus: Some(1.0), source: FLY, note: "dedicated CPU", process: FLY_INIT, cgroup: None },
    Platform { name: "railway:trial", memory: mib(512), cpus: Some(1.0), source: RAILWAY, note: "\"max to 512 MB of RAM, shared vCPU capacity\"", process: ProcessModel::Unknown, cgroup: None },
    Platform { name: "railway:hobby", memory: mib(8192), cpus: Some(8.0), source: RAILWAY, note: "the plan's per-service ceiling (\"up to 8 GB of RAM, 8 vCPU\"); the page names it the Developer plan", process: ProcessModel::Unknown, cgroup: None },
    Platform { name: "northflank:nf-compute-10", memory: mib(256), cpus: Some(0.1), source: NORTHFLANK, note: "", process: KUBERNETES, cgroup: None },
    Platform { name: "northflank:nf-compute-20", memory: mib(512), cpus: Some(0.2), source: NORTHFLANK, note: "", process: KUBERNETES, cgroup: None },
    Platform { name: "northflank:nf-compute-50", memory: mib(1024), cpus: Some(0.5), source: NORTHFLANK, note: "", process: KUBERNETES, cgroup: None },
    Platform { name: "northflank:nf-compute-100-1", memory: mib(1024), cpus: Some(1.0), source: NORTHFLANK, note: "", process: KUBERNETES, cgroup: None },
    Platform { name: "northflank:nf-compute-100-2", memory: mib(2048), cpus: Some(1.0), source: NORTHFLANK, note: "", process: KUBERNETES, cgroup: None },
    Platform { name: "northflank:nf-compute-200", memory: mib(4096), cpus: Some(2.0), source: NORTHFLANK, note: "", process: KUBERNETES, cgroup: None },
    Platform { name: "github:ubuntu-slim", memory: mib(5 * 1024), cpus: Some(1.0), source: GITHUB, note: "a container on a shared VM", process: ProcessModel::Unknown, cgroup: None },
    Platform { name: "github:ubuntu-latest", memory: mib(16 * 1024), cpus: Some(4.0), source: GITHUB, note: "public repositories", process: ProcessModel::Unknown, cgroup: None },
    Platform { name: "github:ubuntu-latest-private", memory: mib(7 * 1024), cpus: Some(2.0), source: GITHUB, note: "private repositories; 7 GB is the long-standing figure, check the page for the current one", process: ProcessModel::Unknown, cgroup: None },
];

/// Looks a plan up by `provider:plan` (case-insensitive).
pub fn find(name: &str) -> Option<&'static Platform> {
    let wanted = name.trim().to_ascii_lowercase();
    PLATFORMS.iter().find(|p| p.name == wanted)
}

/// The names closest to a mistyped one: same provider first, else everything.
pub fn suggestions(name: &str) -> Vec<&'static str> {
    let wanted = name.trim().to_ascii_lowercase();
    let provider = wanted.split(':').next().unwrap_or_default();
    let same_provider: Vec<_> = PLATFORMS
        .iter()
        .filter(|p| p.name.split(':').next() == Some(provider))
        .map(|p| p.name)
        .collect();
    if same_provider.is_empty() {
        PLATFORMS.iter().map(|p| p.name).collect()
    } else {
        same_provider
    }
}

/// The smallest plan whose memory is at least `needed`, per provider, in table order.
pub fn smallest_fitting(needed: ByteSize) -> Vec<&'static Platform> {
    let mut chosen: Vec<&'static Platform> = Vec::new();
    for plan in PLATFORMS.iter().filter(|p| p.memory >= needed) {
        let provider = plan.name.split(':').next();
        match chosen
            .iter_mut()
            .find(|c| c.name.split(':').next() == provider)
        {
            Some(existing) if plan.memory < existing.memory => *existing = plan,
            Some(_) => {}
            None => chosen.push(plan),
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_has_a_source_and_a_unique_name() {
        let mut names: Vec<_> = PLATFORMS.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PLATFORMS.len());
        for p in PLATFORMS {
            assert!(p.source.contains("https://"), "{}", p.name);
            assert!(p.name.contains(':') && p.name == p.name.to_ascii_lowercase());
            assert!(p.memory.bytes() >= 256 * MIB);
        }
    }

    #[test]
    fn required_providers_are_present() {
        for provider in ["render", "heroku", "fly", "railway", "northflank", "github"] {
            assert!(PLATFORMS.iter().any(|p| p.name.starts_with(provider)));
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_suggests() {
        assert_eq!(find("Render:Starter").unwrap().memory, ByteSize::mib(512));
        assert!(find("render:huge").is_none());
        assert!(suggestions("render:huge").contains(&"render:starter"));
        assert!(suggestions("nope").len() == PLATFORMS.len());
    }

    #[test]
    fn documented_process_models_carry_their_source() {
        assert!(matches!(
            find("fly:shared-cpu-1x").unwrap().process,
            ProcessModel::Init { .. }
        ));
        assert!(matches!(
            find("northflank:nf-compute-20").unwrap().process,
            ProcessModel::Pid1 { .. }
        ));
        for p in PLATFORMS {
            if let ProcessModel::Pid1 { source } | ProcessModel::Init { source } = p.process {
                assert!(source.contains("https://"), "{}", p.name);
            }
        }
    }

    #[test]
    fn smallest_fitting_plan_per_provider() {
        let fits = smallest_fitting(ByteSize::mib(600));
        let render = fits.iter().find(|p| p.name.starts_with("render")).unwrap();
        assert_eq!(render.name, "render:standard");
        let heroku = fits.iter().find(|p| p.name.starts_with("heroku")).unwrap();
        assert_eq!(heroku.name, "heroku:standard-2x");
    }
}
