//! The text prefilter: most files of a large tree cannot trigger any source rule, and are
//! not parsed at all.

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
        && (CLIENT_TRIGGERS.iter().any(|t| source.contains(t))
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
    // What the rules report, besides timers.
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
        // unbounded-buffer
        "'data'",
        "\"data\"",
        "limit:",
        "readFileSync",
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
        || CLIENT_TRIGGERS.iter().any(|t| source.contains(t))
}

/// What client-per-request reports.
const CLIENT_TRIGGERS: &[&str] = &[
    "PrismaClient",
    "MongoClient",
    "new Pool",
    "new Client(",
    "createClient",
    "mongoose.connect",
    "mongoose.createConnection",
    "knex(",
    "Sequelize(",
    "createPool(",
    "createConnection(",
    "new Redis(",
];
