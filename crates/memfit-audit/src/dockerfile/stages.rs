//! Build stages: `FROM image AS name`, global ARGs, `FROM <stage>`, `COPY --from`, and which
//! stages end up in the image that ships.

use super::{Dockerfile, Instruction, Keyword};

/// One `FROM` and the instructions up to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// The alias, lower case (stage names are case-insensitive).
    pub name: Option<String>,
    /// The base image as written, with global ARG defaults substituted.
    pub base: String,
    /// The stage this one starts from (`FROM builder`).
    pub base_stage: Option<usize>,
    pub platform: Option<String>,
    /// Index of the FROM instruction in `Dockerfile::instructions`.
    pub from: usize,
    /// Indices of the stage's instructions after its FROM.
    pub body: std::ops::Range<usize>,
}

/// What `COPY --from=X` or `FROM X` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageRef {
    Stage(usize),
    Image(String),
}

impl Dockerfile {
    /// ARGs declared before the first FROM, with their defaults.
    pub fn global_args(&self) -> Vec<(String, Option<String>)> {
        self.instructions
            .iter()
            .take_while(|i| i.keyword != Keyword::From)
            .filter(|i| i.keyword == Keyword::Arg)
            .flat_map(|i| arg_declarations(i.args()))
            .collect()
    }

    pub fn stages(&self) -> Vec<Stage> {
        let globals = self.global_args();
        let froms: Vec<usize> = self
            .instructions
            .iter()
            .enumerate()
            .filter(|(_, i)| i.keyword == Keyword::From)
            .map(|(n, _)| n)
            .collect();
        let mut stages: Vec<Stage> = Vec::new();
        for (k, &from) in froms.iter().enumerate() {
            let instruction = &self.instructions[from];
            let words: Vec<&str> = instruction.args().split_whitespace().collect();
            let base = substitute(words.first().copied().unwrap_or(""), &globals);
            let name = match words.as_slice() {
                [_, as_kw, name, ..] if as_kw.eq_ignore_ascii_case("as") => {
                    Some(name.to_ascii_lowercase())
                }
                _ => None,
            };
            let base_stage = stages
                .iter()
                .find(|s| s.name.as_deref() == Some(base.to_ascii_lowercase().as_str()))
                .map(|s| s.index);
            let end = froms.get(k + 1).copied().unwrap_or(self.instructions.len());
            stages.push(Stage {
                index: k,
                name,
                base,
                base_stage,
                platform: instruction.flag("platform").map(str::to_string),
                from,
                body: from + 1..end,
            });
        }
        stages
    }

    /// Resolves a stage reference: an alias, a stage number, else an image.
    pub fn resolve(&self, stages: &[Stage], reference: &str) -> StageRef {
        let lower = reference.to_ascii_lowercase();
        if let Some(s) = stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return StageRef::Stage(s.index);
        }
        if let Ok(n) = reference.parse::<usize>() {
            if n < stages.len() {
                return StageRef::Stage(n);
            }
        }
        StageRef::Image(reference.to_string())
    }

    /// The stages whose filesystem is the shipped image: the last stage and the stages it
    /// is built `FROM`, transitively (hadolint's DL3009 logic: a stage only read through
    /// `COPY --from` does not ship).
    pub fn shipped_stages(&self, stages: &[Stage]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut current = stages.last().map(|s| s.index);
        while let Some(index) = current {
            if out.contains(&index) {
                break;
            }
            out.push(index);
            current = stages[index].base_stage;
        }
        out
    }

    /// The instructions of a stage, FROM excluded.
    pub fn stage_instructions<'a>(&'a self, stage: &Stage) -> &'a [Instruction] {
        &self.instructions[stage.body.clone()]
    }
}

/// `ARG A=1 B` → [(A, Some(1)), (B, None)].
pub(crate) fn arg_declarations(args: &str) -> Vec<(String, Option<String>)> {
    args.split_whitespace()
        .map(|decl| match decl.split_once('=') {
            Some((name, value)) => (
                name.to_string(),
                Some(value.trim_matches(['"', '\'']).to_string()),
            ),
            None => (decl.to_string(), None),
        })
        .collect()
}

/// Substitutes `$NAME`, `${NAME}` and `${NAME:-default}` with the ARG defaults known.
pub(crate) fn substitute(text: &str, vars: &[(String, Option<String>)]) -> String {
    let lookup = |name: &str| {
        vars.iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    };
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(braced) = after.strip_prefix('{') {
            if let Some(close) = braced.find('}') {
                let inner = &braced[..close];
                let (name, default) = match inner.split_once(":-").or_else(|| inner.split_once('-'))
                {
                    Some((n, d)) => (n, Some(d)),
                    None => (inner, None),
                };
                match lookup(name).or_else(|| default.map(str::to_string)) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[pos..pos + 2 + close + 1]),
                }
                rest = &braced[close + 1..];
                continue;
            }
        }
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        match (len > 0).then(|| lookup(&after[..len])).flatten() {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[pos..pos + 1 + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}
