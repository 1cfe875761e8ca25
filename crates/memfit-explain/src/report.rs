//! The explanation of one log: what every renderer reads. JSON: `memfit.explain/1`.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Oom,
    NotOom,
    Uncertain,
}

/// Which kind of memory failure (or `not-oom`): who set the ceiling that was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// V8's own heap ceiling (`--max-old-space-size`), not the container's.
    NodeHeap,
    /// A container's or cgroup's memory limit.
    ContainerMemcg,
    /// The whole machine (or VM) ran out of memory.
    KernelOomKiller,
    /// A build step died of SIGKILL, which on a builder is almost always its memory limit.
    BuildStepKilled,
    JvmHeap,
    JvmMetaspace,
    /// Memory the JVM needs outside its heap (thread stacks, mmap'd native memory) was
    /// refused: the heap left too little of the limit, or a thread limit was reached.
    JvmNative,
    GoRuntime,
    PythonMemoryerror,
    /// An allocation or a fork was refused.
    Enomem,
    /// A platform's memory quota (Heroku, Fly.io, Render, Clever Cloud).
    PaasQuota,
    /// A worker of a process pool (gunicorn, celery) died of SIGKILL: the workers together
    /// outgrew the memory limit.
    WorkerKilled,
    NotOom,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NodeHeap => "node-heap",
            Kind::ContainerMemcg => "container-memcg",
            Kind::KernelOomKiller => "kernel-oom-killer",
            Kind::BuildStepKilled => "build-step-killed",
            Kind::JvmHeap => "jvm-heap",
            Kind::JvmMetaspace => "jvm-metaspace",
            Kind::JvmNative => "jvm-native",
            Kind::GoRuntime => "go-runtime",
            Kind::PythonMemoryerror => "python-memoryerror",
            Kind::Enomem => "enomem",
            Kind::PaasQuota => "paas-quota",
            Kind::WorkerKilled => "worker-killed",
            Kind::NotOom => "not-oom",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a process died when memory was not the cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubReason {
    DiskFull,
    /// inotify's watch limit, reported as ENOSPC.
    FileWatchers,
    Sigterm,
    LivenessProbe,
    TimeoutKill,
    Segfault,
    StackOverflow,
    CompileError,
    MissingModule,
    MissingCommand,
    Network,
    MissingFile,
    /// A SIGKILL that the container's cgroup says was not an OOM kill.
    KilledNotOom,
    /// Kubernetes evicted the pod for a node resource that is not memory (ephemeral storage).
    Evicted,
    /// Nothing in the log points to memory, and nothing else either.
    NoMemoryEvidence,
}

impl SubReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SubReason::DiskFull => "disk-full",
            SubReason::FileWatchers => "file-watchers",
            SubReason::Sigterm => "sigterm",
            SubReason::LivenessProbe => "liveness-probe",
            SubReason::TimeoutKill => "timeout-kill",
            SubReason::Segfault => "segfault",
            SubReason::StackOverflow => "stack-overflow",
            SubReason::CompileError => "compile-error",
            SubReason::MissingModule => "missing-module",
            SubReason::MissingCommand => "missing-command",
            SubReason::Network => "network",
            SubReason::MissingFile => "missing-file",
            SubReason::KilledNotOom => "killed-not-oom",
            SubReason::Evicted => "evicted",
            SubReason::NoMemoryEvidence => "no-memory-evidence",
        }
    }
}

/// The ceiling V8's heap had, as far as the log tells. Printed and serialized as
/// `--max-old-space-size=N` or `V8 default`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeapCeiling {
    /// The log shows `--max-old-space-size`.
    MaxOldSpaceSize { megabytes: f64 },
    /// V8 sized the heap from the machine's memory.
    V8Default,
}

impl fmt::Display for HeapCeiling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapCeiling::MaxOldSpaceSize { megabytes } => {
                write!(f, "--max-old-space-size={megabytes}")
            }
            HeapCeiling::V8Default => f.write_str("V8 default"),
        }
    }
}

impl Serialize for HeapCeiling {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub line: u64,
    pub text: String,
    pub signature: String,
    /// Where the signature's meaning comes from.
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Remedy {
    pub title: String,
    pub commands: Vec<String>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub schema: &'static str,
    pub verdict: Verdict,
    pub kind: Kind,
    pub sub_reason: Option<SubReason>,
    /// 0 to 1.
    pub confidence: f64,
    /// What the decisive signature means.
    pub meaning: String,
    pub process: Option<String>,
    pub pid: Option<i64>,
    pub limit_bytes: Option<u64>,
    pub heap_at_death_mb: Option<f64>,
    /// Known for a V8 heap failure, or when the log shows V8's heap.
    pub heap_ceiling: Option<HeapCeiling>,
    pub anon_rss_bytes: Option<u64>,
    pub exit_code: Option<i32>,
    pub step: Option<String>,
    /// The command the step was running when it died (`next build` of
    /// `RUN npm ci && npm run build`), as npm/yarn/pnpm announced it in the step's output.
    pub running: Option<String>,
    pub node_version: Option<String>,
    /// Another runtime the log names: `python 3.7`, `java 17`, `go 1.21.3`.
    pub runtime_version: Option<String>,
    pub evidence: Vec<Evidence>,
    /// What would settle an uncertain verdict.
    pub decide_with: Vec<String>,
    pub remedies: Vec<Remedy>,
    pub signatures_matched: Vec<String>,
    pub lines_read: u64,
    pub bytes_read: u64,
}
