//! What the visitor found in one file: its functions and why they run repeatedly, timers
//! and what stops them, listeners and what removes them, module-level collections and what
//! bounds them, buffers, clients, and what the module imports and exports.

use std::fmt;

use oxc_semantic::SymbolId;
use oxc_syntax::scope::ScopeId;

use crate::dockerfile::Span as ByteSpan;

/// Why a function runs repeatedly (per request, per event, per tick), and the calls through
/// which that reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repetition {
    /// What runs repeatedly in the first place.
    pub kind: RepetitionKind,
    /// The calls from there to the function, outermost first; empty for the function itself.
    pub via: Vec<CallSite>,
}

/// What makes a function run repeatedly in the first place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepetitionKind {
    /// A route's callback: `app.get('/users', fn)`, `router.use(fn)`.
    RouteHandler,
    /// `http.createServer(fn)`'s callback: one call per request.
    ServerHandler,
    /// A callback of Fastify's `addHook`: one call per request.
    RequestHook,
    /// An event's callback: `emitter.on('message', fn)`.
    EventHandler,
    /// `setInterval(fn)`'s callback.
    IntervalCallback,
    /// A function whose parameters are named like a request handler's (`req, res`,
    /// `request, reply`, `ctx, next`).
    RequestParameters,
    /// `export async function GET(request)` in a Next.js App Router `route.ts`.
    NextRouteHandler,
}

/// A call through which repetition reaches a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallSite {
    /// A call from a repeated function of the same file.
    SameFile,
    /// A call from a repeated function of another module.
    Module(ModuleCall),
}

/// A call of an exported function from another module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleCall {
    /// The export called; `default` for the module's default export.
    pub export: String,
    /// The calling file, as displayed.
    pub caller: String,
    /// The line of the call.
    pub line: usize,
}

impl Repetition {
    pub fn new(kind: RepetitionKind) -> Repetition {
        Repetition {
            kind,
            via: Vec::new(),
        }
    }

    /// The same repetition, one call further.
    pub fn through(&self, call: CallSite) -> Repetition {
        let mut via = self.via.clone();
        via.push(call);
        Repetition {
            kind: self.kind,
            via,
        }
    }
}

impl fmt::Display for RepetitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RepetitionKind::RouteHandler => "a route handler",
            RepetitionKind::ServerHandler | RepetitionKind::RequestParameters => {
                "a request handler"
            }
            RepetitionKind::RequestHook => "a per-request hook",
            RepetitionKind::EventHandler => "an event handler",
            RepetitionKind::IntervalCallback => "an interval callback",
            RepetitionKind::NextRouteHandler => "a Next.js route handler",
        })
    }
}

/// Says the last call from another module, and what repeats at the start of the chain:
/// "`db()`, which routes/users.js:7 calls from a route handler". Calls within a file read
/// "a function called from …"; the hops between are left out, the message stays one line.
impl fmt::Display for Repetition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const CALLED: &str = "a function called from ";
        let module_calls = || {
            self.via.iter().enumerate().filter_map(|(i, c)| match c {
                CallSite::Module(call) => Some((i, call)),
                CallSite::SameFile => None,
            })
        };
        let Some((last, call)) = module_calls().next_back() else {
            if !self.via.is_empty() {
                f.write_str(CALLED)?;
            }
            return write!(f, "{}", self.kind);
        };
        if last + 1 < self.via.len() {
            f.write_str(CALLED)?;
        }
        if call.export == "default" {
            f.write_str("the module's default export")?;
        } else {
            write!(f, "`{}()`", call.export)?;
        }
        write!(f, ", which {}:{} calls from ", call.caller, call.line)?;
        if module_calls().next().is_some_and(|(first, _)| first > 0) {
            f.write_str(CALLED)?;
        }
        write!(f, "{}", self.kind)
    }
}

/// What holds a timer or names a handler: a variable, or a property (`this.timer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handle {
    Symbol(SymbolId),
    Member(String),
    /// The value is not kept anywhere.
    Discarded,
    /// Kept somewhere memfit cannot follow (an argument, an array, a return value).
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Timer {
    pub span: ByteSpan,
    pub interval: bool,
    pub handle: Handle,
    pub unref_chained: bool,
    pub func: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub span: ByteSpan,
    /// The emitter as written (`process`, `server`, `db.pool`).
    pub emitter: String,
    pub long_lived: bool,
    pub event: Option<String>,
    pub handler: Handle,
    pub inline_handler: bool,
    pub once_option: bool,
    pub conditional: bool,
    pub func: Option<usize>,
    /// The emitter is a local of an enclosing function (index): a socket or client made
    /// outside the function that adds the listener, and outliving each of its runs.
    pub outer_from: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Removal {
    pub emitter: String,
    pub event: Option<String>,
    pub handler: Handle,
    pub all: bool,
}

#[derive(Debug, Clone)]
pub struct Collection {
    pub symbol: SymbolId,
    pub name: String,
    pub span: ByteSpan,
    pub kind: CollectionKind,
}

/// What a module-level collection is declared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionKind {
    /// `new Map()`
    Map,
    /// `new Set()`
    Set,
    /// `[]`
    Array,
    /// `{}`
    Object,
}

