//! The text prefilter: most files of a large tree cannot trigger any source rule, and are
//! not parsed at all.

use crate::rules::{client_per_request, unbounded_buffer};

/// Whether a file can give any source rule something to report; most files of a large tree
/// cannot, and are not parsed at all. Every rule needs a timer, or a function that runs
/// repeatedly (an event, route or request handler) together with what it reports.
pub fn worth_parsing(source: &str) -> bool {
    if source.contains("setInterval") {
        return true;
    }
    // A module that exports what leaks when called per request (a client factory, a
    // `subscribe` that adds a listener, a `remember` that fills a module Map): its callers in
    // other modules may run it per request (`link.rs`).
    const EXPORTED_TRIGGERS: &[&str] = &["= new Map", "= new Set", ".on(", "addListener("];
    if source.contains("export")
        && (client_per_request::TRIGGERS
            .iter()
            .any(|t| source.contains(t))
            || EXPORTED_TRIGGERS.iter().any(|t| source.contains(t)))
    {
        return true;
    }
    const REPEATED: &[&str] = &[
        ".on(",
        ".get('",
        ".get(\"",
        ".get(`",
        ".post(",
        ".put(",
        ".patch(",
        ".all(",
        ".use(",
        ".route(",
        "addHook",
        "createServer",
        "addListener",
        "addEventListener",
        "prependListener",
        "(req",
        "(request",
        "(ctx",
    ];
    // What listener-per-call and unbounded-module-cache report, besides timers; the rules
    // that know libraries say their own.
    const TRIGGERS: &[&str] = &[
        // listener-per-call
        "process.on(",
        "addListener(",
        "addEventListener(",
        "prependListener(",
        // unbounded-module-cache
        "= new Map",
        "= new Set",
        "= []",
        "= {}",
    ];
    if !REPEATED.iter().any(|t| source.contains(t)) {
        return false;
    }
    // A listener on a module-level emitter needs the emitter's `.on(` and a module binding:
    // any `.on(` with a `const`/`let` at the start of a line.
    let module_emitter = source.contains(".on(")
        && (source.contains("\nconst ") || source.contains("\nlet ") || source.contains("\nvar "));
    module_emitter
        || TRIGGERS.iter().any(|t| source.contains(t))
        || unbounded_buffer::TRIGGERS
            .iter()
            .any(|t| source.contains(t))
        || client_per_request::TRIGGERS
            .iter()
            .any(|t| source.contains(t))
}
