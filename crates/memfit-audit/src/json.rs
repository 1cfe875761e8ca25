//! JSON and JSONC (tsconfig) with the span of every value and key, on jsonc-parser's AST.

use jsonc_parser::ast;
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions};

use crate::dockerfile::Span;

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<JsonNode>),
    /// Entries in file order: (key, key span, value).
    Object(Vec<(String, Span, JsonNode)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct JsonNode {
    pub value: Json,
    pub span: Span,
}

impl JsonNode {
    pub fn get(&self, key: &str) -> Option<&JsonNode> {
        match &self.value {
            Json::Object(entries) => entries
                .iter()
                .rev()
                .find(|(k, _, _)| k == key)
                .map(|(_, _, v)| v),
            _ => None,
        }
    }

    /// The span of `"key"` in this object.
    pub fn key_span(&self, key: &str) -> Option<Span> {
        match &self.value {
            Json::Object(entries) => entries
                .iter()
                .rev()
                .find(|(k, _, _)| k == key)
                .map(|(_, s, _)| *s),
            _ => None,
        }
    }

    /// Follows a path of keys.
    pub fn at(&self, path: &[&str]) -> Option<&JsonNode> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, Span, JsonNode)] {
        match &self.value {
            Json::Object(entries) => entries,
            _ => &[],
        }
    }

    pub fn items(&self) -> &[JsonNode] {
        match &self.value {
            Json::Array(items) => items,
            _ => &[],
        }
    }
}

/// Parses JSON; `jsonc` allows comments and trailing commas (tsconfig.json).
pub fn parse(text: &str, jsonc: bool) -> Result<JsonNode, String> {
    let options = ParseOptions {
        allow_comments: jsonc,
        allow_loose_object_property_names: false,
        allow_trailing_commas: jsonc,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    let result = jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &options)
        .map_err(|e| e.to_string())?;
    let value = result
        .value
        .ok_or_else(|| "the file is empty".to_string())?;
    Ok(convert(&value))
}

fn span(range: jsonc_parser::common::Range) -> Span {
    Span::new(range.start, range.end)
}

fn convert(value: &ast::Value<'_>) -> JsonNode {
    let node = match value {
        ast::Value::NullKeyword(_) => Json::Null,
        ast::Value::BooleanLit(b) => Json::Bool(b.value),
        ast::Value::NumberLit(n) => Json::Number(n.value.to_string()),
        ast::Value::StringLit(s) => Json::String(s.value.to_string()),
        ast::Value::Array(a) => Json::Array(a.elements.iter().map(convert).collect()),
        ast::Value::Object(o) => Json::Object(
            o.properties
                .iter()
                .map(|p| {
                    (
                        p.name.as_str().to_string(),
                        span(p.name.range()),
                        convert(&p.value),
                    )
                })
                .collect(),
        ),
    };
    JsonNode {
        value: node,
        span: span(value.range()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_keys_and_values() {
        let text = "{\n  \"scripts\": { \"start\": \"node dist\" }\n}";
        let root = parse(text, false).unwrap();
        let start = root.at(&["scripts", "start"]).unwrap();
        assert_eq!(start.as_str(), Some("node dist"));
        assert_eq!(&text[start.span.start..start.span.end], "\"node dist\"");
        let key = root.get("scripts").unwrap().key_span("start").unwrap();
        assert_eq!(&text[key.start..key.end], "\"start\"");
    }

    #[test]
    fn jsonc_only_where_allowed() {
        let text = "{ // comment\n \"a\": 1, }";
        assert!(parse(text, false).is_err());
        assert!(parse(text, true).is_ok());
    }
}
