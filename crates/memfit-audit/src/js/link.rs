//! Linking modules: a function another module calls from a function that runs repeatedly
//! runs repeatedly too. Imports are resolved relative to the importer or through tsconfig
//! path aliases.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{CallSite, JsFile, ModuleCall, RepeatedFunction};
use crate::project::Project;

/// Follows calls across modules. A file the prefilter skipped is parsed when it names a
/// function another file exports; then a function that a module calls from a repeated
/// function (`import { subscribe } from './bus'` called in a route) is repeated in its own
/// file too, to a fixed point, so every source rule sees it.
pub(super) fn link_modules(project: &Project, sources: &mut [JsFile]) {
    parse_callers(project, sources);
    repeat_across_modules(project, sources);
}

/// Parses the skipped files that may call what another file exports. In rounds, because a
/// file parsed here may export what a further file calls.
fn parse_callers(project: &Project, sources: &mut [JsFile]) {
    use rayon::prelude::*;
    let mut seen: HashSet<String> = HashSet::new();
    for _ in 0..4 {
        let mut names: Vec<String> = Vec::new();
        for source in sources.iter() {
            for export in source.facts.interesting_exports() {
                let path = &project.file(source.file).source.path;
                for name in call_texts(path, export) {
                    if seen.insert(name.clone()) {
                        names.push(name);
                    }
                }
            }
        }
        if names.is_empty() {
            break;
        }
        sources.par_iter_mut().for_each(|source| {
            let file = project.file(source.file);
            if source.facts.skipped && names.iter().any(|n| file.source.text.contains(n.as_str())) {
                source.facts = super::analyze_all(&file.source.path, &file.source.text);
            }
        });
    }
}

/// Text that a file calling `export` of the module at `path` contains.
fn call_texts(path: &Path, export: &str) -> Vec<String> {
    if export != "default" {
        return vec![format!("{export}(")];
    }
    // Called under any local name: look for an import path ending in the module's file stem
    // (`require('./lib/pool')`), or its directory for an index file (`require('./lib')`,
    // `require('..')`).
    let mut wanted = Vec::new();
    if let Some(stem) = path.file_stem() {
        wanted.push(format!("/{}", stem.to_string_lossy()));
        if stem == "index" {
            wanted.push("..".to_string());
            if let Some(dir) = path.parent().and_then(|d| d.file_name()) {
                wanted.push(format!("/{}", dir.to_string_lossy()));
            }
        }
    }
    wanted
}

/// Marks the exports that a repeated function of another module calls as repeated, and
/// spreads that through each file's own calls, to a fixed point.
fn repeat_across_modules(project: &Project, sources: &mut [JsFile]) {
    let files: HashMap<PathBuf, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, source)| (project.file(source.file).source.path.clone(), i))
        .collect();
    let aliases = aliases(project);
    for _ in 0..8 {
        // (index of the target in `sources`, function repeated there).
        let mut updates: Vec<(usize, RepeatedFunction)> = Vec::new();
        for source in sources.iter() {
            let caller = &project.file(source.file).source;
            for call in &source.facts.imported_calls {
                let Some(why) = source.facts.repeated(call.func) else {
                    continue;
                };
                let Some(target) = resolve(&caller.path, &call.specifier, &files, &aliases) else {
                    continue;
                };
                let target_facts = &sources[target].facts;
                let (line, _) = caller.line_col(call.span.start);
                for export in target_facts.exports.iter().filter(|e| e.name == call.name) {
                    let function = export.function;
                    let known = target_facts
                        .external_repeated
                        .iter()
                        .any(|r| r.function == function)
                        || updates
                            .iter()
                            .any(|(t, r)| *t == target && r.function == function);
                    if known {
                        continue;
                    }
                    let site = CallSite::Module(ModuleCall {
                        export: call.name.clone(),
                        caller: caller.display(),
                        line,
                    });
                    let why = why.through(site);
                    updates.push((target, RepeatedFunction { function, why }));
                }
            }
        }
        if updates.is_empty() {
            break;
        }
        for (target, repeated) in updates {
            sources[target].facts.external_repeated.push(repeated);
            sources[target].facts.propagate_calls();
        }
    }
}