impl fmt::Display for CollectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CollectionKind::Map => "Map",
            CollectionKind::Set => "Set",
            CollectionKind::Array => "array",
            CollectionKind::Object => "object",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Write {
    pub symbol: SymbolId,
    pub span: ByteSpan,
    pub literal_key: bool,
    pub func: Option<usize>,
}

/// A `'data'` handler that keeps every chunk of its stream with no byte cap.
#[derive(Debug, Clone)]
pub struct DataBuffer {
    pub span: ByteSpan,
    /// The chunk parameter's name.
    pub chunk: String,
    pub func: Option<usize>,
    /// The stream is a `req`/`request` parameter of an enclosing function: a body reader,
    /// which runs once per request.
    pub body_reader: bool,
}

/// A body parser's `limit` option.
#[derive(Debug, Clone)]
pub struct BodyLimit {
    pub span: ByteSpan,
    pub bytes: u64,
    /// The limit as written: `"50mb"`.
    pub text: String,
}

/// `readFileSync` of a path taken from the request.
#[derive(Debug, Clone)]
pub struct ReadFileSync {
    pub span: ByteSpan,
    /// The path argument as written.
    pub path: String,
    pub func: Option<usize>,
}

/// A database or cache client made in a function.
#[derive(Debug, Clone)]
pub struct Client {
    pub span: ByteSpan,
    /// The call as the message says it: `new Pool()`, `mongoose.connect()`.
    pub call: String,
    pub func: Option<usize>,
    /// Made lazily into a variable or property that outlives the call
    /// (`if (!pool) pool = new Pool()`, `client ??= createClient()`): made once.
    pub lazy: bool,
}

/// A call of a function declared in the same file.
#[derive(Debug, Clone)]
pub struct LocalCall {
    /// The calling function; `None` at module scope.
    pub caller: Option<usize>,
    pub callee: SymbolId,
}

/// An exported function.
#[derive(Debug, Clone)]
pub struct Export {
    /// The export name; `default` for `module.exports = fn` and `export default`.
    pub name: String,
    /// The index of the function in `functions`.
    pub function: usize,
}

#[derive(Debug, Clone, Default)]
pub struct FunctionInfo {
    pub parent: Option<usize>,
    /// Why the function runs repeatedly as written: it is the callback of something that
    /// calls it repeatedly (`app.get`, `.on`, `setInterval`…), or its parameters are named
    /// like a request handler's.
    pub repetition: Option<Repetition>,
    pub symbol: Option<SymbolId>,
    pub span: ByteSpan,
    pub scope: Option<ScopeId>,
    /// For an inline event handler: the emitter variable whose events call it.
    pub repeat_emitter: Option<SymbolId>,
}

/// Everything one file tells the source rules.
#[derive(Debug, Clone, Default)]
pub struct JsFacts {
    pub parsed: bool,
    pub functions: Vec<FunctionInfo>,
    /// Functions passed by name to something that calls them repeatedly, or called from a
    /// function that runs repeatedly, and why.
    pub repeated_symbols: Vec<RepeatedSymbol>,
    pub timers: Vec<Timer>,
    pub cleared: Vec<Handle>,
    pub unrefd: Vec<Handle>,
    /// Symbols that are used in a way memfit cannot follow (passed, returned, stored).
    pub escaped: Vec<SymbolId>,
    pub listeners: Vec<Listener>,
    pub removals: Vec<Removal>,
    pub collections: Vec<Collection>,
    pub writes: Vec<Write>,
    pub bounded: Vec<SymbolId>,
    pub data_buffers: Vec<DataBuffer>,
    pub body_limits: Vec<BodyLimit>,
    pub read_file_sync: Vec<ReadFileSync>,
    pub clients: Vec<Client>,
    /// Calls of functions declared in the file.
    pub calls: Vec<LocalCall>,
    /// Modules the file imports or requires.
    pub imports: Vec<String>,
    pub exports: Vec<Export>,
    /// Functions that run repeatedly for a reason outside the file: another module calls
    /// them from a function that runs repeatedly (set by `link.rs`), or the framework routes
    /// requests to them (Next.js route handlers).
    pub external_repeated: Vec<RepeatedFunction>,
    /// Calls of imported functions (`import { db } from './db'`, `from '@/lib/db'`).
    pub imported_calls: Vec<ImportedCall>,
    /// The text prefilter found nothing a rule could report: not parsed.
    pub skipped: bool,
    /// Why the file was not analysed (a syntax error, nesting too deep), and where.
    pub problem: Option<(String, ByteSpan)>,
}

/// A named function that runs repeatedly, and why.
#[derive(Debug, Clone)]
pub struct RepeatedSymbol {
    pub symbol: SymbolId,
    pub why: Repetition,
}

