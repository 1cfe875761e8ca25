//! The JVM service: every place its options are set (`JAVA_TOOL_OPTIONS`,
//! `JDK_JAVA_OPTIONS`, `JAVA_OPTS`, the `java` command line), the heap they give in a
//! container, and the JDK of the image.

use memfit_core::jvm::{self as jvm_model, NonHeapOptions};
use memfit_core::ByteSize;

use super::service::{self, ServiceCommand};
use crate::context::Context;
use crate::dockerfile::Span;
use crate::project::{Kind, Parsed};
use crate::source::FileId;

/// One place JVM options are set, lowest precedence first in `JvmService::settings`.
#[derive(Debug, Clone)]
pub struct JvmOptions {
    /// e.g. `JAVA_TOOL_OPTIONS in fly.toml [env]`, `java command in Dockerfile CMD`.
    pub place: String,
    pub file: FileId,
    pub span: Span,
    pub words: Vec<String>,
}

/// The JVM service.
#[derive(Debug, Clone)]
pub struct JvmService {
    /// Lowest precedence first: `JAVA_TOOL_OPTIONS` (read by the JVM before its command
    /// line), `JDK_JAVA_OPTIONS` (inserted by the launcher before the arguments), `JAVA_OPTS`
    /// (expanded by start scripts into the command line), then the command line. A later
    /// value of the same option wins.
    pub settings: Vec<JvmOptions>,
}

/// Which option sets the heap, and where.
#[derive(Debug, Clone)]
pub enum HeapBasis<'a> {
    /// `-Xmx` / `-XX:MaxHeapSize`.
    MaxHeap(&'a JvmOptions),
    /// `-XX:MaxRAMPercentage` (of `-XX:MaxRAM` when set, else of the container limit).
    Percentage(&'a JvmOptions, f64),
    /// `-Xms` / `-XX:InitialRAMPercentage` above the maximum: the JVM raises the maximum.
    Initial(&'a JvmOptions),
    /// The JVM's default: 25% (JDK 10+, JDK-8186248).
    Default,
}

/// The heap the JVM will allow itself.
#[derive(Debug, Clone)]
pub struct Heap<'a> {
    pub bytes: u64,
    pub basis: HeapBasis<'a>,
    /// The winning `MaxRAMPercentage`, when one is set.
    pub percentage: Option<(&'a JvmOptions, f64)>,
}

/// The JVM's default `MaxRAMPercentage` since JDK 10 (JDK-8186248).
pub const DEFAULT_MAX_RAM_PERCENTAGE: f64 = 25.0;

/// A JVM size: `1g`, `512m`, `65536k`, `1073741824` (the java launcher's syntax, k/m/g/t in
/// either case).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_lowercase()),
        _ => (text, 'b'),
    };
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        'b' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        't' => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// A percentage the JVM accepts: 0 to 100 (`nan`, `inf` and `500` are not).
fn percent(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|p| p.is_finite() && (0.0..=100.0).contains(p))
}

/// The value of `-XX:Name=value` in a word.
fn xx<'w>(word: &'w str, name: &str) -> Option<&'w str> {
    word.strip_prefix("-XX:")?
        .strip_prefix(name)?
        .strip_prefix('=')
}

