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
    let access = access(args)?;
    let options = FleetOptions {
        url,
        selector: args.selector.clone(),
        namespace: args.namespace.clone(),
        range,
        runtimes,
        node_version,
        time: None,
        access,
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

/// A credential or CA file is small; more than this is not one.
const MAX_ACCESS_FILE: u64 = 1 << 20;

fn read_small(flag: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let file =
        std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_ACCESS_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_ACCESS_FILE {
        bail!(
            "{flag} {}: larger than 1 MiB; give the PEM or token file itself",
            path.display()
        );
    }
    Ok(bytes)
}

/// TLS roots and credentials: --prometheus-ca, --prometheus-token-file, then the
/// environment (MEMFIT_PROMETHEUS_TOKEN; MEMFIT_PROMETHEUS_USER + MEMFIT_PROMETHEUS_PASSWORD).
fn access(args: &PlanArgs) -> Result<memfit_fleet::Access> {
    use memfit_fleet::Auth;
    let ca_pem = match &args.prometheus_ca {
        Some(path) => Some(read_small("--prometheus-ca", path)?),
        None => None,
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let token = match &args.prometheus_token_file {
        Some(path) => {
            let bytes = read_small("--prometheus-token-file", path)?;
            let token = String::from_utf8(bytes).map_err(|_| {
                anyhow::anyhow!(
                    "--prometheus-token-file {}: not text; give a file holding the token",
                    path.display()
                )
            })?;
            Some(token.trim().to_string())
        }
        None => env("MEMFIT_PROMETHEUS_TOKEN"),
    };
    let auth = match (token, env("MEMFIT_PROMETHEUS_USER"), env("MEMFIT_PROMETHEUS_PASSWORD")) {
        (Some(token), _, _) => Some(Auth::Bearer(token)),
        (None, Some(user), Some(password)) => Some(Auth::Basic { user, password }),
        (None, Some(_), None) | (None, None, Some(_)) => bail!(
            "basic auth needs both MEMFIT_PROMETHEUS_USER and MEMFIT_PROMETHEUS_PASSWORD; set the missing one"
        ),
        (None, None, None) => None,
    };
    // A header value cannot hold control characters; refuse rather than send half of one.
    let bad = |s: &str| s.chars().any(|c| c.is_control());
    match &auth {
        Some(Auth::Bearer(t)) if t.is_empty() || bad(t) => {
            bail!("the Prometheus token is empty or holds control characters; give the token alone")
        }
        Some(Auth::Basic { user, password })
            if bad(user) || bad(password) || user.contains(':') =>
        {
            bail!("MEMFIT_PROMETHEUS_USER/PASSWORD hold control characters (or the user a ':'); give them as plain text")
        }
        _ => {}
    }
    Ok(memfit_fleet::Access { ca_pem, auth })
}
