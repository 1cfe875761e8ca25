//! JavaScript and TypeScript sources: one pass over the AST (oxc_parser, oxc_semantic for
//! scopes and references) collects the facts the source rules need — timers and what clears
//! them, listeners and what removes them, module-level collections and what bounds them,
//! request-driven buffers and clients — and which functions run repeatedly (per request,
//! per event, per connection). The rules (`rules/interval_never_cleared.rs` …) read the facts.
//!
//! Precision comes before recall: whatever cannot be decided (a timer handle passed on, an
//! emitter whose lifetime is unknown, a listener registered under a condition) is left alone.

use oxc_allocator::Allocator;
use oxc_ast::ast::*;
use oxc_ast_visit::{walk, Visit};
use oxc_parser::Parser;
use oxc_semantic::{Scoping, SemanticBuilder, SymbolId};
use oxc_span::{GetSpan, SourceType};
use oxc_syntax::scope::{ScopeFlags, ScopeId};

use crate::dockerfile::Span as ByteSpan;

fn span(s: oxc_span::Span) -> ByteSpan {
    ByteSpan::new(s.start as usize, s.end as usize)
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
    /// (set by the project-wide pass in `context`).
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

/// How a local name is bound to a relative module.
#[derive(Debug, Clone)]
enum ImportBinding {
    Named(String, String),
    Namespace(String),
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

/// Events that fire once per emitter: their callbacks run as often as the code around them.
const ONCE_EVENTS: &[&str] = &[
    "end",
    "close",
    "finish",
    "error",
    "response",
    "open",
    "ready",
    "listening",
    "exit",
    "connect",
    "upgrade",
    "timeout",
];

/// Words of lifecycle events an application emits a bounded number of times: a plugin or
/// node type registered, a configuration loaded (node-red's `registry:plugin-added`). What
/// their handlers add to a module map is a registry, not a leak.
const LIFECYCLE_WORDS: &[&str] = &[
    "added", "removed", "register", "plugin", "install", "loaded", "ready", "init", "start",
    "stop", "shutdown", "config", "settings",
];

fn lifecycle_event(event: &str) -> bool {
    let e = event.to_ascii_lowercase();
    LIFECYCLE_WORDS.iter().any(|w| e.contains(w))
}

/// How often the callbacks passed to this call run: `Some(why)` when repeatedly.
fn callback_repetition(call: &CallExpression<'_>) -> Option<&'static str> {
    let (name, member) = match call.callee.get_inner_expression() {
        Expression::StaticMemberExpression(m) => (m.property.name.as_str(), true),
        Expression::Identifier(id) => (id.name.as_str(), false),
        _ => return None,
    };
    if !member {
        return match name {
            "setInterval" => Some("an interval callback"),
            "createServer" => Some("a request handler"),
            _ => None,
        };
    }
    let why = repeated_caller(name)?;
    let first = call
        .arguments
        .first()
        .and_then(|a| a.as_expression())
        .map(|e| e.get_inner_expression());
    match why {
        // A route needs a route first: `app.get('/users', fn)`, not `http.get(url, fn)`.
        "a route handler" => match first {
            Some(e) => {
                let path = literal_string(e);
                let route = path.is_some_and(|p| p.starts_with('/') || p == "*")
                    || matches!(
                        e,
                        Expression::RegExpLiteral(_) | Expression::ArrayExpression(_)
                    )
                    || (name == "use" && call.arguments.len() == 1);
                route.then_some(why)
            }
            None => None,
        },
        "an event handler" => match first.and_then(literal_string) {
            Some(event) if ONCE_EVENTS.contains(&event) || lifecycle_event(event) => None,
            _ => Some(why),
        },
        _ => Some(why),
    }
}

/// Methods that call their function argument repeatedly, and how to say it.
fn repeated_caller(method: &str) -> Option<&'static str> {
    Some(match method {
        "on" | "addListener" | "addEventListener" | "prependListener" => "an event handler",
        "get" | "post" | "put" | "patch" | "delete" | "all" | "use" | "head" | "options"
        | "route" | "handle" => "a route handler",
        "addHook" => "a per-request hook",
        "createServer" => "a request handler",
        _ => return None,
    })
}

fn literal_string<'a>(e: &'a Expression<'a>) -> Option<&'a str> {
    match e.get_inner_expression() {
        Expression::StringLiteral(s) => Some(s.value.as_str()),
        Expression::TemplateLiteral(t) if t.expressions.is_empty() => {
            t.quasis.first().map(|q| q.value.raw.as_str())
        }
        _ => None,
    }
}

/// Parses a size like body-parser's `limit`: a number of bytes or `50mb`.
pub fn parse_limit(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let value: f64 = t[..split].parse().ok()?;
    let scale = match t[split..].trim() {
        "" | "b" => 1.0,
        "kb" | "k" => 1024.0,
        "mb" | "m" => 1024.0 * 1024.0,
        "gb" | "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((value * scale) as u64)
}

struct Collector<'s> {
    source: &'s str,
    scoping: &'s Scoping,
    facts: JsFacts,
    stack: Vec<usize>,
    /// Set while visiting a callback argument of a repeated caller.
    pending_repeated: Option<String>,
    /// The emitter of `pending_repeated`, when it is a variable.
    pending_emitter: Option<SymbolId>,
    /// Inside `a ?? b`, `a || b`, `c ? a : b`, `x ||= …`, or an assignment to a variable or
    /// property that outlives the call: what is made here is made lazily, once.
    lazy: u32,
    /// Local names bound to imported modules (imports and top-level requires).
    import_bindings: std::collections::HashMap<SymbolId, ImportBinding>,
    /// `lazy` of the enclosing functions: it does not reach into a function's body.
    lazy_saved: Vec<u32>,
    /// Symbols of every function parameter.
    param_symbols: std::collections::HashSet<SymbolId>,
    /// Set while visiting the initializer of `const NAME = …`.
    pending_symbol: Option<SymbolId>,
    /// Identifier spans already accounted for (clear/unref arguments, declarations).
    accounted: Vec<(u32, u32)>,
    /// (symbol, span) of every resolved reference.
    references: Vec<(SymbolId, u32, u32)>,
    /// Depth of if/conditional nesting inside the current function.
    conditional: Vec<u32>,
    /// The call that is a statement of its own: its value is discarded.
    statement_call: Option<(u32, u32)>,
}

impl<'s> Collector<'s> {
    fn func(&self) -> Option<usize> {
        self.stack.last().copied()
    }

    fn text(&self, s: oxc_span::Span) -> &'s str {
        self.source
            .get(s.start as usize..s.end as usize)
            .unwrap_or("")
    }

    fn symbol_of(&self, id: &IdentifierReference) -> Option<SymbolId> {
        let reference = id.reference_id.get()?;
        self.scoping.get_reference(reference).symbol_id()
    }

    /// Whether something between the current function and the enclosing function `k` runs
    /// repeatedly while `emitter` (declared in `k`) lives. An event handler of an object `k`
    /// itself creates (`const proxy = new ProxyServer()`; `proxy.on('proxyReq', …)`) fires
    /// for that object's short life, not for the emitter's: it does not count.
    fn repeats_within(&self, k: usize, emitter: SymbolId) -> bool {
        let facts = &self.facts;
        let mut f = self.func();
        while let Some(i) = f {
            if i == k {
                break;
            }
            let info = &facts.functions[i];
            if facts.own_repetition(i).is_some() {
                let per_local_object = info.repeat_emitter.is_some_and(|e| {
                    e != emitter
                        && !self.param_symbols.contains(&e)
                        && facts.functions[k].scope.is_some_and(|ks| {
                            self.scoping
                                .scope_ancestors(self.scoping.symbol_scope_id(e))
                                .any(|a| a == ks)
                        })
                });
                if !per_local_object {
                    return true;
                }
            }
            f = info.parent;
        }
        false
    }

    /// `db()` with `import { db } from './db'`, `lib.db()` with `const lib = require('./lib')`.
    fn imported_call(&mut self, call: &CallExpression<'_>) {
        let binding_of = |id: &IdentifierReference| {
            self.symbol_of(id)
                .and_then(|s| self.import_bindings.get(&s))
                .cloned()
        };
        let target = match call.callee.get_inner_expression() {
            Expression::Identifier(id) => match binding_of(id) {
                Some(ImportBinding::Named(spec, name)) => Some((spec, name)),
                Some(ImportBinding::Namespace(spec)) => Some((spec, "default".to_string())),
                None => None,
            },
            Expression::StaticMemberExpression(m) => match m.object.get_inner_expression() {
                Expression::Identifier(id) => match binding_of(id) {
                    Some(ImportBinding::Namespace(spec)) => {
                        Some((spec, m.property.name.to_string()))
                    }
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        if let Some((specifier, name)) = target {
            self.facts.imported_calls.push(ImportedCall {
                specifier,
                name,
                func: self.func(),
                span: span(call.span),
            });
        }
    }

    /// Imports and top-level requires, before the walk.
    fn collect_import_bindings(&mut self, program: &Program<'_>) {
        for stmt in &program.body {
            match stmt {
                Statement::ImportDeclaration(i) => {
                    // Relative, or a tsconfig alias (`@/lib/db`): resolved project-wide.
                    let spec = i.source.value.to_string();
                    for sp in i.specifiers.iter().flatten() {
                        let (local, binding) = match sp {
                            ImportDeclarationSpecifier::ImportSpecifier(s) => (
                                &s.local,
                                ImportBinding::Named(spec.clone(), s.imported.name().to_string()),
                            ),
                            ImportDeclarationSpecifier::ImportDefaultSpecifier(s) => (
                                &s.local,
                                ImportBinding::Named(spec.clone(), "default".to_string()),
                            ),
                            ImportDeclarationSpecifier::ImportNamespaceSpecifier(s) => {
                                (&s.local, ImportBinding::Namespace(spec.clone()))
                            }
                        };
                        if let Some(sym) = local.symbol_id.get() {
                            self.import_bindings.insert(sym, binding);
                        }
                    }
                }
                Statement::VariableDeclaration(v) => {
                    for d in &v.declarations {
                        let Some(Expression::CallExpression(call)) =
                            d.init.as_ref().map(|e| e.get_inner_expression())
                        else {
                            continue;
                        };
                        let is_require = matches!(call.callee.get_inner_expression(), Expression::Identifier(c) if c.name == "require");
                        let spec = call
                            .arguments
                            .first()
                            .and_then(|a| a.as_expression())
                            .and_then(literal_string);
                        let (true, Some(spec)) = (is_require, spec) else {
                            continue;
                        };
                        match &d.id {
                            BindingPattern::BindingIdentifier(b) => {
                                if let Some(sym) = b.symbol_id.get() {
                                    self.import_bindings
                                        .insert(sym, ImportBinding::Namespace(spec.to_string()));
                                }
                            }
                            BindingPattern::ObjectPattern(o) => {
                                for p in &o.properties {
                                    let (Some(key), BindingPattern::BindingIdentifier(b)) =
                                        (p.key.static_name(), &p.value)
                                    else {
                                        continue;
                                    };
                                    if let Some(sym) = b.symbol_id.get() {
                                        self.import_bindings.insert(
                                            sym,
                                            ImportBinding::Named(spec.to_string(), key.to_string()),
                                        );
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Exported functions, by export name.
    fn collect_exports(&mut self, program: &Program<'_>) {
        let by_span =
            |s: oxc_span::Span| self.facts.functions.iter().position(|f| f.span == span(s));
        let by_symbol = |sym: Option<SymbolId>| {
            sym.and_then(|sym| {
                self.facts
                    .functions
                    .iter()
                    .position(|f| f.symbol == Some(sym))
            })
        };
        let function_of = |e: &Expression<'_>| match e.get_inner_expression() {
            Expression::ArrowFunctionExpression(f) => by_span(f.span),
            Expression::FunctionExpression(f) => by_span(f.span),
            Expression::Identifier(id) => by_symbol(self.symbol_of(id)),
            _ => None,
        };
        let mut exports: Vec<(String, usize)> = Vec::new();
        for stmt in &program.body {
            match stmt {
                Statement::ExportDeclaration(e) => match &e.declaration {
                    Declaration::FunctionDeclaration(f) => {
                        if let (Some(id), Some(i)) = (&f.id, by_span(f.span)) {
                            exports.push((id.name.to_string(), i));
                        }
                    }
                    Declaration::VariableDeclaration(v) => {
                        for d in &v.declarations {
                            if let (BindingPattern::BindingIdentifier(b), Some(init)) =
                                (&d.id, &d.init)
                            {
                                if let Some(i) = function_of(init) {
                                    exports.push((b.name.to_string(), i));
                                }
                            }
                        }
                    }
                    _ => {}
                },
                Statement::ExportNamedDeclaration(e) => {
                    for sp in &e.specifiers {
                        if let ModuleExportName::IdentifierReference(id) = &sp.local {
                            if let Some(i) = by_symbol(self.symbol_of(id)) {
                                exports.push((sp.exported.name().to_string(), i));
                            }
                        }
                    }
                }
                Statement::ExportDefaultDeclaration(e) => {
                    let i = match &e.declaration {
                        ExportDefaultDeclarationKind::FunctionDeclaration(f) => by_span(f.span),
                        ExportDefaultDeclarationKind::ArrowFunctionExpression(f) => by_span(f.span),
                        ExportDefaultDeclarationKind::Identifier(id) => {
                            by_symbol(self.symbol_of(id))
                        }
                        _ => None,
                    };
                    if let Some(i) = i {
                        exports.push(("default".to_string(), i));
                    }
                }
                Statement::ExpressionStatement(es) => {
                    let Expression::AssignmentExpression(a) = es.expression.get_inner_expression()
                    else {
                        continue;
                    };
                    let AssignmentTarget::StaticMemberExpression(m) = &a.left else {
                        continue;
                    };
                    let object = self.text(m.object.span());
                    let name = m.property.name.to_string();
                    if object == "module" && name == "exports" {
                        if let Expression::ObjectExpression(o) = a.right.get_inner_expression() {
                            for p in &o.properties {
                                if let ObjectPropertyKind::ObjectProperty(p) = p {
                                    if let (Some(key), Some(i)) =
                                        (p.key.static_name(), function_of(&p.value))
                                    {
                                        exports.push((key.to_string(), i));
                                    }
                                }
                            }
                        } else if let Some(i) = function_of(&a.right) {
                            exports.push(("default".to_string(), i));
                        }
                    } else if object == "exports" || object == "module.exports" {
                        if let Some(i) = function_of(&a.right) {
                            exports.push((name, i));
                        }
                    }
                }
                _ => {}
            }
        }
        self.facts.exports = exports;
    }

    /// A write to a collection (`cache.set(k, v)`, `list.push(x)`, `obj[k] = v`); a literal
    /// key (`flags.set('ready', …)`) writes one entry, not one per call.
    fn write(&mut self, id: &IdentifierReference, s: oxc_span::Span, key: Option<&Expression>) {
        let Some(sym) = self.symbol_of(id) else {
            return;
        };
        let literal_key = key.is_some_and(|k| {
            literal_string(k).is_some() || matches!(k, Expression::NumericLiteral(_))
        });
        self.facts.writes.push(Write {
            symbol: sym,
            span: span(s),
            literal_key,
            func: self.func(),
        });
        self.accounted.push((id.span.start, id.span.end));
    }

    /// `setInterval(…)` / `setTimeout(…)`, its handle kept by the parent or found here.
    fn timer(&mut self, call: &CallExpression<'_>, interval: bool, parent_kept: Option<Handle>) {
        let handle = parent_kept.unwrap_or_else(|| self.default_handle(call));
        self.facts.timers.push(Timer {
            span: span(call.span),
            interval,
            handle,
            unref_chained: false,
            func: self.func(),
        });
    }

    fn push_client(&mut self, found: Found) {
        let lazy = self.lazy > 0;
        self.facts.clients.push((found, lazy));
    }

    /// The enclosing function (not the current one) whose body declares `symbol`.
    fn declaring_function(&self, symbol: SymbolId) -> Option<usize> {
        let declared = self.scoping.symbol_scope_id(symbol);
        let within = |f: usize| {
            self.facts.functions[f]
                .scope
                .is_some_and(|fs| self.scoping.scope_ancestors(declared).any(|a| a == fs))
        };
        let current = self.func()?;
        if within(current) {
            return None;
        }
        let mut f = self.facts.functions[current].parent;
        while let Some(i) = f {
            if within(i) {
                return Some(i);
            }
            f = self.facts.functions[i].parent;
        }
        None
    }

    fn is_root(&self, symbol: SymbolId) -> bool {
        self.scoping.symbol_scope_id(symbol) == self.scoping.root_scope_id()
    }

    fn is_global(&self, id: &IdentifierReference, name: &str) -> bool {
        id.name.as_str() == name && self.symbol_of(id).is_none()
    }

    /// A handle expression: a variable or a member.
    fn handle_of(&self, e: &Expression) -> Handle {
        match e.get_inner_expression() {
            Expression::Identifier(id) => match self.symbol_of(id) {
                Some(s) => Handle::Symbol(s),
                None => Handle::Unknown,
            },
            Expression::StaticMemberExpression(m) => Handle::Member(m.property.name.to_string()),
            _ => Handle::Unknown,
        }
    }

    fn account(&mut self, e: &Expression) {
        if let Expression::Identifier(id) = e.get_inner_expression() {
            self.accounted.push((id.span.start, id.span.end));
        }
    }

    fn new_function(
        &mut self,
        s: oxc_span::Span,
        params: &FormalParameters,
        symbol: Option<SymbolId>,
        scope: Option<ScopeId>,
    ) {
        let names: Vec<String> = params
            .items
            .iter()
            .filter_map(|p| match &p.pattern {
                BindingPattern::BindingIdentifier(b) => Some(b.name.to_string()),
                _ => None,
            })
            .collect();
        for p in &params.items {
            if let BindingPattern::BindingIdentifier(b) = &p.pattern {
                if let Some(sym) = b.symbol_id.get() {
                    self.param_symbols.insert(sym);
                }
            }
        }
        let first_two: Vec<&str> = names.iter().take(2).map(String::as_str).collect();
        let request_params = matches!(
            first_two.as_slice(),
            ["req", "res"]
                | ["request", "response"]
                | ["request", "reply"]
                | ["req", "reply"]
                | ["ctx", "next"]
        );
        let info = FunctionInfo {
            scope,
            parent: self.func(),
            inline_repeated: self.pending_repeated.take(),
            repeat_emitter: self.pending_emitter.take(),
            symbol: symbol.or_else(|| self.pending_symbol.take()),
            request_params,
            span: span(s),
        };
        self.facts.functions.push(info);
        self.stack.push(self.facts.functions.len() - 1);
        self.conditional.push(0);
        self.lazy_saved.push(std::mem::take(&mut self.lazy));
    }

    fn end_function(&mut self) {
        self.stack.pop();
        self.conditional.pop();
        self.lazy = self.lazy_saved.pop().unwrap_or(0);
    }

    fn in_conditional(&self) -> bool {
        self.conditional.last().is_some_and(|d| *d > 0)
    }

    fn on_call(&mut self, call: &CallExpression<'_>, parent_kept: Option<Handle>) {
        let callee = call.callee.get_inner_expression();
        if let Expression::Identifier(id) = callee {
            if let Some(sym) = self.symbol_of(id) {
                self.facts.calls.push((self.func(), sym));
            }
        }
        self.imported_call(call);
        // Plain calls: timers, clears, require, knex/createClient…
        if let Expression::Identifier(id) = callee {
            let name = id.name.as_str();
            let global = self.symbol_of(id).is_none();
            match name {
                "setInterval" | "setTimeout" if global => {
                    self.timer(call, name == "setInterval", parent_kept.clone());
                }
                "clearInterval" | "clearTimeout" if global => {
                    if let Some(arg) = call.arguments.first().and_then(|a| a.as_expression()) {
                        let h = self.handle_of(arg);
                        self.account(arg);
                        self.facts.cleared.push(h);
                    }
                }
                "require" if global => {
                    if let Some(m) = call
                        .arguments
                        .first()
                        .and_then(|a| a.as_expression())
                        .and_then(literal_string)
                    {
                        self.facts.imports.push(m.to_string());
                    }
                }
                "createClient" | "knex" | "createPool" | "createConnection"
                    if self.func().is_some()
                        && match name {
                            "createClient" => self.facts.imports_any(&["redis", "@redis/client"]),
                            "knex" => self.facts.imports_any(&["knex"]),
                            _ => self.facts.imports_any(&["mysql", "mysql2"]),
                        } =>
                {
                    self.push_client(Found {
                        span: span(call.span),
                        what: format!("{name}()"),
                        func: self.func(),
                    });
                }
                "readFileSync" => self.read_file_sync(call),
                _ => {}
            }
            if let Some(why) = callback_repetition(call) {
                self.mark_callbacks(call, why);
            }
            return;
        }
        let Expression::StaticMemberExpression(member) = callee else {
            return;
        };
        let method = member.property.name.as_str();
        let object = member.object.get_inner_expression();
        let object_text = self.text(object.span()).to_string();
        match method {
            "unref" | "close" | "ref" | "refresh" | "hasRef" => {
                // timer.unref() / this.timer.unref(); setInterval(...).unref() is handled by
                // the caller, which sees the inner call.
                let h = self.handle_of(object);
                self.account(object);
                if method == "unref" || method == "close" {
                    self.facts.unrefd.push(h);
                }
            }
            "setInterval" | "setTimeout"
                if matches!(
                    object_text.as_str(),
                    "global" | "globalThis" | "window" | "timers"
                ) =>
            {
                self.timer(call, method == "setInterval", parent_kept);
            }
            "on" | "addListener" | "addEventListener" | "prependListener" => {
                self.listener(call, member, object, &object_text)
            }
            "off" | "removeListener" | "removeEventListener" | "removeAllListeners" => {
                let event = call
                    .arguments
                    .first()
                    .and_then(|a| a.as_expression())
                    .and_then(literal_string)
                    .map(str::to_string);
                let handler = call
                    .arguments
                    .get(1)
                    .and_then(|a| a.as_expression())
                    .map_or(Handle::Unknown, |h| self.handle_of(h));
                self.facts.removals.push(Removal {
                    emitter: object_text.clone(),
                    event,
                    handler,
                    all: method == "removeAllListeners",
                });
            }
            "set" | "add" | "push" | "unshift" => {
                if let Expression::Identifier(id) = object {
                    let key = call.arguments.first().and_then(|a| a.as_expression());
                    self.write(id, call.span, key.filter(|_| method == "set"));
                }
            }
            "delete" | "clear" | "splice" | "shift" | "pop" | "evict" | "prune" => {
                if let Expression::Identifier(id) = object {
                    if let Some(sym) = self.symbol_of(id) {
                        self.facts.bounded.push(sym);
                    }
                }
            }
            "json" | "urlencoded" | "raw" | "text"
                if matches!(
                    object_text.as_str(),
                    "express" | "bodyParser" | "bodyparser"
                ) =>
            {
                self.body_limit(call)
            }
            "connect" | "createConnection"
                if object_text == "mongoose" && self.func().is_some() =>
            {
                self.push_client(Found {
                    span: span(call.span),
                    what: format!("mongoose.{method}()"),
                    func: self.func(),
                });
            }
            "createPool" | "createConnection" | "createClient"
                if self.func().is_some()
                    && matches!(object_text.as_str(), "mysql" | "mysql2" | "redis") =>
            {
                self.push_client(Found {
                    span: span(call.span),
                    what: format!("{object_text}.{method}()"),
                    func: self.func(),
                });
            }
            "readFileSync" if object_text == "fs" => self.read_file_sync(call),
            _ => {}
        }
        if let Some(why) = callback_repetition(call) {
            self.mark_callbacks(call, why);
        }
    }

    /// A call not kept by its parent: discarded when it is a statement of its own,
    /// else used some way memfit does not follow.
    fn default_handle(&self, call: &CallExpression<'_>) -> Handle {
        if self.statement_call == Some((call.span.start, call.span.end)) {
            Handle::Discarded
        } else {
            Handle::Unknown
        }
    }

    fn mark_callbacks(&mut self, call: &CallExpression<'_>, why: &str) {
        for arg in &call.arguments {
            if let Some(Expression::Identifier(id)) =
                arg.as_expression().map(|e| e.get_inner_expression())
            {
                if let Some(sym) = self.symbol_of(id) {
                    self.facts.repeated_symbols.push((sym, why.to_string()));
                }
            }
        }
    }

    fn listener(
        &mut self,
        call: &CallExpression<'_>,
        member: &StaticMemberExpression<'_>,
        object: &Expression<'_>,
        object_text: &str,
    ) {
        let long_lived = match object {
            Expression::Identifier(id) => {
                ["process", "window", "document"]
                    .iter()
                    .any(|g| self.is_global(id, g))
                    || self.symbol_of(id).is_some_and(|s| self.is_root(s))
            }
            Expression::StaticMemberExpression(m) => match m.object.get_inner_expression() {
                Expression::Identifier(id) => {
                    self.symbol_of(id).is_some_and(|s| self.is_root(s))
                        || self.is_global(id, "process")
                }
                _ => false,
            },
            _ => false,
        };
        let event = call
            .arguments
            .first()
            .and_then(|a| a.as_expression())
            .and_then(literal_string)
            .map(str::to_string);
        let handler_expr = call.arguments.get(1).and_then(|a| a.as_expression());
        let inline_handler = handler_expr.is_some_and(|h| {
            matches!(
                h.get_inner_expression(),
                Expression::ArrowFunctionExpression(_) | Expression::FunctionExpression(_)
            )
        });
        let handler = handler_expr.map_or(Handle::Unknown, |h| self.handle_of(h));
        let outer_from = match object {
            Expression::Identifier(id) if !long_lived => self.symbol_of(id).and_then(|s| {
                let k = self.declaring_function(s)?;
                self.repeats_within(k, s).then_some(k)
            }),
            _ => None,
        };
        let once_option = call.arguments.get(2).is_some_and(|o| {
            let t = self.text(o.span());
            t.contains("once") || t.contains("signal")
        });
        let _ = member;
        self.facts.listeners.push(Listener {
            span: span(call.span),
            emitter: object_text.to_string(),
            long_lived,
            event: event.clone(),
            handler,
            inline_handler,
            once_option,
            conditional: self.in_conditional(),
            func: self.func(),
            outer_from,
        });
        // Chunks of a request body kept in a 'data' handler with no byte cap.
        let request_stream = matches!(
            object_text,
            "req" | "request" | "req.raw" | "request.raw" | "ctx.req" | "stream" | "upload"
        );
        if event.as_deref() == Some("data") && request_stream {
            // `function readBody(req) { req.on('data', …) }`: a request handed to a helper.
            let body_reader = match object {
                Expression::Identifier(id) if matches!(object_text, "req" | "request") => self
                    .symbol_of(id)
                    .is_some_and(|s| self.param_symbols.contains(&s)),
                _ => false,
            };
            if let Some(h) = handler_expr {
                self.data_handler(h, body_reader);
            }
        }
    }

    fn data_handler(&mut self, handler: &Expression<'_>, body_reader: bool) {
        let (params, body_span) = match handler.get_inner_expression() {
            Expression::ArrowFunctionExpression(f) => (&f.params, f.body.span()),
            Expression::FunctionExpression(f) => match &f.body {
                Some(b) => (&f.params, b.span),
                None => return,
            },
            _ => return,
        };
        let Some(BindingPattern::BindingIdentifier(p)) = params.items.first().map(|p| &p.pattern)
        else {
            return;
        };
        let name = p.name.as_str();
        let body = self.text(body_span);
        let keeps = body.contains(&format!(".push({name})"))
            || body.contains(&format!("+= {name}"))
            || body.contains(&format!("+={name}"));
        let capped = [
            "length",
            "byteLength",
            "size",
            "limit",
            "max",
            "destroy",
            "abort",
            "pause",
        ]
        .iter()
        .any(|w| body.contains(w));
        if keeps && !capped {
            self.facts.data_buffers.push((
                Found {
                    span: span(handler.span()),
                    what: name.to_string(),
                    func: self.func(),
                },
                body_reader,
            ));
        }
    }

    fn body_limit(&mut self, call: &CallExpression<'_>) {
        let Some(Expression::ObjectExpression(options)) = call
            .arguments
            .first()
            .and_then(|a| a.as_expression())
            .map(|e| e.get_inner_expression())
        else {
            return;
        };
        for property in &options.properties {
            let ObjectPropertyKind::ObjectProperty(p) = property else {
                continue;
            };
            if p.key.static_name().is_some_and(|k| k == "limit") {
                let value = match p.value.get_inner_expression() {
                    Expression::StringLiteral(s) => parse_limit(s.value.as_str()),
                    Expression::NumericLiteral(n) => Some(n.value as u64),
                    _ => None,
                };
                if let Some(bytes) = value {
                    let text = self.text(p.value.span()).to_string();
                    self.facts.body_limits.push((span(call.span), bytes, text));
                }
            }
        }
    }

    fn read_file_sync(&mut self, call: &CallExpression<'_>) {
        if let Some(arg) = call.arguments.first() {
            let t = self.text(arg.span());
            if ["req.", "request.", "params", "query", "body"]
                .iter()
                .any(|w| t.contains(w))
            {
                self.facts.read_file_sync.push(Found {
                    span: span(call.span),
                    what: t.to_string(),
                    func: self.func(),
                });
            }
        }
    }
}

impl<'a> Visit<'a> for Collector<'_> {
    fn visit_program(&mut self, it: &Program<'a>) {
        walk::walk_program(self, it);
    }

    fn visit_expression_statement(&mut self, it: &ExpressionStatement<'a>) {
        let inner = it.expression.get_inner_expression();
        let call = match inner {
            Expression::CallExpression(c) => match c.callee.get_inner_expression() {
                // setInterval(...).unref(); as a statement: the inner call is the timer.
                Expression::StaticMemberExpression(m) if m.property.name == "unref" => {
                    match m.object.get_inner_expression() {
                        Expression::CallExpression(inner) => Some(inner.span),
                        _ => Some(c.span),
                    }
                }
                _ => Some(c.span),
            },
            _ => None,
        };
        let saved = self.statement_call;
        self.statement_call = call.map(|s| (s.start, s.end));
        walk::walk_expression_statement(self, it);
        self.statement_call = saved;
    }

    fn visit_import_declaration(&mut self, it: &ImportDeclaration<'a>) {
        self.facts.imports.push(it.source.value.to_string());
        walk::walk_import_declaration(self, it);
    }

    fn visit_function(&mut self, it: &Function<'a>, flags: ScopeFlags) {
        let symbol = it.id.as_ref().and_then(|id| id.symbol_id.get());
        self.new_function(it.span, &it.params, symbol, it.scope_id.get());
        walk::walk_function(self, it, flags);
        self.end_function();
    }

    fn visit_arrow_function_expression(&mut self, it: &ArrowFunctionExpression<'a>) {
        self.new_function(it.span, &it.params, None, it.scope_id.get());
        walk::walk_arrow_function_expression(self, it);
        self.end_function();
    }

    fn visit_if_statement(&mut self, it: &IfStatement<'a>) {
        self.visit_expression(&it.test);
        if let Some(d) = self.conditional.last_mut() {
            *d += 1;
        }
        self.visit_statement(&it.consequent);
        if let Some(alt) = &it.alternate {
            self.visit_statement(alt);
        }
        if let Some(d) = self.conditional.last_mut() {
            *d -= 1;
        }
    }

    fn visit_variable_declarator(&mut self, it: &VariableDeclarator<'a>) {
        let symbol = match &it.id {
            BindingPattern::BindingIdentifier(b) => b.symbol_id.get(),
            _ => None,
        };
        if let (Some(sym), Some(init)) = (symbol, &it.init) {
            let inner = init.get_inner_expression();
            // Module-level collections.
            if self.stack.is_empty() && self.is_root(sym) {
                let kind = match inner {
                    Expression::NewExpression(n) => match n.callee.get_inner_expression() {
                        Expression::Identifier(c) if c.name == "Map" => Some("Map"),
                        Expression::Identifier(c) if c.name == "Set" => Some("Set"),
                        _ => None,
                    },
                    Expression::ArrayExpression(a) if a.elements.is_empty() => Some("array"),
                    Expression::ObjectExpression(o) if o.properties.is_empty() => Some("object"),
                    _ => None,
                };
                if let Some(kind) = kind {
                    let name = match &it.id {
                        BindingPattern::BindingIdentifier(b) => b.name.to_string(),
                        _ => String::new(),
                    };
                    self.facts.collections.push(Collection {
                        symbol: sym,
                        name,
                        span: span(it.span),
                        kind,
                    });
                }
            }
            match inner {
                Expression::CallExpression(call) if matches!(call.callee.get_inner_expression(), Expression::StaticMemberExpression(m) if m.property.name == "unref") =>
                {
                    self.visit_call_expression(call);
                    return;
                }
                Expression::CallExpression(call) => {
                    self.on_call(call, Some(Handle::Symbol(sym)));
                    // Visit the rest without recording the call again.
                    self.visit_expression(&call.callee);
                    self.visit_call_arguments(call);
                    return;
                }
                Expression::ArrowFunctionExpression(_) | Expression::FunctionExpression(_) => {
                    self.pending_symbol = Some(sym);
                }
                _ => {}
            }
        }
        walk::walk_variable_declarator(self, it);
        self.pending_symbol = None;
    }

    fn visit_logical_expression(&mut self, it: &LogicalExpression<'a>) {
        self.visit_expression(&it.left);
        self.lazy += 1;
        self.visit_expression(&it.right);
        self.lazy -= 1;
    }

    fn visit_conditional_expression(&mut self, it: &ConditionalExpression<'a>) {
        self.visit_expression(&it.test);
        self.lazy += 1;
        self.visit_expression(&it.consequent);
        self.visit_expression(&it.alternate);
        self.lazy -= 1;
    }

    fn visit_assignment_expression(&mut self, it: &AssignmentExpression<'a>) {
        let outlives = it.operator.is_logical()
            || match &it.left {
                AssignmentTarget::AssignmentTargetIdentifier(id) => self
                    .symbol_of(id)
                    .is_some_and(|s| self.is_root(s) || self.declaring_function(s).is_some()),
                AssignmentTarget::StaticMemberExpression(_)
                | AssignmentTarget::ComputedMemberExpression(_) => true,
                _ => false,
            };
        if outlives {
            self.lazy += 1;
        }
        self.visit_assignment_expression_inner(it);
        if outlives {
            self.lazy -= 1;
        }
    }
    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        // setInterval(...).unref(): the timer is unref'd where it is made.
        if let Expression::StaticMemberExpression(m) = it.callee.get_inner_expression() {
            if m.property.name == "unref" {
                if let Expression::CallExpression(inner) = m.object.get_inner_expression() {
                    self.on_call(inner, Some(Handle::Unknown));
                    if let Some(t) = self.facts.timers.last_mut() {
                        if t.span == span(inner.span) {
                            t.unref_chained = true;
                        }
                    }
                    self.visit_expression(&inner.callee);
                    self.visit_call_arguments(inner);
                    return;
                }
            }
        }
        // A call whose value is returned, passed or stored is handled by its parent; here
        // the value is used some other way (an argument, a return): not followable.
        self.on_call(it, None);
        self.visit_expression(&it.callee);
        self.visit_call_arguments(it);
    }

    fn visit_new_expression(&mut self, it: &NewExpression<'a>) {
        if self.func().is_some() {
            let name = match it.callee.get_inner_expression() {
                Expression::Identifier(id) => Some(id.name.to_string()),
                Expression::StaticMemberExpression(m) => Some(m.property.name.to_string()),
                _ => None,
            };
            if let Some(name) = name {
                let client = match name.as_str() {
                    "PrismaClient" | "MongoClient" | "Sequelize" => true,
                    "Pool" | "Client" => {
                        self.facts
                            .imports_any(&["pg", "mysql2", "@neondatabase/serverless"])
                            || self.text(it.callee.span()).starts_with("pg.")
                    }
                    "Redis" | "IORedis" | "Cluster" => {
                        self.facts.imports_any(&["ioredis", "redis"])
                    }
                    _ => false,
                };
                if client {
                    self.push_client(Found {
                        span: span(it.span),
                        what: format!("new {name}()"),
                        func: self.func(),
                    });
                }
            }
        }
        walk::walk_new_expression(self, it);
    }

    fn visit_unary_expression(&mut self, it: &UnaryExpression<'a>) {
        // delete cache[key]
        if it.operator == UnaryOperator::Delete {
            if let Some(member) = it.argument.as_member_expression() {
                if let Expression::Identifier(id) = member.object().get_inner_expression() {
                    if let Some(sym) = self.symbol_of(id) {
                        self.facts.bounded.push(sym);
                    }
                }
            }
        }
        walk::walk_unary_expression(self, it);
    }

    fn visit_binary_expression(&mut self, it: &BinaryExpression<'a>) {
        // cache.size > N, list.length >= MAX: a bound.
        if it.operator.is_compare() {
            for side in [&it.left, &it.right] {
                if let Expression::StaticMemberExpression(m) = side.get_inner_expression() {
                    if m.property.name == "size" || m.property.name == "length" {
                        if let Expression::Identifier(id) = m.object.get_inner_expression() {
                            if let Some(sym) = self.symbol_of(id) {
                                self.facts.bounded.push(sym);
                            }
                        }
                    }
                }
            }
        }
        walk::walk_binary_expression(self, it);
    }

    fn visit_return_statement(&mut self, it: &ReturnStatement<'a>) {
        if let Some(arg) = &it.argument {
            if let Expression::CallExpression(call) = arg.get_inner_expression() {
                self.on_call(call, Some(Handle::Unknown));
                self.visit_expression(&call.callee);
                self.visit_call_arguments(call);
                return;
            }
        }
        walk::walk_return_statement(self, it);
    }

    fn visit_identifier_reference(&mut self, it: &IdentifierReference<'a>) {
        if let Some(sym) = self.symbol_of(it) {
            self.references.push((sym, it.span.start, it.span.end));
        }
    }
}

impl<'a> Collector<'_> {
    fn visit_assignment_expression_inner(&mut self, it: &AssignmentExpression<'a>) {
        let target: Option<Handle> = match &it.left {
            AssignmentTarget::StaticMemberExpression(m) => {
                Some(Handle::Member(m.property.name.to_string()))
            }
            AssignmentTarget::AssignmentTargetIdentifier(id) => {
                self.symbol_of(id).map(Handle::Symbol)
            }
            _ => None,
        };
        // obj[key] = value on a module-level object or array.
        if let AssignmentTarget::ComputedMemberExpression(m) = &it.left {
            if let Expression::Identifier(id) = m.object.get_inner_expression() {
                self.write(id, it.span, Some(&m.expression));
            }
        }
        // Reassigning a collection (`cache = new Map()`) or its length bounds it.
        if let Some(Handle::Symbol(sym)) = &target {
            self.facts.bounded.push(*sym);
        }
        if let AssignmentTarget::StaticMemberExpression(m) = &it.left {
            if m.property.name == "length" {
                if let Expression::Identifier(id) = m.object.get_inner_expression() {
                    if let Some(sym) = self.symbol_of(id) {
                        self.facts.bounded.push(sym);
                    }
                }
            }
        }
        if let (Some(handle), Expression::CallExpression(call)) =
            (target, it.right.get_inner_expression())
        {
            self.on_call(call, Some(handle));
            self.visit_assignment_target(&it.left);
            self.visit_expression(&call.callee);
            self.visit_call_arguments(call);
            return;
        }
        walk::walk_assignment_expression(self, it);
    }

    fn visit_call_arguments(&mut self, call: &CallExpression<'a>) {
        // The same judgement as for named callbacks: a route needs a path, once-events and
        // lifecycle events do not repeat.
        let why = callback_repetition(call);
        // The emitter whose events repeat the callback: `proxy` in `proxy.on('proxyReq', …)`.
        let emitter = match call.callee.get_inner_expression() {
            Expression::StaticMemberExpression(m) => match m.object.get_inner_expression() {
                Expression::Identifier(id) => self.symbol_of(id),
                _ => None,
            },
            _ => None,
        };
        for arg in &call.arguments {
            let is_fn = arg.as_expression().is_some_and(|e| {
                matches!(
                    e.get_inner_expression(),
                    Expression::ArrowFunctionExpression(_) | Expression::FunctionExpression(_)
                )
            });
            if is_fn {
                self.pending_repeated = why.map(str::to_string);
                self.pending_emitter = emitter;
            }
            self.visit_argument(arg);
            self.pending_repeated = None;
            self.pending_emitter = None;
        }
    }
}

/// Whether a file can give any source rule something to report; most files of a large tree
/// cannot, and are not parsed at all. Every rule needs a timer, or a function that runs
/// repeatedly (an event, route or request handler) together with what it reports.
pub fn worth_parsing(source: &str) -> bool {
    if source.contains("setInterval") {
        return true;
    }
    // A module that exports what leaks when called per request (a client factory, a
    // `subscribe` that adds a listener, a `remember` that fills a module Map): its callers in
    // other modules may run it per request (`context::link_modules`).
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

/// Parses and analyses one file; empty facts when it does not parse.
pub fn analyze(path: &std::path::Path, source: &str) -> JsFacts {
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
pub fn analyze_all(path: &std::path::Path, source: &str) -> JsFacts {
    let allocator = Allocator::default();
    let source_type = SourceType::from_path(path).unwrap_or_default();
    let parsed = Parser::new(&allocator, source, source_type).parse();
    if parsed.panicked || !parsed.diagnostics.is_empty() {
        return JsFacts::default();
    }
    let semantic = SemanticBuilder::new()
        .with_build_nodes(false)
        .build(&parsed.program)
        .semantic;
    let scoping = semantic.scoping();
    let mut collector = Collector {
        source,
        scoping,
        facts: JsFacts {
            parsed: true,
            ..JsFacts::default()
        },
        stack: Vec::new(),
        pending_repeated: None,
        pending_emitter: None,
        param_symbols: Default::default(),
        lazy: 0,
        lazy_saved: Vec::new(),
        import_bindings: Default::default(),
        pending_symbol: None,
        accounted: Vec::new(),
        references: Vec::new(),
        conditional: Vec::new(),
        statement_call: None,
    };
    // Imports first, so `new Pool()` knows where Pool comes from.
    for stmt in &parsed.program.body {
        if let Statement::ImportDeclaration(i) = stmt {
            collector.facts.imports.push(i.source.value.to_string());
        }
    }
    collector.collect_import_bindings(&parsed.program);
    collector.visit_program(&parsed.program);
    collector.collect_exports(&parsed.program);
    // Next.js App Router: `export async function GET(request)` in `route.ts` runs per request.
    if path.file_stem().is_some_and(|s| s == "route") {
        let facts = &mut collector.facts;
        for (name, i) in &facts.exports {
            if matches!(
                name.as_str(),
                "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
            ) {
                facts
                    .external_repeated
                    .push((*i, "a Next.js route handler".to_string()));
            }
        }
    }
    collector.facts.propagate_calls();
    // A symbol referenced other than where memfit accounted for it (and other than its
    // declaration) escapes.
    let accounted: std::collections::HashSet<(u32, u32)> =
        collector.accounted.iter().copied().collect();
    // Only the symbols a rule asks about (timer handles) need the check.
    let handles: std::collections::HashSet<SymbolId> = collector
        .facts
        .timers
        .iter()
        .filter_map(|t| match t.handle {
            Handle::Symbol(s) => Some(s),
            _ => None,
        })
        .collect();
    let mut escaped = Vec::new();
    for (sym, start, end) in &collector.references {
        if handles.contains(sym) && !accounted.contains(&(*start, *end)) {
            escaped.push(*sym);
        }
    }
    escaped.sort_unstable();
    escaped.dedup();
    collector.facts.escaped = escaped;
    collector.facts
}
