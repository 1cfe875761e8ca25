//! YAML (render.yaml, docker-compose, Kubernetes manifests, pnpm-lock.yaml) as a small tree
//! with the line of every node, on saphyr.

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

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

/// Parses every document of a YAML stream.
pub fn parse(text: &str) -> Result<Vec<YamlNode>, String> {
    let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| e.to_string())?;
    Ok(docs.iter().map(convert).collect())
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

fn convert(node: &MarkedYamlOwned) -> YamlNode {
    let line = node.span.start.line();
    let value = match &node.data {
        YamlDataOwned::Value(s) => scalar_text(s).map_or(Yaml::Null, Yaml::Scalar),
        YamlDataOwned::Representation(text, _, _) => Yaml::Scalar(text.clone()),
        YamlDataOwned::Sequence(items) => Yaml::Seq(items.iter().map(convert).collect()),
        YamlDataOwned::Mapping(map) => Yaml::Map(
            map.iter()
                .map(|(k, v)| {
                    let key = match &k.data {
                        YamlDataOwned::Value(s) => scalar_text(s).unwrap_or_default(),
                        YamlDataOwned::Representation(text, _, _) => text.clone(),
                        _ => String::new(),
                    };
                    let mut value = convert(v);
                    if matches!(value.value, Yaml::Map(_) | Yaml::Seq(_) | Yaml::Null) {
                        value.line = k.span.start.line();
                    }
                    (key, value)
                })
                .collect(),
        ),
        YamlDataOwned::Tagged(_, inner) => return convert(inner),
        _ => Yaml::Null,
    };
    YamlNode { value, line }
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
}
