//! What a module imports (local names bound to other modules, and the calls through them)
//! and which of its functions it exports: what `link` follows across files.

use oxc_ast::ast::*;
use oxc_semantic::SymbolId;
use oxc_span::GetSpan;

use super::{first_string_argument, Collector};
use crate::js::facts::*;
use crate::js::span;

/// How a local name is bound to a relative module.
#[derive(Debug, Clone)]
pub(super) enum ImportBinding {
    Named(String, String),
    Namespace(String),
}

impl Collector<'_> {
    /// `db()` with `import { db } from './db'`, `lib.db()` with `const lib = require('./lib')`.
    pub(super) fn imported_call(&mut self, call: &CallExpression<'_>) {
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
    pub(super) fn collect_import_bindings(&mut self, program: &Program<'_>) {
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
                        let (true, Some(spec)) = (is_require, first_string_argument(call)) else {
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
    pub(super) fn collect_exports(&mut self, program: &Program<'_>) {
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
        let mut exports: Vec<Export> = Vec::new();
        for stmt in &program.body {
            match stmt {
                Statement::ExportDeclaration(e) => match &e.declaration {
                    Declaration::FunctionDeclaration(f) => {
                        if let (Some(id), Some(i)) = (&f.id, by_span(f.span)) {
                            exports.push(Export {
                                name: id.name.to_string(),
                                function: i,
                            });
                        }
                    }
                    Declaration::VariableDeclaration(v) => {
                        for d in &v.declarations {
                            if let (BindingPattern::BindingIdentifier(b), Some(init)) =
                                (&d.id, &d.init)
                            {
                                if let Some(i) = function_of(init) {
                                    exports.push(Export {
                                        name: b.name.to_string(),
                                        function: i,
                                    });
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
                                exports.push(Export {
                                    name: sp.exported.name().to_string(),
                                    function: i,
                                });
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
                        exports.push(Export {
                            name: "default".to_string(),
                            function: i,
                        });
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
                                        exports.push(Export {
                                            name: key.to_string(),
                                            function: i,
                                        });
                                    }
                                }
                            }
                        } else if let Some(i) = function_of(&a.right) {
                            exports.push(Export {
                                name: "default".to_string(),
                                function: i,
                            });
                        }
                    } else if object == "exports" || object == "module.exports" {
                        if let Some(i) = function_of(&a.right) {
                            exports.push(Export { name, function: i });
                        }
                    }
                }
                _ => {}
            }
        }
        self.facts.exports = exports;
    }
}
