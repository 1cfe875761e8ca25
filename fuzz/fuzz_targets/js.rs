//! The JS/TS visitor: the first byte picks the file's extension (and so the dialect), the
//! rest is its source. Both the prefiltered and the full analysis run.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use memfit_audit::js;

const NAMES: [&str; 8] = [
    "server.js",
    "server.ts",
    "page.tsx",
    "page.jsx",
    "worker.mjs",
    "worker.cjs",
    "a.mts",
    "a.cts",
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let source = String::from_utf8_lossy(rest);
    let path = Path::new(NAMES[usize::from(which) % NAMES.len()]);
    let _ = js::analyze(path, &source);
    let mut facts = js::analyze_all(path, &source);
    facts.propagate_calls();
    let _ = facts.interesting_exports().count();
    let _ = facts.imports_any(&["express", "http"]);
});
