//! Streams a log of any size with flat memory: fixed-size chunks cut at line ends, one pass of
//! a RegexSet per chunk to learn which patterns occur at all (most chunks: none), then each
//! occurring pattern is located and re-checked on its own line, so a capture never spans two
//! lines. Only hits (a few per signature) and reduced facts are kept.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};

use memchr::{memchr, memchr_iter, memrchr};

use crate::knowledge::Knowledge;

const CHUNK: usize = 1 << 20;
/// A single line longer than this is cut (minified bundles, base64 blobs).
const MAX_LINE: usize = 16 << 20;
const FIRST_HITS: usize = 2;
const LAST_HITS: usize = 3;
const MAX_LINE_TEXT: usize = 400;

/// One line that matched a signature.
#[derive(Debug, Clone)]
pub struct Hit {
    pub line: u64,
    pub text: String,
}

/// The hits of one signature: a count, the first and the last few.
#[derive(Debug, Default, Clone)]
pub struct Hits {
    pub count: u64,
    pub first: Vec<Hit>,
    pub last: VecDeque<Hit>,
}

impl Hits {
    fn push(&mut self, hit: Hit) {
        self.count += 1;
        if self.first.len() < FIRST_HITS {
            self.first.push(hit);
        } else {
            if self.last.len() == LAST_HITS {
                self.last.pop_front();
            }
            self.last.push_back(hit);
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Hit> {
        self.first.iter().chain(self.last.iter())
    }

    pub fn last_line(&self) -> u64 {
        self.all().map(|h| h.line).max().unwrap_or(0)
    }
}

/// An extracted fact.
#[derive(Debug, Clone, PartialEq)]
pub struct FactValue {
    pub text: String,
    pub number: Option<f64>,
    pub priority: u8,
    pub line: u64,
}

#[derive(Debug, Default)]
pub struct Scanned {
    /// Signature index → its hits.
    pub hits: HashMap<usize, Hits>,
    pub facts: HashMap<String, FactValue>,
    pub lines: u64,
    pub bytes: u64,
}

pub fn scan<R: Read>(mut reader: R, knowledge: &Knowledge) -> io::Result<Scanned> {
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
        scanned.bytes += n as u64;
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
        process_chunk(chunk, next_line, knowledge, &mut scanned, &mut state);
        let newlines = memchr_iter(b'\n', chunk).count() as u64;
        next_line += newlines;
        if eof && !chunk.ends_with(b"\n") {
            next_line += 1;
        }
        buf.drain(..end);
    }
    scanned.lines = next_line - 1;
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
    /// The last section header seen (`limits` / `requests`), for facts scoped to one.
    section: String,
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
                record_fact(fact, &caps, line_no, scanned, state);
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

fn record_fact(
    fact: &crate::knowledge::Fact,
    caps: &regex::bytes::Captures,
    line: u64,
    scanned: &mut Scanned,
    state: &mut State,
) {
    let spec = &fact.spec;
    let Some(raw) = value_group(caps) else {
        return;
    };
    let raw = String::from_utf8_lossy(raw).trim().to_string();
    if spec.fact == "section" {
        state.section = raw.to_ascii_lowercase();
        return;
    }
    if !spec.section.is_empty() && state.section != spec.section {
        return;
    }
    let number = match spec.parse.as_str() {
        "float" | "int" => raw.parse::<f64>().ok(),
        "kib" => raw.parse::<f64>().ok().map(|k| k * 1024.0),
        "size" => size_bytes(&raw, group(caps, "unit")),
        "heroku" => {
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
        _ => None,
    };
    if spec.parse != "text" && number.is_none() {
        return;
    }
    let text = if spec.template.is_empty() {
        raw
    } else {
        spec.template.replace("{value}", &raw)
    };
    let candidate = FactValue {
        text,
        number,
        priority: spec.priority,
        line,
    };
    let keep = match scanned.facts.get(&spec.fact) {
        None => true,
        Some(old) => match spec.reduce.as_str() {
            "max" => candidate.number > old.number,
            "first" => candidate.priority > old.priority,
            _ => candidate.priority >= old.priority,
        },
    };
    if keep {
        if let Some(pid) = group(caps, "pid") {
            let pid = String::from_utf8_lossy(pid).to_string();
            scanned.facts.insert(
                "pid".to_string(),
                FactValue {
                    number: pid.parse().ok(),
                    text: pid,
                    priority: spec.priority,
                    line,
                },
            );
        }
        scanned.facts.insert(spec.fact.clone(), candidate);
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
        assert!(!scanned.facts.contains_key("heap_at_death_mb"));
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
                .get("limit_bytes")
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
