//! What a call means: a timer and what stops it, a listener and what removes it, a write
//! to a collection, a client, a body limit, a 'data' handler, a readFileSync; and whether
//! the callbacks it takes run repeatedly.

use oxc_ast::ast::*;
use oxc_span::GetSpan;

use super::{first_string_argument, literal_string, Collector};
use crate::js::facts::*;
use crate::js::span;
use crate::rules::{client_per_request, unbounded_buffer};

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
pub(super) fn callback_repetition(call: &CallExpression<'_>) -> Option<RepetitionKind> {
    let (name, member) = match call.callee.get_inner_expression() {
        Expression::StaticMemberExpression(m) => (m.property.name.as_str(), true),
        Expression::Identifier(id) => (id.name.as_str(), false),
        _ => return None,
    };
    if !member {
        return match name {
            "setInterval" => Some(RepetitionKind::IntervalCallback),
            "createServer" => Some(RepetitionKind::ServerHandler),
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
        RepetitionKind::RouteHandler => match first {
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
        RepetitionKind::EventHandler => match first.and_then(literal_string) {
            Some(event) if ONCE_EVENTS.contains(&event) || lifecycle_event(event) => None,
            _ => Some(why),
        },
        _ => Some(why),
    }
}

/// Methods that call their function argument repeatedly, and why.
fn repeated_caller(method: &str) -> Option<RepetitionKind> {
    Some(match method {
        "on" | "addListener" | "addEventListener" | "prependListener" => {
            RepetitionKind::EventHandler
        }
        "get" | "post" | "put" | "patch" | "delete" | "all" | "use" | "head" | "options"
        | "route" | "handle" => RepetitionKind::RouteHandler,
        "addHook" => RepetitionKind::RequestHook,
        "createServer" => RepetitionKind::ServerHandler,
        _ => return None,
    })
}

impl Collector<'_> {
    /// A write to a collection (`cache.set(k, v)`, `list.push(x)`, `obj[k] = v`); a literal
    /// key (`flags.set('ready', …)`) writes one entry, not one per call.
    pub(super) fn write(
        &mut self,
        id: &IdentifierReference,
        s: oxc_span::Span,
        key: Option<&Expression>,
    ) {
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

    /// A client made here: `call` as the message says it (`new Pool()`).
    pub(super) fn push_client(&mut self, s: oxc_span::Span, call: String) {
        self.facts.clients.push(Client {
            span: span(s),
            call,
            func: self.func(),
            lazy: self.lazy > 0,
        });
    }

    pub(super) fn on_call(&mut self, call: &CallExpression<'_>, parent_kept: Option<Handle>) {
        let callee = call.callee.get_inner_expression();
        if let Expression::Identifier(id) = callee {
            if let Some(sym) = self.symbol_of(id) {
                self.facts.calls.push(LocalCall {
                    caller: self.func(),
                    callee: sym,
                });
            }
        }
        self.imported_call(call);
        match callee {
            Expression::Identifier(id) => self.plain_call(call, id, parent_kept),
            Expression::StaticMemberExpression(member) => {
                self.method_call(call, member, parent_kept)
            }
            _ => return,
        }
        if let Some(why) = callback_repetition(call) {
            self.mark_callbacks(call, why);
        }
    }

    /// `name(…)`: timers, clears, require, clients, readFileSync.
    fn plain_call(
        &mut self,
        call: &CallExpression<'_>,
        id: &IdentifierReference<'_>,
        parent_kept: Option<Handle>,
    ) {
        let name = id.name.as_str();
        let global = self.symbol_of(id).is_none();
        match name {
            "setInterval" | "setTimeout" if global => {
                self.timer(call, name == "setInterval", parent_kept);
            }
            "clearInterval" | "clearTimeout" if global => {
                if let Some(arg) = call.arguments.first().and_then(|a| a.as_expression()) {
                    let h = self.handle_of(arg);
                    self.account(arg);
                    self.facts.cleared.push(h);
                }
            }
            "require" if global => {
                if let Some(module) = first_string_argument(call) {
                    self.facts.imports.push(module.to_string());
                }
            }
            _ => {}
        }
        if self.makes_client(&client_per_request::Call::Function(name)) {
            self.push_client(call.span, format!("{name}()"));
        }
        if unbounded_buffer::reads_whole_file(None, name) {
            self.read_file_sync(call);
        }
    }

    /// `object.method(…)`: unref, timers, listeners and their removal, collection writes and
    /// bounds, body parsers, clients, readFileSync.
    fn method_call(
        &mut self,
        call: &CallExpression<'_>,
        member: &StaticMemberExpression<'_>,
        parent_kept: Option<Handle>,
    ) {
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
                self.listener(call, object, &object_text)
            }
            "off" | "removeListener" | "removeEventListener" | "removeAllListeners" => {
                let event = first_string_argument(call).map(str::to_string);
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
            _ => {}
        }
        if unbounded_buffer::is_body_parser(&object_text, method) {
            self.body_limit(call);
        }
        let client = client_per_request::Call::Method {
            object: &object_text,
            method,
        };
        if self.makes_client(&client) {
            self.push_client(call.span, format!("{object_text}.{method}()"));
        }
        if unbounded_buffer::reads_whole_file(Some(&object_text), method) {
            self.read_file_sync(call);
        }
    }

    /// A client made inside a function (at module scope it is made once).
    pub(super) fn makes_client(&self, call: &client_per_request::Call<'_>) -> bool {
        self.func().is_some()
            && client_per_request::makes_client(call, |modules| self.facts.imports_any(modules))
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

    fn mark_callbacks(&mut self, call: &CallExpression<'_>, why: RepetitionKind) {
        for arg in &call.arguments {
            if let Some(Expression::Identifier(id)) =
                arg.as_expression().map(|e| e.get_inner_expression())
            {
                if let Some(sym) = self.symbol_of(id) {
                    self.facts.repeated_symbols.push(RepeatedSymbol {
                        symbol: sym,
                        why: Repetition::new(why),
                    });
                }
            }
        }
    }

    fn listener(&mut self, call: &CallExpression<'_>, object: &Expression<'_>, object_text: &str) {
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
        let event = first_string_argument(call).map(str::to_string);
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
        let request_stream = unbounded_buffer::REQUEST_STREAMS.contains(&object_text);
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
        let capped = unbounded_buffer::BYTE_CAPS.iter().any(|w| body.contains(w));
        if keeps && !capped {
            self.facts.data_buffers.push(DataBuffer {
                span: span(handler.span()),
                chunk: name.to_string(),
                func: self.func(),
                body_reader,
            });
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
                    Expression::StringLiteral(s) => unbounded_buffer::parse_limit(s.value.as_str()),
                    Expression::NumericLiteral(n) => Some(n.value as u64),
                    _ => None,
                };
                if let Some(bytes) = value {
                    let text = self.text(p.value.span()).to_string();
                    self.facts.body_limits.push(BodyLimit {
                        span: span(call.span),
                        bytes,
                        text,
                    });
                }
            }
        }
    }

    fn read_file_sync(&mut self, call: &CallExpression<'_>) {
        if let Some(arg) = call.arguments.first() {
            let t = self.text(arg.span());
            if unbounded_buffer::REQUEST_DRIVEN_PATH
                .iter()
                .any(|w| t.contains(w))
            {
                self.facts.read_file_sync.push(ReadFileSync {
                    span: span(call.span),
                    path: t.to_string(),
                    func: self.func(),
                });
            }
        }
    }
}