/// A function of the file (an index into `functions`) that runs repeatedly, and why.
#[derive(Debug, Clone)]
pub struct RepeatedFunction {
    pub function: usize,
    pub why: Repetition,
}

#[derive(Debug, Clone)]
pub struct ImportedCall {
    /// As written: `./db`, `../lib/prisma`.
    pub specifier: String,
    /// The imported name; `default` for a default import or a called module object.
    pub name: String,
    pub func: Option<usize>,
    pub span: ByteSpan,
}

/// A module of the project rather than a package: relative, or a usual alias prefix.
fn local_specifier(specifier: &str) -> bool {
    ["./", "../", "@/", "~/", "#"]
        .iter()
        .any(|p| specifier.starts_with(p))
}

impl JsFacts {
    /// Why a function runs repeatedly, if it does (itself or an enclosing function).
    pub fn repeated(&self, func: Option<usize>) -> Option<&Repetition> {
        self.repeated_below(func, None)
    }

    /// Why function `i` itself runs repeatedly: a callback of a repeated caller, a request
    /// handler's parameters, or a named function registered or called as one.
    pub fn own_repetition(&self, i: usize) -> Option<&Repetition> {
        let f = &self.functions[i];
        if let Some(why) = &f.repetition {
            return Some(why);
        }
        if let Some(r) = self.external_repeated.iter().find(|r| r.function == i) {
            return Some(&r.why);
        }
        let sym = f.symbol?;
        self.repeated_symbols
            .iter()
            .find(|r| r.symbol == sym)
            .map(|r| &r.why)
    }

    /// Like `repeated`, counting only the functions below `stop` (an enclosing function).
    pub fn repeated_below(&self, func: Option<usize>, stop: Option<usize>) -> Option<&Repetition> {
        let mut current = func;
        let mut depth = 0;
        while let Some(i) = current {
            if Some(i) == stop {
                break;
            }
            if let Some(why) = self.own_repetition(i) {
                return Some(why);
            }
            current = self.functions[i].parent;
            depth += 1;
            if depth > 64 {
                break;
            }
        }
        None
    }

    /// A function the file calls from a function that runs repeatedly runs repeatedly too
    /// (`app.get('/u', (req, res) => getUsers())`), to a fixed point. Run again when another
    /// module makes one of this file's functions repeated.
    pub fn propagate_calls(&mut self) {
        loop {
            let known =
                |symbol: &SymbolId| self.repeated_symbols.iter().any(|r| r.symbol == *symbol);
            let new: Vec<RepeatedSymbol> = self
                .calls
                .iter()
                .filter(|call| !known(&call.callee))
                .filter_map(|call| {
                    Some(RepeatedSymbol {
                        symbol: call.callee,
                        why: self.repeated(call.caller)?.through(CallSite::SameFile),
                    })
                })
                .collect();
            if new.is_empty() {
                break;
            }
            for repeated in new {
                if !self
                    .repeated_symbols
                    .iter()
                    .any(|r| r.symbol == repeated.symbol)
                {
                    self.repeated_symbols.push(repeated);
                }
            }
        }
    }

    /// Exports whose body holds something a rule reports when it runs repeatedly (a timer,
    /// a listener, a write to a module collection, a client, a body buffer), a call into
    /// another project module, or a call to a local function that does: what another module
    /// calling them per request makes leak.
    pub fn interesting_exports(&self) -> impl Iterator<Item = &str> {
        let mut marked = vec![false; self.functions.len()];
        let mark = |marked: &mut Vec<bool>, func: Option<usize>| {
            let mut current = func;
            while let Some(i) = current {
                if marked[i] {
                    break;
                }
                marked[i] = true;
                current = self.functions[i].parent;
            }
        };
        let direct = self
            .timers
            .iter()
            .map(|t| t.func)
            .chain(self.listeners.iter().map(|l| l.func))
            .chain(self.writes.iter().map(|w| w.func))
            .chain(self.clients.iter().map(|c| c.func))
            .chain(self.data_buffers.iter().map(|b| b.func))
            .chain(self.read_file_sync.iter().map(|r| r.func))
            .chain(
                self.imported_calls
                    .iter()
                    .filter(|c| local_specifier(&c.specifier))
                    .map(|c| c.func),
            );
        for func in direct {
            mark(&mut marked, func);
        }
        // Through local calls, to a fixed point.
        loop {
            let mut changed = false;
            for call in &self.calls {
                let callee_marked = self
                    .functions
                    .iter()
                    .position(|f| f.symbol == Some(call.callee))
                    .is_some_and(|j| marked[j]);
                if callee_marked && call.caller.is_some_and(|c| !marked[c]) {
                    mark(&mut marked, call.caller);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        self.exports
            .iter()
            .filter(move |e| marked[e.function])
            .map(|e| e.name.as_str())
    }

    pub fn imports_any(&self, names: &[&str]) -> bool {
        self.imports.iter().any(|i| {
            names
                .iter()
                .any(|n| i == n || i.starts_with(&format!("{n}/")))
        })
    }
}
