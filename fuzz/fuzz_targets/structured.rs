//! The JSON/JSONC, YAML and TOML readers: the first byte picks the reader, the rest is the
//! file. Spans must lie in the text (code frames and fixes slice it with them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use memfit_audit::json::{self, Json, JsonNode};
use memfit_audit::yaml::{self, YamlNode};

fn walk_json(text: &str, node: &JsonNode) {
    assert!(
        text.get(node.span.start..node.span.end).is_some(),
        "JSON span {:?} does not slice a text of {} bytes",
        node.span,
        text.len()
    );
    let _ = (node.as_str(), node.as_bool(), node.get("scripts"));
    match &node.value {
        Json::Array(items) => items.iter().for_each(|i| walk_json(text, i)),
        Json::Object(entries) => {
            for (key, span, value) in entries {
                assert!(
                    text.get(span.start..span.end).is_some(),
                    "key span {span:?}"
                );
                let _ = node.key_span(key);
                walk_json(text, value);
            }
        }
        _ => {}
    }
}

fn walk_yaml(docs: &[YamlNode]) {
    for doc in docs {
        let mut nodes = Vec::new();
        doc.walk(&mut nodes);
        for node in nodes {
            let _ = (node.as_str(), node.items().len(), node.entries().len());
            let _ = node.at(&["services", "web"]);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 4 {
        0 => {
            if let Ok(node) = json::parse(&text, false) {
                walk_json(&text, &node);
            }
        }
        1 => {
            if let Ok(node) = json::parse(&text, true) {
                walk_json(&text, &node);
            }
        }
        2 => {
            if let Ok(docs) = yaml::parse(&text) {
                walk_yaml(&docs);
            }
        }
        _ => {
            if let Ok(doc) = toml_edit::Document::parse(text.into_owned()) {
                for (_, item) in doc.iter() {
                    if let Some(span) = item.span() {
                        assert!(doc.raw().get(span).is_some());
                    }
                }
            }
        }
    }
});
