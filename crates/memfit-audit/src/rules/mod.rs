//! The rules, one file each. Every rule has a stable kebab-case id, a severity (error = likely
//! OOM, warning = real waste, info = a hint) and documentation in the ruff style: what it
//! does, why it matters (with the measurement or source behind it), an example and what to
//! use instead. `docs/rules.md` is generated from these docs (see tests/rule_docs.rs).

use memfit_core::node::NodeVersion;
use memfit_core::plan::{self, Budget, PlanInput, Runtime as PlanRuntime};
use memfit_core::ByteSize;

use crate::context::Context;
use crate::dockerfile::Span;
use crate::finding::{Edit, Finding, Severity};
use crate::runtime::NodeOptions;

mod build_tools_in_runtime_image;
mod cargo_build_over_limit;
mod cargo_fat_lto_small_builder;
mod cargo_unbounded_jobs_small_builder;
pub(crate) mod client_per_request;
mod copy_context_without_dockerignore;
mod copy_whole_stage_filesystem;
mod dev_dependencies_in_image;
mod dev_server_in_production;
mod file_problems;
mod full_base_image;
mod gomemlimit_unset;
mod heap_flag_conflict;
mod heap_over_limit;
mod heap_unset_small_limit;
mod ignore_scripts_breaks_native_modules;
mod interval_never_cleared;
mod jvm_heap_over_limit;
mod jvm_no_container_support;
mod listener_per_call;
mod missing_lockfile;
mod next_without_standalone;
mod node_flag_folklore;
mod npm_install_with_lockfile;
mod omit_optional_breaks_native_binaries;
mod package_cache_left_in_image;
mod pip_cache_in_image;
mod prisma_extra_engines;
mod python_workers_over_limit;
mod single_stage_build;
mod timer_keeps_process_alive;
mod tooling_in_dependencies;
mod tsc_without_skiplibcheck;
mod tsconfig_broad_include;
pub(crate) mod unbounded_buffer;
mod unbounded_module_cache;
mod workers_times_heap_over_limit;

/// A rule: its identity, its documentation and its check.
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    /// One line.
    pub summary: &'static str,
    /// Markdown: `## What it does`, `## Why is this bad?`, `## Example`, `## Use instead`,
    /// `## References`.
    pub doc: &'static str,
    pub check: fn(&Context, &mut Vec<Finding>),
}

/// Every rule, in documentation order.
pub const RULES: &[Rule] = &[
    heap_over_limit::RULE,
    heap_unset_small_limit::RULE,
    heap_flag_conflict::RULE,
    workers_times_heap_over_limit::RULE,
    node_flag_folklore::RULE,
    jvm_heap_over_limit::RULE,
    jvm_no_container_support::RULE,
    python_workers_over_limit::RULE,
    gomemlimit_unset::RULE,
    dev_server_in_production::RULE,
    single_stage_build::RULE,
    npm_install_with_lockfile::RULE,
    dev_dependencies_in_image::RULE,
    build_tools_in_runtime_image::RULE,
    full_base_image::RULE,
    package_cache_left_in_image::RULE,
    pip_cache_in_image::RULE,
    copy_context_without_dockerignore::RULE,
    copy_whole_stage_filesystem::RULE,
    omit_optional_breaks_native_binaries::RULE,
    ignore_scripts_breaks_native_modules::RULE,
    missing_lockfile::RULE,
    tooling_in_dependencies::RULE,
    tsc_without_skiplibcheck::RULE,
    tsconfig_broad_include::RULE,
    prisma_extra_engines::RULE,
    cargo_fat_lto_small_builder::RULE,
    cargo_unbounded_jobs_small_builder::RULE,
    cargo_build_over_limit::RULE,
    next_without_standalone::RULE,
    interval_never_cleared::RULE,
    listener_per_call::RULE,
    unbounded_module_cache::RULE,
    unbounded_buffer::RULE,
    client_per_request::RULE,
    timer_keeps_process_alive::RULE,
    file_problems::MALFORMED,
    file_problems::UNREADABLE,
    file_problems::DOCKERFILE_SYNTAX,
];

pub fn find(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// The Node line assumed when the project does not say: the Active LTS line at the time of
/// writing.
pub const ASSUMED_NODE: &str = "24";

/// The Node version of the project, or the assumed one.
pub fn node_version(ctx: &Context) -> NodeVersion {
    ctx.node_version()
        .unwrap_or_else(|| ASSUMED_NODE.parse().expect("a valid version"))
}

/// `memfit plan` for this project's limit, Node version and workers.
pub fn node_plan(ctx: &Context, limit: u64) -> Budget {
    plan::plan(&PlanInput {
        limit: ByteSize(limit),
        runtime: PlanRuntime::Node,
        node_version: node_version(ctx),
        cgroup: ctx.cgroup(),
        workers: ctx.runtime.workers.as_ref().map(|w| w.count),
        cpus: None,
        worker_size: None,
    })
}

/// The old-space cap `memfit plan` recommends, in MiB.
pub fn recommended_old_space_mib(ctx: &Context, limit: u64) -> Option<u64> {
    let budget = node_plan(ctx, limit);
    budget
        .lines
        .iter()
        .find(|l| l.item.starts_with("old space"))
        .map(|l| l.bytes / (1024 * 1024))
}

/// An edit that sets the number after `--max-old-space-size=` inside a Node options setting.
pub fn old_space_edit(ctx: &Context, options: &NodeOptions, mib: u64) -> Option<Edit> {
    let file = ctx.file(options.file);
    let region = file.source.text.get(options.span.start..options.span.end)?;
    for flag in ["--max-old-space-size=", "--max_old_space_size="] {
        if let Some(pos) = region.find(flag) {
            let start = options.span.start + pos + flag.len();
            let digits = file.source.text[start..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(file.source.text.len() - start);
            return Some(Edit::replace(
                file.source.path.clone(),
                Span::new(start, start + digits),
                mib.to_string(),
            ));
        }
    }
    None
}

pub fn mib(bytes: u64) -> String {
    ByteSize(bytes).to_string()
}
