//! YAML (render.yaml, docker-compose, Kubernetes manifests, pnpm-lock.yaml) as a small tree
//! with the line of every node, on saphyr.

use saphyr::{MarkedYamlOwned, ScalarOwned, YamlDataOwned, YamlLoader};
use saphyr_parser::{Event, SpannedEventReceiver};

#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Null,
    /// Every scalar as its text (`true`, `512`, `"512mb"` → `512mb`).
    Scalar(String),
    Seq(Vec<YamlNode>),
    Map(Vec<(String, YamlNode)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct YamlNode {
    pub value: Yaml,
    /// 1-based line of the node (of its key, for map values: the value's own line).
    pub line: usize,
}

impl YamlNode {
    pub fn get(&self, key: &str) -> Option<&YamlNode> {
        match &self.value {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn at(&self, path: &[&str]) -> Option<&YamlNode> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Yaml::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn items(&self) -> &[YamlNode] {
        match &self.value {
            Yaml::Seq(items) => items,
            _ => &[],
        }
    }

    pub fn entries(&self) -> &[(String, YamlNode)] {
        match &self.value {
            Yaml::Map(entries) => entries,
            _ => &[],
        }
    }

    /// Every node of the tree, depth first.
    pub fn walk<'a>(&'a self, out: &mut Vec<&'a YamlNode>) {
        out.push(self);
        match &self.value {
            Yaml::Seq(items) => items.iter().for_each(|i| i.walk(out)),
            Yaml::Map(entries) => entries.iter().for_each(|(_, v)| v.walk(out)),
            _ => {}
        }
    }
}

/// The deepest nesting a reader accepts (YAML, and the trees memfit builds from it): far
/// beyond any real configuration, far below what a recursive walk can take on a thread's stack.
pub const MAX_DEPTH: usize = 256;

/// Parses every document of a YAML stream. A stream nested deeper than [`MAX_DEPTH`] (counting
/// what its aliases expand to) is an error, found on the parser's events as they come, before
/// the loader builds anything that deep. Nothing here recurses deeper than that.
pub fn parse(text: &str) -> Result<Vec<YamlNode>, String> {
    let mut receiver = Bounded {
        loader: YamlLoader::default(),
        open: Vec::new(),
        anchors: std::collections::HashMap::new(),
        too_deep: None,
    };
    // The events one by one: saphyr-parser's own `load` recurses once per level.
    for event in saphyr_parser::Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| e.to_string())?;
        receiver.on_event(event, span);
    }
    if let Some(line) = receiver.too_deep {
        return Err(too_deep(line));
    }
    if let Some(e) = receiver.loader.error() {
        return Err(e.to_string());
    }
    receiver
        .loader
        .into_documents()
        .iter()
        .map(|d| convert(d, 0))
        .collect()
}

fn too_deep(line: usize) -> String {
    format!("nested deeper than {MAX_DEPTH} levels (line {line})")
}

/// saphyr's loader behind a depth check: the height of every collection is known from the
/// events (no recursion), an alias counting as the height of the node it names. Past
/// [`MAX_DEPTH`] nothing more reaches the loader.
struct Bounded<'input> {
    loader: YamlLoader<'input, MarkedYamlOwned>,
    /// Per open collection: its anchor and the greatest height of its children so far.
    open: Vec<(usize, usize)>,
    anchors: std::collections::HashMap<usize, usize>,
    /// The line where the stream went too deep.
    too_deep: Option<usize>,
}