/// A `compilerOptions.paths` entry of a tsconfig: `"@/*": ["./src/*"]`, for the sources
/// under the config's directory.
struct Alias {
    scope: PathBuf,
    pattern: String,
    targets: Vec<PathBuf>,
}

/// The path aliases of every tsconfig of the project (`paths`, from `baseUrl` when set, else
/// from the config's directory; both read along the `extends` chain).
fn aliases(project: &Project) -> Vec<Alias> {
    let mut out = Vec::new();
    for (_, file) in project.of_kind(crate::project::Kind::TsConfig) {
        let config = &file.source.path;
        let dir = config.parent().unwrap_or(Path::new("")).to_path_buf();
        let Some(chain) = crate::tsconfig::chain(project, config) else {
            continue;
        };
        let Some(paths) = crate::tsconfig::compiler_option(&chain, "paths") else {
            continue;
        };
        let base =
            match crate::tsconfig::compiler_option(&chain, "baseUrl").and_then(|b| b.as_str()) {
                Some(b) => join(&dir, b),
                None => dir.clone(),
            };
        for (pattern, _, targets) in paths.entries() {
            out.push(Alias {
                scope: dir.clone(),
                pattern: pattern.clone(),
                targets: targets
                    .items()
                    .iter()
                    .filter_map(|t| t.as_str())
                    .map(|t| base.join(t))
                    .collect(),
            });
        }
    }
    out
}

/// `dir` joined with a `/`-separated relative path, `.` and `..` applied.
fn join(dir: &Path, relative: &str) -> PathBuf {
    let mut path = dir.to_path_buf();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                path.pop();
            }
            p => path.push(p),
        }
    }
    path
}

/// The file an import names: relative (`./db`, `../lib/prisma.js`) or through a tsconfig path
/// alias (`@/lib/db`); tries the TypeScript and JavaScript extensions and `index.*`.
fn resolve(
    from: &Path,
    specifier: &str,
    files: &HashMap<PathBuf, usize>,
    aliases: &[Alias],
) -> Option<usize> {
    if specifier.starts_with('.') {
        return find_module(
            &join(from.parent().unwrap_or(Path::new("")), specifier),
            files,
        );
    }
    for alias in aliases.iter().filter(|a| from.starts_with(&a.scope)) {
        let rest = match alias.pattern.strip_suffix('*') {
            Some(prefix) => match specifier.strip_prefix(prefix) {
                Some(rest) => rest,
                None => continue,
            },
            None if alias.pattern == specifier => "",
            None => continue,
        };
        for target in &alias.targets {
            let target = target.to_string_lossy().replace('*', rest);
            if let Some(found) = find_module(&join(Path::new(""), &target), files) {
                return Some(found);
            }
        }
    }
    None
}

fn find_module(path: &Path, files: &HashMap<PathBuf, usize>) -> Option<usize> {
    const EXT: &[&str] = &["ts", "tsx", "js", "mjs", "cjs", "mts", "cts", "jsx"];
    let mut candidates = vec![path.to_path_buf()];
    // `./db.js` in TypeScript sources names `db.ts`.
    if let Some(stem) = path.file_stem() {
        if path.extension().is_some() {
            candidates.extend(
                EXT.iter()
                    .map(|e| path.with_file_name(stem).with_extension(e)),
            );
        }
    }
    candidates.extend(EXT.iter().map(|e| {
        let mut p = path.to_path_buf().into_os_string();
        p.push(format!(".{e}"));
        PathBuf::from(p)
    }));
    candidates.extend(EXT.iter().map(|e| path.join(format!("index.{e}"))));
    candidates.iter().find_map(|c| files.get(c).copied())
}
