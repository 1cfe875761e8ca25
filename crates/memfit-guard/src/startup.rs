//! The startup check: when the child is Node, read its heap flags (NODE_OPTIONS and the
//! command line) and version, and say when the heap cap cannot fit the limit — with the same
//! measured model `memfit plan` uses (memfit-core).

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use memfit_core::node::{CgroupVersion, NodeVersion, NATIVE_OVERHEAD};
use memfit_core::plan::{self, PlanInput, Runtime};
use memfit_core::ByteSize;

fn flag_value(flags: &[String], names: &[&str]) -> Option<String> {
    flags.iter().rev().find_map(|f| {
        names.iter().find_map(|n| {
            f.strip_prefix(n)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_string)
        })
    })
}

/// Warnings about the child's heap settings; empty when it is not Node or all is well.
pub fn check(
    command: &[OsString],
    node_options: Option<&str>,
    limit: u64,
    cgroup: Option<CgroupVersion>,
) -> Vec<String> {
    let program = command
        .first()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    if !matches!(
        program.as_str(),
        "node" | "nodejs" | "npm" | "npx" | "yarn" | "pnpm"
    ) {
        return Vec::new();
    }
    let mut flags: Vec<String> = node_options
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if program == "node" || program == "nodejs" {
        flags.extend(
            command[1..]
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .take_while(|a| a.starts_with('-')),
        );
    }
    let node = if program.starts_with("node") {
        command[0].clone()
    } else {
        OsString::from("node")
    };
    let version: Option<NodeVersion> = Command::new(&node)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok());
    let Some(version) = version else {
        return Vec::new();
    };
    let cgroup = cgroup.unwrap_or(CgroupVersion::V2);
    let limit_size = ByteSize(limit);
    let old = flag_value(&flags, &["--max-old-space-size", "--max_old_space_size"])
        .and_then(|v| v.parse::<u64>().ok())
        .map(|m| m * 1024 * 1024);
    let percent = flag_value(&flags, &["--max-old-space-size-percentage"])
        .and_then(|v| v.parse::<f64>().ok());
    let old = match (percent, old) {
        (Some(p), _) => Some(((limit / (1024 * 1024)) as f64 * p / 100.0) as u64 * 1024 * 1024),
        (None, o) => o,
    };
    let budget = plan::plan(&PlanInput {
        limit: limit_size,
        runtime: Runtime::Node,
        node_version: version,
        cgroup,
        workers: None,
        cpus: None,
        worker_size: None,
    });
    let recommended = budget
        .settings
        .iter()
        .find(|s| s.name == "NODE_OPTIONS")
        .map(|s| format!("set NODE_OPTIONS=\"{}\" (memfit plan)", s.value))
        .unwrap_or_else(|| format!("memfit plan: {}", budget.problems.join(" ")));
    let mut warnings = Vec::new();
    match old {
        None => {
            if !version.sees_limit(cgroup) {
                warnings.push(format!("Node {version} does not read cgroup v2 limits and sets no heap cap: it sizes the heap from the host's RAM, far above the {limit_size} limit; {recommended}"));
            } else {
                let heap = version.heap_size_limit(limit_size, None, None).bytes();
                if heap + NATIVE_OVERHEAD.bytes() > limit {
                    warnings.push(format!("no heap cap: Node {version} allows a {} heap in this {limit_size} container, and needs ~{} beside it; the kernel will kill it before V8 collects; {recommended}", ByteSize(heap), NATIVE_OVERHEAD));
                }
            }
        }
        Some(old) => {
            if old * 100 > limit * 80 {
                warnings.push(format!("heap cap {} is too close to the {limit_size} limit: with the young generation and ~{} native memory beside it, the kernel kills before V8 collects; {recommended}", ByteSize(old), NATIVE_OVERHEAD));
            }
        }
    }
    warnings
}
