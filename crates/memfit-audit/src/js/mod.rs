//! JavaScript and TypeScript sources: one pass over the AST (oxc_parser, oxc_semantic for
//! scopes and references) collects the facts the source rules need — timers and what clears
//! them, listeners and what removes them, module-level collections and what bounds them,
//! request-driven buffers and clients — and which functions run repeatedly (per request,
//! per event, per connection). The rules (`rules/interval_never_cleared.rs` …) read the facts.
//!
//! `prefilter` skips the files that cannot trigger a rule, `collect` walks the others into
//! `facts`, and `link` follows calls across modules.
//!
//! Precision comes before recall: whatever cannot be decided (a timer handle passed on, an
//! emitter whose lifetime is unknown, a listener registered under a condition) is left alone.

mod collect;
pub mod depth;
mod facts;
mod link;
mod prefilter;

pub use facts::*;
pub use prefilter::worth_parsing;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::dockerfile::Span as ByteSpan;
use crate::project::{Kind, Project};
use crate::source::FileId;

/// A JS/TS source of the project and what its visitor found.
#[derive(Debug, Clone)]
pub struct JsFile {
    pub file: FileId,
    pub facts: JsFacts,
    /// Library code: the nearest package.json above the file has no `start` script and
    /// declares an entry point (`main`, `exports`, `module`): a package meant to be imported.
    pub library: bool,
}

fn span(s: oxc_span::Span) -> ByteSpan {
    ByteSpan::new(s.start as usize, s.end as usize)
}

/// Parses and analyses one file; empty facts when it does not parse.
pub fn analyze(path: &Path, source: &str) -> JsFacts {
    if !worth_parsing(source) {
        return JsFacts {
            parsed: true,
            skipped: true,
            ..JsFacts::default()
        };
    }
    analyze_all(path, source)
}

/// `analyze` without the prefilter: for a file that calls a function another file exports.
pub fn analyze_all(path: &Path, source: &str) -> JsFacts {
    collect::collect(path, source)
}

/// Analyses every JS/TS source of the project in parallel, then links them, on threads whose
/// stack holds the deepest file [`depth`] lets through.
pub fn analyze_project(project: &Project) -> Vec<JsFile> {
    match rayon::ThreadPoolBuilder::new()
        .stack_size(depth::STACK_BYTES)
        .build()
    {
        Ok(pool) => pool.install(|| analyze_in_pool(project)),
        Err(_) => analyze_in_pool(project),
    }
}

fn analyze_in_pool(project: &Project) -> Vec<JsFile> {
    use rayon::prelude::*;
    let packages: HashMap<PathBuf, FileId> = project
        .of_kind(Kind::PackageJson)
        .map(|(id, _)| (project.dir_of(id), id))
        .collect();
    let ids: Vec<FileId> = project.of_kind(Kind::Script).map(|(id, _)| id).collect();
    let mut sources: Vec<JsFile> = ids
        .par_iter()
        .map(|&file| {
            let source = &project.file(file).source;
            JsFile {
                file,
                facts: analyze(&source.path, &source.text),
                library: is_library(project, &packages, file),
            }
        })
        .collect();
    link::link_modules(project, &mut sources);
    sources
}

/// See `JsFile::library`.
fn is_library(project: &Project, packages: &HashMap<PathBuf, FileId>, id: FileId) -> bool {
    let mut dir = project.dir_of(id);
    loop {
        if let Some(&pkg_id) = packages.get(&dir) {
            let Some(pkg) = project.json(pkg_id) else {
                return false;
            };
            let starts = pkg.at(&["scripts", "start"]).is_some();
            let entry = ["main", "exports", "module"]
                .iter()
                .any(|k| pkg.get(k).is_some());
            return !starts && entry;
        }
        if !dir.pop() {
            return false;
        }
    }
}
