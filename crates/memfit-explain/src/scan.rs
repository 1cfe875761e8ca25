//! Streams a log of any size with flat memory: fixed-size chunks cut at line ends, one pass of
//! a RegexSet per chunk to learn which patterns occur at all (most chunks: none), then each
//! occurring pattern is located and re-checked on its own line, so a capture never spans two
//! lines. Only hits (a few per signature) and reduced facts are kept. The stream is decoded
//! first ([`crate::decode`]) and each chunk cleaned of colours and CI timestamps
//! ([`crate::clean`]) before it is matched.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};

use memchr::{memchr, memchr_iter, memrchr};

use crate::clean;
use crate::decode::Decoder;
use crate::knowledge::{Fact, FactName, Knowledge, Parse, Reduce, Section};

const CHUNK: usize = 1 << 20;
/// A single line longer than this is cut (minified bundles, base64 blobs).
const MAX_LINE: usize = 16 << 20;
const FIRST_HITS: usize = 2;
const LAST_HITS: usize = 3;
const MAX_LINE_TEXT: usize = 400;

/// One line that matched a signature.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub(crate) line: u64,
    pub(crate) text: String,
}

/// The hits of one signature: the first few (where it started) and the last few (where it
/// ended), so memory stays flat however often a line repeats.
#[derive(Debug, Default, Clone)]
pub(crate) struct Hits {
    first: Vec<Hit>,
    last: VecDeque<Hit>,
}

impl Hits {
    fn push(&mut self, hit: Hit) {
        if self.first.len() < FIRST_HITS {
            self.first.push(hit);
        } else {
            if self.last.len() == LAST_HITS {
                self.last.pop_front();
            }
            self.last.push_back(hit);
        }
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Hit> {
        self.first.iter().chain(self.last.iter())
    }

    pub(crate) fn last_line(&self) -> u64 {
        self.all().map(|h| h.line).max().unwrap_or(0)
    }
}

/// An extracted fact.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FactValue {
    pub(crate) text: String,
    pub(crate) number: Option<f64>,
    priority: u8,
}

#[derive(Debug, Default)]
pub(crate) struct Scanned {
    /// Signature index → its hits.
    pub(crate) hits: HashMap<usize, Hits>,
    pub(crate) facts: HashMap<FactName, FactValue>,
    /// The last command a script runner announced (`> next build`, `$ lerna run build`), by
    /// the BuildKit step (`#12`) whose output announced it; `""` for output without a prefix.
    pub(crate) commands: HashMap<String, String>,
    /// A BuildKit step's text (`RUN npm ci && npm run build`) → its number (`#12`).
    pub(crate) step_ids: HashMap<String, String>,
    pub(crate) lines: u64,
    pub(crate) bytes: u64,
}

pub(crate) fn scan<R: Read>(reader: R, knowledge: &Knowledge) -> io::Result<Scanned> {
    let mut reader = Decoder::new(reader);
    let mut cleaned = Vec::new();
    let mut scanned = Scanned::default();
    let mut state = State::default();
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    let mut next_line = 1u64;
    let mut eof = false;
    while !eof {
        let start = buf.len();
        buf.resize(start + CHUNK, 0);
        let n = read_full(&mut reader, &mut buf[start..])?;
        buf.truncate(start + n);
        eof = n == 0;
        if buf.is_empty() {
            break;
        }
        let end = if eof {
            buf.len()
        } else {
            match memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                None if buf.len() >= MAX_LINE => buf.len(),
                None => continue,
            }
        };
        let chunk = &buf[..end];
        let matched = clean::clean(chunk, &mut cleaned);
        process_chunk(matched, next_line, knowledge, &mut scanned, &mut state);
        let newlines = memchr_iter(b'\n', chunk).count() as u64;
        next_line += newlines;
        if eof && !chunk.ends_with(b"\n") {
            next_line += 1;
        }
        buf.drain(..end);
    }
    scanned.lines = next_line - 1;
    scanned.bytes = reader.raw_bytes;
    Ok(scanned)
}

fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[derive(Default)]
struct State {
    /// The last section header seen, for facts scoped to one.
    section: Option<Section>,
}

