//! What the visitor found in one file: its functions and why they run repeatedly, timers
//! and what stops them, listeners and what removes them, module-level collections and what
//! bounds them, buffers, clients, and what the module imports and exports.

use oxc_semantic::SymbolId;
use oxc_syntax::scope::ScopeId;

use crate::dockerfile::Span as ByteSpan;

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
    pub kind: &'static str,
}

#[derive(Debug, Clone)]
pub struct Write {
    pub symbol: SymbolId,
    pub span: ByteSpan,
    pub literal_key: bool,
    pub func: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Found {
    pub span: ByteSpan,
    pub what: String,
    pub func: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct FunctionInfo {
    pub parent: Option<usize>,
    /// A callback of something that calls it repeatedly (`app.get`, `.on`, `setInterval`…).
    pub inline_repeated: Option<String>,
    pub symbol: Option<SymbolId>,
    /// Parameters named like a request handler's (`req, res`, `request, reply`, `ctx, next`).
    pub request_params: bool,
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
    /// Functions passed by name to something that calls them repeatedly, and why.
    pub repeated_symbols: Vec<(SymbolId, String)>,
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
    /// 'data' handlers that keep every chunk; `true` when the stream is a `req`/`request`
    /// parameter of an enclosing function (a body reader: it runs once per request).
    pub data_buffers: Vec<(Found, bool)>,
    pub body_limits: Vec<(ByteSpan, u64, String)>,
    pub read_file_sync: Vec<Found>,
    /// Clients made in a function; `true` when made lazily into a variable or property
    /// that outlives the call (`if (!pool) pool = new Pool()`, `client ??= createClient()`).
    pub clients: Vec<(Found, bool)>,
    /// Calls of functions declared in the file: (calling function, callee).
    pub calls: Vec<(Option<usize>, SymbolId)>,
    /// Modules the file imports or requires.
    pub imports: Vec<String>,
    /// Exported functions: (export name, function index); `default` for `module.exports = fn`
    /// and `export default`.
    pub exports: Vec<(String, usize)>,
    /// Functions another module calls from a function that runs repeatedly, and why
    /// (set by `link.rs`).
    pub external_repeated: Vec<(usize, String)>,
    /// Calls of imported functions (`import { db } from './db'`, `from '@/lib/db'`).
    pub imported_calls: Vec<ImportedCall>,
    /// The text prefilter found nothing a rule could report: not parsed.
    pub skipped: bool,
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
    pub fn repeated(&self, func: Option<usize>) -> Option<String> {
        self.repeated_below(func, None)
    }

    /// Why function `i` itself runs repeatedly: a callback of a repeated caller, a request
    /// handler's parameters, or a named function registered or called as one.
    pub fn own_repetition(&self, i: usize) -> Option<&str> {
        let f = &self.functions[i];
        if let Some(why) = &f.inline_repeated {
            return Some(why);
        }
        if f.request_params {
            return Some("a request handler");
        }
        if let Some((_, why)) = self.external_repeated.iter().find(|(j, _)| *j == i) {
            return Some(why);
        }
        let sym = f.symbol?;
        self.repeated_symbols
            .iter()
            .find(|(s, _)| *s == sym)
            .map(|(_, why)| why.as_str())
    }

    /// Like `repeated`, counting only the functions below `stop` (an enclosing function).
    pub fn repeated_below(&self, func: Option<usize>, stop: Option<usize>) -> Option<String> {
        let mut current = func;
        let mut depth = 0;
        while let Some(i) = current {
            if Some(i) == stop {
                break;
            }
            if let Some(why) = self.own_repetition(i) {
                return Some(why.to_string());
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
            let new: Vec<(SymbolId, String)> = self
                .calls
                .iter()
                .filter(|(_, callee)| !self.repeated_symbols.iter().any(|(s, _)| s == callee))
                .filter_map(|(caller, callee)| {
                    let why = self.repeated(*caller)?;
                    let why = why.strip_prefix("a function called from ").unwrap_or(&why);
                    Some((*callee, format!("a function called from {why}")))
                })
                .collect();
            if new.is_empty() {
                break;
            }
            for (sym, why) in new {
                if !self.repeated_symbols.iter().any(|(s, _)| *s == sym) {
                    self.repeated_symbols.push((sym, why));
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
            .chain(self.clients.iter().map(|(c, _)| c.func))
            .chain(self.data_buffers.iter().map(|(b, _)| b.func))
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
            for (caller, callee) in &self.calls {
                let callee_marked = self
                    .functions
                    .iter()
                    .position(|f| f.symbol == Some(*callee))
                    .is_some_and(|j| marked[j]);
                if callee_marked && caller.is_some_and(|c| !marked[c]) {
                    mark(&mut marked, *caller);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        self.exports
            .iter()
            .filter(move |(_, i)| marked[*i])
            .map(|(name, _)| name.as_str())
    }

    pub fn imports_any(&self, names: &[&str]) -> bool {
        self.imports.iter().any(|i| {
            names
                .iter()
                .any(|n| i == n || i.starts_with(&format!("{n}/")))
        })
    }
}
