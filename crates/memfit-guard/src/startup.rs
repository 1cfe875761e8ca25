//! The startup check: when the child is Node, read its heap flags (NODE_OPTIONS and the
//! command line) and version, and say when the heap cap cannot fit the limit — with the same
//! measured model `memfit plan` uses (memfit-core).

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use memfit_core::node::{NodeVersion, NATIVE_OVERHEAD};
use memfit_core::plan::{self, PlanInput, Runtime};
use memfit_core::{ByteSize, CgroupVersion, HeapFlags};

/// A child that runs Node (directly, or through a package manager), and the flags its Node
/// process gets.
#[derive(Debug, Clone)]
pub struct NodeChild {
    /// The Node binary to ask for its version.
    pub node: OsString,
    /// NODE_OPTIONS, then the command line's flags when the child is `node` itself.
    pub flags: HeapFlags,
}

/// The child's Node flags; `None` when the child is not Node.
pub fn node_flags(command: &[OsString], node_options: Option<&str>) -> Option<NodeChild> {
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
        return None;
    }
    let mut flags = HeapFlags::parse_node_options(node_options.unwrap_or(""));
    let is_node = program == "node" || program == "nodejs";
    if is_node {
        let args = command[1..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned());
        flags = flags.then(HeapFlags::from_args(args));
    }
    Some(NodeChild {
        node: if is_node {
            command[0].clone()
        } else {
            OsString::from("node")
        },
        flags,
    })
}

/// Warnings about the child's heap settings; empty when all is well or Node's version cannot
/// be read.
pub fn check(child: &NodeChild, limit: u64, cgroup: Option<CgroupVersion>) -> Vec<String> {
    let version: Option<NodeVersion> = Command::new(&child.node)
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
    let old = child.flags.old_space_bytes(Some(limit));
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
