//! The visitor: one walk over a file's AST (oxc_parser, oxc_semantic for scopes and
//! references) that records the facts of `facts.rs`. What a call means (a timer, a listener,
//! a write, a client) is in `calls.rs`; what the module imports and exports in `bindings.rs`.

mod bindings;
mod calls;

use oxc_allocator::Allocator;
use oxc_ast::ast::*;
use oxc_ast_visit::{walk, Visit};
use oxc_parser::Parser;
use oxc_semantic::{Scoping, SemanticBuilder, SymbolId};
use oxc_span::{GetSpan, SourceType};
use oxc_syntax::scope::{ScopeFlags, ScopeId};

use super::facts::*;
use super::span;
use crate::rules::client_per_request;
use bindings::ImportBinding;
use calls::callback_repetition;

/// Parses and visits one file; empty facts when it does not parse.
pub(super) fn collect(path: &std::path::Path, source: &str) -> JsFacts {
    if let Some(at) = super::depth::too_deep(source) {
        return JsFacts {
            problem: Some((
                format!(
                    "nested deeper than memfit reads ({} levels)",
                    super::depth::MAX_DEPTH
                ),
                super::ByteSpan::new(at, at),
            )),
            ..JsFacts::default()
        };
    }
    let allocator = Allocator::default();
    let source_type = SourceType::from_path(path).unwrap_or_default();
    let parsed = Parser::new(&allocator, source, source_type).parse();
    if parsed.panicked || !parsed.diagnostics.is_empty() {
        let (message, at) = match parsed.diagnostics.first() {
            Some(d) => (
                d.message.to_string(),
                d.labels.as_ref().first().map_or(0, |l| l.offset() as usize),
            ),
            None => ("the parser gave up".to_string(), 0),
        };
        return JsFacts {
            problem: Some((message, super::ByteSpan::new(at, at))),
            ..JsFacts::default()
        };
    }
    let semantic = SemanticBuilder::new()
        .with_build_nodes(false)
        .build(&parsed.program)
        .semantic;
    let mut collector = Collector::new(source, semantic.scoping());
    // Imports first, so `new Pool()` knows where Pool comes from.
    for stmt in &parsed.program.body {
        if let Statement::ImportDeclaration(i) = stmt {
            collector.facts.imports.push(i.source.value.to_string());
        }
    }
    collector.collect_import_bindings(&parsed.program);
    collector.visit_program(&parsed.program);
    collector.collect_exports(&parsed.program);
    if path.file_stem().is_some_and(|s| s == "route") {
        next_route_handlers(&mut collector.facts);
    }
    collector.facts.propagate_calls();
    collector.facts.escaped = collector.escaped_handles();
    collector.facts
}

/// Next.js App Router: `export async function GET(request)` in `route.ts` runs per request.
fn next_route_handlers(facts: &mut JsFacts) {
    for export in &facts.exports {
        if matches!(
            export.name.as_str(),
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
        ) {
            facts.external_repeated.push(RepeatedFunction {
                function: export.function,
                why: Repetition::new(RepetitionKind::NextRouteHandler),
            });
        }
    }
}

struct Collector<'s> {
    source: &'s str,
    scoping: &'s Scoping,
    facts: JsFacts,
    stack: Vec<usize>,
    /// Set while visiting a callback argument of a repeated caller.
    pending_repeated: Option<RepetitionKind>,
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
    fn new(source: &'s str, scoping: &'s Scoping) -> Collector<'s> {
        Collector {
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
        }
    }

    /// Timer handles referenced other than where memfit accounted for them (and other than
    /// their declaration): they escape. Only the symbols a rule asks about need the check.
    fn escaped_handles(&self) -> Vec<SymbolId> {
        let accounted: std::collections::HashSet<(u32, u32)> =
            self.accounted.iter().copied().collect();
        let handles: std::collections::HashSet<SymbolId> = self
            .facts
            .timers
            .iter()
            .filter_map(|t| match t.handle {
                Handle::Symbol(s) => Some(s),
                _ => None,
            })
            .collect();
        let mut escaped: Vec<SymbolId> = self
            .references
            .iter()
            .filter(|(sym, start, end)| {
                handles.contains(sym) && !accounted.contains(&(*start, *end))
            })
            .map(|(sym, _, _)| *sym)
            .collect();
        escaped.sort_unstable();
        escaped.dedup();
        escaped
    }

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
        let repetition = self
            .pending_repeated
            .take()
            .or(request_params.then_some(RepetitionKind::RequestParameters))
            .map(Repetition::new);
        let info = FunctionInfo {
            scope,
            parent: self.func(),
            repetition,
            repeat_emitter: self.pending_emitter.take(),
            symbol: symbol.or_else(|| self.pending_symbol.take()),
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
                        Expression::Identifier(c) if c.name == "Map" => Some(CollectionKind::Map),
                        Expression::Identifier(c) if c.name == "Set" => Some(CollectionKind::Set),
                        _ => None,
                    },
                    Expression::ArrayExpression(a) if a.elements.is_empty() => {
                        Some(CollectionKind::Array)
                    }
                    Expression::ObjectExpression(o) if o.properties.is_empty() => {
                        Some(CollectionKind::Object)
                    }
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
        let name = match it.callee.get_inner_expression() {
            Expression::Identifier(id) => Some(id.name.as_str()),
            Expression::StaticMemberExpression(m) => Some(m.property.name.as_str()),
            _ => None,
        };
        if let Some(name) = name {
            let client = client_per_request::Call::New {
                name,
                callee: self.text(it.callee.span()),
            };
            if self.makes_client(&client) {
                self.push_client(it.span, format!("new {name}()"));
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
                self.pending_repeated = why;
                self.pending_emitter = emitter;
            }
            self.visit_argument(arg);
            self.pending_repeated = None;
            self.pending_emitter = None;
        }
    }
}

/// The first argument of a call, when it is a literal string: an event name, a module.
fn first_string_argument<'a>(call: &'a CallExpression<'a>) -> Option<&'a str> {
    call.arguments
        .first()
        .and_then(|a| a.as_expression())
        .and_then(literal_string)
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