impl JvmService {
    /// The heap in a container of `limit` bytes (`None`: only what does not depend on it).
    pub fn heap(&self, limit: Option<u64>) -> Option<Heap<'_>> {
        let mut max_heap = None;
        let mut initial = None;
        let mut percentage = None;
        let mut initial_percentage = None;
        let mut max_ram = None;
        for setting in &self.settings {
            for word in &setting.words {
                let w = word.as_str();
                if let Some(v) = w
                    .strip_prefix("-Xmx")
                    .or_else(|| xx(w, "MaxHeapSize"))
                    .and_then(parse_size)
                {
                    max_heap = Some((setting, v));
                } else if let Some(v) = w
                    .strip_prefix("-Xms")
                    .or_else(|| xx(w, "InitialHeapSize"))
                    .and_then(parse_size)
                {
                    initial = Some((setting, v));
                } else if let Some(p) = xx(w, "MaxRAMPercentage").and_then(percent) {
                    percentage = Some((setting, p));
                } else if let Some(p) = xx(w, "InitialRAMPercentage").and_then(percent) {
                    initial_percentage = Some((setting, p));
                } else if let Some(v) = xx(w, "MaxRAM").and_then(parse_size) {
                    max_ram = Some(v);
                }
            }
        }
        let ram = max_ram.or(limit);
        let of_ram = |p: f64| ram.map(|r| (r as f64 * p / 100.0) as u64);
        // A maximum from a percentage follows HotSpot's ergonomics (its floor, the small
        // container's MinRAMPercentage, the alignment).
        let max_of_ram = |p: f64| ram.map(|r| jvm_model::heap_of_percentage(r, p));
        let (mut bytes, mut basis) = match (max_heap, percentage) {
            (Some((s, v)), _) => (Some(v), HeapBasis::MaxHeap(s)),
            (None, Some((s, p))) => (max_of_ram(p), HeapBasis::Percentage(s, p)),
            (None, None) => (max_of_ram(DEFAULT_MAX_RAM_PERCENTAGE), HeapBasis::Default),
        };
        if max_heap.is_none() {
            let start = initial
                .map(|(s, v)| (s, Some(v)))
                .or_else(|| initial_percentage.map(|(s, p)| (s, of_ram(p))));
            if let Some((s, Some(v))) = start {
                if bytes.is_none_or(|b| v > b) {
                    bytes = Some(v);
                    basis = HeapBasis::Initial(s);
                }
            }
        }
        Some(Heap {
            bytes: bytes?,
            basis,
            percentage,
        })
    }
}

/// The options that bound the JVM's memory beside the heap, the last of each winning as for
/// the heap.
impl JvmService {
    pub fn non_heap_options(&self) -> NonHeapOptions {
        let mut options = NonHeapOptions::default();
        for word in self.settings.iter().flat_map(|s| &s.words) {
            let w = word.as_str();
            if let Some(v) = xx(w, "MaxMetaspaceSize").and_then(parse_size) {
                options.max_metaspace = Some(v);
            } else if let Some(v) = xx(w, "ReservedCodeCacheSize").and_then(parse_size) {
                options.reserved_code_cache = Some(v);
            } else if let Some(v) = w.strip_prefix("-Xss").and_then(parse_size) {
                options.thread_stack = Some(v);
            } else if let Some(v) = xx(w, "ThreadStackSize").and_then(parse_size) {
                // ThreadStackSize counts kilobytes (the java man page, -XX:ThreadStackSize).
                options.thread_stack = v.checked_mul(1024);
            } else if w == "-XX:+UseG1GC" {
                options.g1 = true;
            } else if w.starts_with("-XX:+Use") && w.ends_with("GC") {
                options.g1 = false;
            }
        }
        options
    }
}

/// The server's thread pool and where it is set.
#[derive(Debug, Clone)]
pub struct ThreadPool {
    pub threads: u32,
    /// e.g. `server.tomcat.threads.max in src/main/resources/application.properties`.
    pub place: String,
}

/// Spring Boot's keys for the embedded server's maximum threads: Tomcat (and its name before
/// Spring Boot 2.3), Jetty.
/// https://docs.spring.io/spring-boot/appendix/application-properties/index.html
const POOL_KEYS: [&str; 3] = [
    "server.tomcat.threads.max",
    "server.tomcat.max-threads",
    "server.jetty.threads.max",
];

/// A thread count a configuration can mean: 1 to 100,000 (beyond, a typo or a placeholder).
fn thread_count(text: &str) -> Option<u32> {
    text.trim()
        .trim_matches(['"', '\''])
        .parse()
        .ok()
        .filter(|n| (1..=100_000).contains(n))
}

