//! The explanation of one log: what every renderer reads. JSON: `memfit.explain/1`.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "oom")]
    Oom,
    #[serde(rename = "not-oom")]
    NotOom,
    #[serde(rename = "uncertain")]
    Uncertain,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Oom => "oom",
            Verdict::NotOom => "not-oom",
            Verdict::Uncertain => "uncertain",
        }
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
    pub kind: String,
    pub sub_reason: Option<String>,
    /// 0 to 1.
    pub confidence: f64,
    /// What the decisive signature means.
    pub meaning: String,
    pub process: Option<String>,
    pub pid: Option<i64>,
    pub limit_bytes: Option<u64>,
    pub heap_at_death_mb: Option<f64>,
    /// `--max-old-space-size=N` when the log shows one, else V8's default.
    pub heap_ceiling: Option<String>,
    pub anon_rss_bytes: Option<u64>,
    pub exit_code: Option<i32>,
    pub step: Option<String>,
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
