//! Times parse, semantic analysis and fact collection over a tree of JS/TS files:
//! `cargo run --release -p memfit-audit --example js_phases -- DIR`.
use std::time::Instant;

fn main() {
    let dir = std::env::args().nth(1).expect("a directory");
    let mut files = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .is_some_and(|x| x == "js" || x == "ts" || x == "mjs" || x == "cjs")
            {
                files.push((p.clone(), std::fs::read_to_string(&p).unwrap_or_default()));
            }
        }
    }
    let (mut parse, mut semantic, mut total) = (0.0, 0.0, 0.0);
    for (path, text) in &files {
        let t0 = Instant::now();
        let allocator = oxc_allocator::Allocator::default();
        let st = oxc_span::SourceType::from_path(path).unwrap_or_default();
        let ret = oxc_parser::Parser::new(&allocator, text, st).parse();
        let t1 = Instant::now();
        let _sem = oxc_semantic::SemanticBuilder::new()
            .with_build_nodes(false)
            .build(&ret.program);
        let t2 = Instant::now();
        parse += (t1 - t0).as_secs_f64();
        semantic += (t2 - t1).as_secs_f64();
        let t3 = Instant::now();
        let _ = memfit_audit::js::analyze(path, text);
        total += t3.elapsed().as_secs_f64();
    }
    let worth = files
        .iter()
        .filter(|(_, t)| memfit_audit::js::worth_parsing(t))
        .count();
    println!("{worth} of {} files worth parsing", files.len());
    println!(
        "{} files: parse {:.0} ms, semantic {:.0} ms, analyze (all) {:.0} ms",
        files.len(),
        parse * 1e3,
        semantic * 1e3,
        total * 1e3
    );
}