/// The thread pool the service configures: an environment variable (Spring's relaxed binding
/// reads it before the files), a `-D` system property, else the largest of the
/// `application*.properties`/`.yml` files outside test directories (which profile runs is
/// not known here).
pub fn thread_pool(ctx: &Context, service: &JvmService) -> Option<ThreadPool> {
    let commands = service::commands(ctx);
    for key in POOL_KEYS {
        let var = key.replace(['.', '-'], "_").to_ascii_uppercase();
        if let Some(value) = service::env(ctx, &commands, &var) {
            if let Some(threads) = thread_count(&value.value) {
                return Some(ThreadPool {
                    threads,
                    place: format!("{var} in {}", value.place),
                });
            }
        }
    }
    let property = service.settings.iter().rev().find_map(|s| {
        s.words.iter().rev().find_map(|w| {
            let (key, value) = w.strip_prefix("-D")?.split_once('=')?;
            POOL_KEYS.contains(&key).then_some(())?;
            Some(ThreadPool {
                threads: thread_count(value)?,
                place: format!("-D{key} in {}", s.place),
            })
        })
    });
    if property.is_some() {
        return property;
    }
    let mut found: Option<ThreadPool> = None;
    for (_, file) in ctx.project.of_kind(Kind::SpringConfig) {
        let name = file.source.display();
        // src/test/resources configures the tests, not the service.
        if name.split('/').any(|part| part == "test") {
            continue;
        }
        let values: Vec<(&str, u32)> = match &file.parsed {
            Parsed::Yaml(docs) => docs
                .iter()
                .flat_map(|doc| {
                    POOL_KEYS.iter().filter_map(move |key| {
                        let path: Vec<&str> = key.split('.').collect();
                        let node = doc.at(&path).or_else(|| doc.get(key))?;
                        Some((*key, thread_count(node.as_str()?)?))
                    })
                })
                .collect(),
            _ => file
                .source
                .text
                .lines()
                .filter_map(|line| {
                    let (key, value) = line.split_once(['=', ':'])?;
                    let key = POOL_KEYS.iter().find(|k| **k == key.trim())?;
                    Some((*key, thread_count(value)?))
                })
                .collect(),
        };
        for (key, threads) in values {
            if found.as_ref().is_none_or(|f| threads > f.threads) {
                found = Some(ThreadPool {
                    threads,
                    place: format!("{key} in {name}"),
                });
            }
        }
    }
    found
}

/// Whether an image runs a JVM: the OpenJDK builds' images, and images of JVM servers.
pub fn is_jvm_image(image: &str) -> bool {
    let name = image.split(['@', ':']).next().unwrap_or(image);
    let name = name.to_ascii_lowercase();
    let base = name.rsplit('/').next().unwrap_or(&name);
    matches!(
        base,
        "openjdk"
            | "java"
            | "eclipse-temurin"
            | "amazoncorretto"
            | "ibm-semeru-runtimes"
            | "sapmachine"
            | "ibmjava"
            | "tomcat"
            | "jetty"
            | "adoptopenjdk"
    ) || base.starts_with("adoptopenjdk")
        || base.starts_with("zulu-openjdk")
        || base.starts_with("liberica-openj")
        || (name.contains("distroless/java"))
}

/// The JVM options of a `java` command: its words before `-jar`, the main class or
/// `--module`.
fn java_command_options(command: &ServiceCommand) -> Option<JvmOptions> {
    if command.command.program() != Some("java") {
        return None;
    }
    // The options before `-jar`, the class path or the main class; `$JAVA_OPTS` and the
    // like are expanded from the environment (see `model`).
    let words: Vec<String> = command
        .command
        .args()
        .iter()
        .map(|w| w.text.clone())
        .take_while(|w| {
            (w.starts_with('-') || w.starts_with('$'))
                && !matches!(
                    w.as_str(),
                    "-jar" | "-cp" | "-classpath" | "--module" | "-m"
                )
        })
        .filter(|w| w.starts_with('-'))
        .collect();
    Some(JvmOptions {
        place: format!("java command in {}", command.place),
        file: command.file,
        span: command.span,
        words,
    })
}