fn process_chunk(
    chunk: &[u8],
    first_line: u64,
    knowledge: &Knowledge,
    scanned: &mut Scanned,
    state: &mut State,
) {
    let matched = knowledge.set.matches(chunk);
    if !matched.matched_any() {
        return;
    }
    // (line start, line end, pattern index), in line order.
    let mut candidates: Vec<(usize, usize, usize)> = Vec::new();
    for index in matched.iter() {
        let regex = knowledge.regex(index);
        let mut pos = 0;
        while pos <= chunk.len() {
            let Some(m) = regex.find_at(chunk, pos) else {
                break;
            };
            let line_start = memrchr(b'\n', &chunk[..m.start()]).map_or(0, |i| i + 1);
            let line_end =
                memchr(b'\n', &chunk[m.start()..]).map_or(chunk.len(), |i| m.start() + i);
            candidates.push((line_start, line_end, index));
            pos = line_end + 1;
        }
    }
    candidates.sort_unstable();
    let mut counted_to = 0;
    let mut line_no = first_line;
    for (line_start, line_end, index) in candidates {
        line_no += memchr_iter(b'\n', &chunk[counted_to..line_start]).count() as u64;
        counted_to = line_start;
        let mut line = &chunk[line_start..line_end];
        if line.ends_with(b"\r") {
            line = &line[..line.len() - 1];
        }
        if index < knowledge.signatures.len() {
            if knowledge.signatures[index].regex.is_match(line) {
                scanned.hits.entry(index).or_default().push(Hit {
                    line: line_no,
                    text: line_text(line),
                });
            }
        } else {
            // Every occurrence on the line: two GC trace entries can share one line.
            let fact = &knowledge.facts[index - knowledge.signatures.len()];
            for caps in fact.regex.captures_iter(line) {
                record_fact(fact, &caps, line, scanned, state);
            }
        }
    }
}

fn line_text(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    if text.chars().count() > MAX_LINE_TEXT {
        format!("{}…", text.chars().take(MAX_LINE_TEXT).collect::<String>())
    } else {
        text.to_string()
    }
}

fn group<'a>(caps: &'a regex::bytes::Captures, name: &str) -> Option<&'a [u8]> {
    caps.name(name).map(|m| m.as_bytes())
}

/// The first of `value`, `value2`, … that took part in the match.
fn value_group<'a>(caps: &'a regex::bytes::Captures) -> Option<&'a [u8]> {
    [
        "value", "value2", "value3", "value4", "value5", "value6", "value7",
    ]
    .iter()
    .find_map(|name| group(caps, name))
}

/// How many BuildKit steps' commands are remembered: a build has tens of steps; a log that
/// announces more keeps the first ones (memory stays flat).
const MAX_STEP_KEYS: usize = 512;

/// The BuildKit step number a line of BuildKit's plain progress starts with: `#12` of
/// `#12 41.37 > next build`.
pub(crate) fn buildkit_id(line: &[u8]) -> Option<&str> {
    let rest = line.strip_prefix(b"#")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 6 || rest.get(digits) != Some(&b' ') {
        return None;
    }
    std::str::from_utf8(&line[..=digits]).ok()
}

fn remember(map: &mut HashMap<String, String>, key: &str, value: String) {
    if map.len() < MAX_STEP_KEYS || map.contains_key(key) {
        map.insert(key.to_string(), value);
    }
}

fn record_fact(
    fact: &Fact,
    caps: &regex::bytes::Captures,
    line: &[u8],
    scanned: &mut Scanned,
    state: &mut State,
) {
    let spec = &fact.spec;
    let Some(raw) = value_group(caps) else {
        return;
    };
    let raw = String::from_utf8_lossy(raw).trim().to_string();
    if spec.fact == FactName::Section {
        state.section = Section::from_header(&raw);
        return;
    }
    if spec.fact == FactName::Command {
        let key = buildkit_id(line).unwrap_or_default();
        remember(&mut scanned.commands, key, line_text(raw.as_bytes()));
        return;
    }
    if spec.fact == FactName::Step {
        if let Some(id) = buildkit_id(line) {
            remember(
                &mut scanned.step_ids,
                &line_text(raw.as_bytes()),
                id.to_string(),
            );
        }
    }
    if spec.section.is_some() && state.section != spec.section {
        return;
    }
    let number = parse_number(spec.parse, &raw, caps);
    if spec.parse != Parse::Text && number.is_none() {
        return;
    }
    let text = match &spec.template {
        Some(template) => template.replace("{value}", &raw),
        None => raw,
    };
    let candidate = FactValue {
        text,
        number,
        priority: spec.priority,
    };
    let keep = match scanned.facts.get(&spec.fact) {
        None => true,
        Some(old) => match spec.reduce {
            Reduce::Max => candidate.number > old.number,
            Reduce::First => candidate.priority > old.priority,
            Reduce::Last => candidate.priority >= old.priority,
        },
    };
    if keep {
        if let Some(pid) = group(caps, "pid") {
            let pid = String::from_utf8_lossy(pid).to_string();
            scanned.facts.insert(
                FactName::Pid,
                FactValue {
                    number: pid.parse().ok(),
                    text: pid,
                    priority: spec.priority,
                },
            );
        }
        scanned.facts.insert(spec.fact, candidate);
    }
}