impl<'input> SpannedEventReceiver<'input> for Bounded<'input> {
    fn on_event(&mut self, event: Event<'input>, span: saphyr_parser::Span) {
        if self.too_deep.is_some() {
            return;
        }
        let height = match &event {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.open.push((*anchor, 0));
                (self.open.len() > MAX_DEPTH).then_some(0)
            }
            Event::SequenceEnd | Event::MappingEnd => self.open.pop().map(|(anchor, children)| {
                let height = children + 1;
                if anchor > 0 {
                    self.anchors.insert(anchor, height);
                }
                height
            }),
            Event::Alias(anchor) => Some(self.anchors.get(anchor).copied().unwrap_or(0)),
            _ => None,
        };
        if let Some(height) = height {
            if self.open.len() + height > MAX_DEPTH {
                self.too_deep = Some(span.start.line());
                return;
            }
            if let Some(parent) = self.open.last_mut() {
                parent.1 = parent.1.max(height);
            }
        }
        self.loader.on_event(event, span);
    }
}

fn scalar_text(s: &ScalarOwned) -> Option<String> {
    match s {
        ScalarOwned::Null => None,
        ScalarOwned::Boolean(b) => Some(b.to_string()),
        ScalarOwned::Integer(i) => Some(i.to_string()),
        ScalarOwned::FloatingPoint(f) => Some(f.to_string()),
        ScalarOwned::String(s) => Some(s.clone()),
    }
}

fn convert(node: &MarkedYamlOwned, depth: usize) -> Result<YamlNode, String> {
    let line = node.span.start.line();
    if depth > MAX_DEPTH {
        return Err(too_deep(line));
    }
    let value = match &node.data {
        YamlDataOwned::Value(s) => scalar_text(s).map_or(Yaml::Null, Yaml::Scalar),
        YamlDataOwned::Representation(text, _, _) => Yaml::Scalar(text.clone()),
        YamlDataOwned::Sequence(items) => Yaml::Seq(
            items
                .iter()
                .map(|i| convert(i, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        YamlDataOwned::Mapping(map) => Yaml::Map(
            map.iter()
                .map(|(k, v)| {
                    let key = match &k.data {
                        YamlDataOwned::Value(s) => scalar_text(s).unwrap_or_default(),
                        YamlDataOwned::Representation(text, _, _) => text.clone(),
                        _ => String::new(),
                    };
                    let mut value = convert(v, depth + 1)?;
                    if matches!(value.value, Yaml::Map(_) | Yaml::Seq(_) | Yaml::Null) {
                        value.line = k.span.start.line();
                    }
                    Ok((key, value))
                })
                .collect::<Result<_, String>>()?,
        ),
        YamlDataOwned::Tagged(_, inner) => return convert(inner, depth + 1),
        _ => Yaml::Null,
    };
    Ok(YamlNode { value, line })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_scalars() {
        let docs = parse("services:\n  - type: web\n    plan: starter\n    envVars:\n      - key: NODE_OPTIONS\n        value: --max-old-space-size=460\n---\nkind: Pod\n").unwrap();
        assert_eq!(docs.len(), 2);
        let service = &docs[0].get("services").unwrap().items()[0];
        let plan = service.get("plan").unwrap();
        assert_eq!(plan.as_str(), Some("starter"));
        assert_eq!(plan.line, 3);
        assert_eq!(docs[1].get("kind").unwrap().as_str(), Some("Pod"));
    }

    #[test]
    fn nesting_is_bounded_also_through_aliases() {
        let ok = format!("{}1\n", "- ".repeat(MAX_DEPTH - 1));
        assert!(parse(&ok).is_ok());
        let deep = format!("{}1\n", "- ".repeat(MAX_DEPTH + 1));
        assert!(parse(&deep).unwrap_err().contains("nested deeper"));
        // Far deeper, on a test thread's small stack: nothing recurses per level.
        let hostile = format!("{}1\n", "- ".repeat(100_000));
        assert!(parse(&hostile).unwrap_err().contains("nested deeper"));
        // Each anchor one level deeper than the last: shallow text, deep tree.
        let mut aliases = String::from("a0: &a0 [1]\n");
        for i in 1..=MAX_DEPTH + 1 {
            aliases.push_str(&format!("a{i}: &a{i} [*a{}]\n", i - 1));
        }
        assert!(parse(&aliases).unwrap_err().contains("nested deeper"));
    }
}