/// Builds the JVM model, when the service runs a JVM.
pub fn model(ctx: &Context) -> Option<JvmService> {
    let commands = service::commands(ctx);
    let java: Vec<JvmOptions> = commands.iter().filter_map(java_command_options).collect();
    let image = ctx.dockerfiles().into_iter().any(|view| {
        Some(view.id) == ctx.runtime.dockerfile
            && view
                .shipped
                .iter()
                .any(|&s| is_jvm_image(&view.stages[s].base))
    });
    let names = ["JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "JAVA_OPTS"];
    let env: Vec<(&str, service::EnvValue)> = names
        .iter()
        .filter_map(|n| Some((*n, service::env(ctx, &commands, n)?)))
        .collect();
    if java.is_empty() && !image && env.is_empty() {
        return None;
    }
    let mut settings = Vec::new();
    for (name, value) in env {
        // JAVA_OPTS is a convention of start scripts, not read by the JVM: it counts when the
        // service runs something other than `java` directly, or says $JAVA_OPTS.
        if name == "JAVA_OPTS"
            && !java.is_empty()
            && !commands.iter().any(|c| {
                c.command.program() == Some("java")
                    && c.command.words.iter().any(|w| w.text.contains("JAVA_OPTS"))
            })
        {
            continue;
        }
        settings.push(JvmOptions {
            place: format!("{name} in {}", value.place),
            file: value.file,
            span: value.span,
            words: value.value.split_whitespace().map(str::to_string).collect(),
        });
    }
    settings.extend(java);
    Some(JvmService { settings })
}

/// The JDK update of an image tag: `openjdk:8u181-jre-alpine` → (8, Some(181)); `9-jre` →
/// (9, None). Only for images whose tags name the JDK.
pub fn jdk_of_image(image: &str) -> Option<(u32, Option<u32>, String)> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let (name, tag) = without_digest.rsplit_once(':')?;
    if tag.contains('/') {
        return None;
    }
    let base = name.rsplit('/').next().unwrap_or(name);
    if !matches!(
        base,
        "openjdk" | "java" | "adoptopenjdk" | "eclipse-temurin" | "amazoncorretto"
    ) && !base.starts_with("adoptopenjdk")
    {
        return None;
    }
    let major_text: String = tag.chars().take_while(char::is_ascii_digit).collect();
    let major: u32 = major_text.parse().ok()?;
    let rest = &tag[major_text.len()..];
    let update = rest
        .strip_prefix('u')
        .map(|r| {
            r.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok());
    Some((major, update, format!("{base}:{tag}")))
}

/// A size for messages.
pub fn show(bytes: u64) -> String {
    ByteSize(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(words: &[&[&str]]) -> JvmService {
        JvmService {
            settings: words
                .iter()
                .map(|w| JvmOptions {
                    place: String::new(),
                    file: 0,
                    span: Span::default(),
                    words: w.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn sizes_and_heaps() {
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("lots"), None);
        let mib = 1 << 20;
        let h = |s: JvmService| s.heap(Some(512 * mib)).unwrap().bytes;
        assert_eq!(h(service(&[&["-Xmx1g"]])), 1 << 30);
        assert_eq!(h(service(&[&["-Xmx1g"], &["-Xmx256m"]])), 256 * mib);
        assert_eq!(h(service(&[&["-XX:MaxRAMPercentage=75.0"]])), 384 * mib);
        // -Xmx wins over MaxRAMPercentage whatever the order.
        assert_eq!(
            h(service(&[&["-Xmx200m"], &["-XX:MaxRAMPercentage=90"]])),
            200 * mib
        );
        assert_eq!(h(service(&[&[]])), 128 * mib);
        assert_eq!(h(service(&[&["-Xms400m"]])), 400 * mib);
        assert_eq!(h(service(&[&["-XX:MaxRAM=2g"]])), 512 * mib);
    }

    #[test]
    fn jdk_tags() {
        assert_eq!(
            jdk_of_image("openjdk:8u181-jre-alpine").map(|j| (j.0, j.1)),
            Some((8, Some(181)))
        );
        assert_eq!(
            jdk_of_image("openjdk:8-jre").map(|j| (j.0, j.1)),
            Some((8, None))
        );
        assert_eq!(
            jdk_of_image("eclipse-temurin:21-jre").map(|j| (j.0, j.1)),
            Some((21, None))
        );
        assert!(jdk_of_image("python:3.12").is_none());
    }
}
