//! `memfit completions SHELL` and `memfit man [--dir DIR]`: shell completions and man pages
//! generated from the same clap definitions as `--help` (clap_complete, clap_mangen), so they
//! cannot drift from the command line. Hidden commands: scripts/dist.sh puts their output in
//! the release tarball.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory as _;

use memfit_cli::args::{Cli, CompletionsArgs, ManArgs};

use crate::output;

pub fn completions(args: CompletionsArgs) -> Result<u8> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "memfit", &mut script);
    output::print_raw(&script)?;
    Ok(0)
}

pub fn man(args: ManArgs) -> Result<u8> {
    let pages = pages()?;
    match args.dir {
        None => output::print_raw(&pages[0].1)?,
        Some(dir) => write_pages(&dir, &pages)?,
    }
    Ok(0)
}

/// memfit.1 first, then memfit-COMMAND.1 for each command `memfit --help` lists.
fn pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let mut commands = vec![command.clone()];
    commands.extend(
        command
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .cloned(),
    );
    commands
        .into_iter()
        .map(|command| {
            let page = clap_mangen::Man::new(command);
            let mut roff = Vec::new();
            page.render(&mut roff).context("rendering a man page")?;
            Ok((page.get_filename(), roff))
        })
        .collect()
}

fn write_pages(dir: &Path, pages: &[(String, Vec<u8>)]) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    for (name, roff) in pages {
        output::write_atomically(&dir.join(name), roff)?;
    }
    Ok(())
}