/// The number a fact's captured text stands for; `None` for text facts.
fn parse_number(parse: Parse, raw: &str, caps: &regex::bytes::Captures) -> Option<f64> {
    match parse {
        Parse::Float | Parse::Int => raw.parse::<f64>().ok(),
        Parse::Kib => raw.parse::<f64>().ok().map(|k| k * 1024.0),
        Parse::Size => size_bytes(raw, group(caps, "unit")),
        Parse::Heroku => {
            let pct = group(caps, "pct")
                .and_then(|p| String::from_utf8_lossy(p).parse::<f64>().ok())
                .filter(|p| *p > 0.0);
            match (raw.parse::<f64>().ok(), pct) {
                // Dyno quotas are multiples of 256 MiB (512, 1024, 2560, 14336); the
                // percentage is rounded in the log line.
                (Some(mem), Some(pct)) => {
                    Some(((mem / pct * 100.0) / 256.0).round() * 256.0 * 1024.0 * 1024.0)
                }
                _ => None,
            }
        }
        Parse::Text => None,
    }
}

/// `512` + `Mi` → bytes. Platform "MB"/"GB" mean binary units, as Docker's and Kubernetes'
/// `M`/`Mi` do for memory limits in practice.
fn size_bytes(value: &str, unit: Option<&[u8]>) -> Option<f64> {
    let number: f64 = value.parse().ok()?;
    let unit = unit
        .map(|u| String::from_utf8_lossy(u).to_ascii_lowercase())
        .unwrap_or_default();
    let scale = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge;

    #[test]
    fn hits_carry_line_numbers_across_chunks() {
        let mut log = String::new();
        for i in 0..200_000 {
            log.push_str(&format!("line {i} compiling module\n"));
        }
        log.push_str(
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n",
        );
        let scanned = scan(log.as_bytes(), knowledge::get()).unwrap();
        assert_eq!(scanned.lines, 200_001);
        let hits = scanned.hits.values().next().unwrap();
        assert_eq!(hits.first[0].line, 200_001);
    }

    #[test]
    fn a_capture_never_spans_two_lines() {
        let log = "Mark-sweep 100 (200)\n -> 300 (400) MB\n";
        let scanned = scan(log.as_bytes(), knowledge::get()).unwrap();
        assert!(!scanned.facts.contains_key(&FactName::HeapAtDeathMb));
    }

    #[test]
    fn sizes_are_binary() {
        assert_eq!(size_bytes("512", Some(b"Mi")), Some(536870912.0));
        assert_eq!(size_bytes("1.5", Some(b"G")), Some(1610612736.0));
        assert_eq!(size_bytes("512", Some(b"MB")), Some(536870912.0));
        assert_eq!(size_bytes("512", Some(b"x")), None);
    }

    #[test]
    fn limits_from_docker_flags_and_compose() {
        let limit = |log: &str| {
            scan(log.as_bytes(), knowledge::get())
                .unwrap()
                .facts
                .get(&FactName::LimitBytes)
                .and_then(|f| f.number)
        };
        assert_eq!(
            limit("$ docker run -m 512m node app.js\n"),
            Some(536870912.0)
        );
        assert_eq!(limit("docker run --memory=1g app\n"), Some(1073741824.0));
        assert_eq!(limit("    mem_limit: 768m\n"), Some(805306368.0));
        // Requests are not limits.
        assert_eq!(limit("    Requests:\n      memory:  64Mi\n"), None);
        assert_eq!(
            limit("    Limits:\n      memory:  256Mi\n    Requests:\n      memory:  64Mi\n"),
            Some(268435456.0)
        );
    }

    #[test]
    fn a_last_line_without_newline_counts() {
        let scanned = scan("a\nb\nspawn ENOMEM".as_bytes(), knowledge::get()).unwrap();
        assert_eq!(scanned.lines, 3);
        assert_eq!(scanned.hits.values().next().unwrap().first[0].line, 3);
    }
}
