//! `memfit plan --prometheus`: the arguments checked, the fleet sized (memfit-fleet), the
//! report printed in the form asked for.

use std::io::IsTerminal;

use anyhow::{bail, Result};
use memfit_core::node::NodeVersion;
use memfit_core::plan::Runtime;
use memfit_fleet::{render, FleetOptions};

use crate::args::{PlanArgs, PlanFormat, RuntimeArg};
use crate::markdown;
use crate::output;
use crate::plan_cmd::DEFAULT_NODE;
use crate::report_format::Destination;

pub fn execute(args: &PlanArgs, destination: &Destination) -> Result<u8> {
    let url = args.prometheus.clone().unwrap_or_default();
    let range = args.range.clone().unwrap_or_else(|| "14d".to_string());
    memfit_fleet::check_range(&range).map_err(anyhow::Error::msg)?;
    if let Some(ns) = &args.namespace {
        memfit_fleet::check_namespace(ns).map_err(anyhow::Error::msg)?;
    }
    if let Some(selector) = &args.selector {
        memfit_fleet::check_selector(selector).map_err(anyhow::Error::msg)?;
    }
    if matches!(args.format, PlanFormat::Env | PlanFormat::Dockerfile) {
        bail!("--format env and dockerfile size one container; with --prometheus use table, json, yaml or patch");
    }
    let mut runtimes = Vec::new();
    for spec in &args.runtime {
        let Some(container) = &spec.container else {
            bail!("--runtime with --prometheus names its container: --runtime CONTAINER=node (or WORKLOAD/CONTAINER=, NAMESPACE/WORKLOAD/CONTAINER=)");
        };
        let runtime = match spec.runtime {
            RuntimeArg::Node => Runtime::Node,
            RuntimeArg::Jvm => Runtime::Jvm,
            RuntimeArg::Go => Runtime::Go,
            RuntimeArg::Python => Runtime::Python,
        };
        runtimes.push((container.clone(), runtime));
    }
    let node_version = match &args.node_version {
        Some(text) => text.parse::<NodeVersion>()?,
        None => DEFAULT_NODE,
    };
    let options = FleetOptions {
        url,
        selector: args.selector.clone(),
        namespace: args.namespace.clone(),
        range,
        runtimes,
        node_version,
        time: None,
    };
    // On a terminal, one self-overwriting line per query (Prometheus may take seconds each).
    let terminal = !args.quiet && std::io::stderr().is_terminal();
    let mut progress = |i: usize, count: usize, name: &str| {
        if terminal {
            eprint!("\r\x1b[2Kmemfit: query {i}/{count} ({name})…");
        }
    };
    let result = memfit_fleet::plan_fleet(&options, &mut progress);
    if terminal {
        eprint!("\r\x1b[2K");
    }
    let report = result.map_err(anyhow::Error::msg)?;
    let out = match args.format {
        PlanFormat::Json => render::json(&report),
        PlanFormat::Yaml => render::yaml(&report),
        PlanFormat::Markdown => markdown::fleet(&report),
        PlanFormat::Patch => {
            if !args.quiet {
                output::eprint(&format!("memfit: {}\n", render::summary(&report)));
            }
            render::patch(&report)
        }
        _ => render::table(&report),
    };
    output::write_report(destination, out.as_bytes())?;
    if report.workloads.is_empty() && !args.quiet {
        output::eprint("memfit: no container memory series matched; check --namespace/--selector, and that Prometheus scrapes cAdvisor, kube-state-metrics or memfit guard (docs/fleet.md)\n");
    }
    Ok(0)
}
