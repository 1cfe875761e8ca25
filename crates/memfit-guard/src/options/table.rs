//! The one table of the guard's options: the parser looks names up in it, `--help` is laid
//! out from it (as clap lays out the other memfit commands' help), and each option's
//! environment variable is its name in it (`--max-restarts` → `MEMFIT_GUARD_MAX_RESTARTS`).

/// One option.
pub struct Spec {
    /// The long name without `--`.
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name in the help (`SIZE`); `None` for a switch.
    pub value: Option<&'static str>,
    pub help: &'static str,
    /// Also read from `MEMFIT_GUARD_<LONG>` (every option but --help and --version).
    pub env: bool,
    /// Options of one setting: a flag of the group keeps the environment out of all of them
    /// (`--listen` wins over `MEMFIT_GUARD_NO_LISTEN=1`).
    pub group: Option<&'static str>,
}

const fn opt(long: &'static str, value: &'static str, help: &'static str) -> Spec {
    Spec {
        long,
        short: None,
        value: Some(value),
        help,
        env: true,
        group: None,
    }
}

const fn switch(long: &'static str, help: &'static str) -> Spec {
    Spec {
        long,
        short: None,
        value: None,
        help,
        env: true,
        group: None,
    }
}

pub const OPTIONS: &[Spec] = &[
    opt("limit", "SIZE", "Memory limit [default: the container's cgroup limit, else the machine's RAM]"),
    opt("warn", "PCT|SIZE", "Warning threshold, a share of the limit or a size [default: 80%]"),
    opt("critical", "PCT|SIZE", "Critical threshold [default: 92%]"),
    opt("sustain", "DURATION", "A breach must last this long before an action; acted on at once when the growth rate says the limit is nearer than that [default: 2s]"),
    opt("startup-grace", "DURATION", "No action this long after a (re)start unless the limit is imminent [default: 10s]"),
    opt("cooldown", "DURATION", "At least this long between two actions of a level [default: 30s]"),
    opt("max-restarts", "N/DURATION", "Memory restarts allowed per window [default: 5/10m]"),
    opt("on-warn", "ACTION", "At the warning threshold: log | signal:NAME (e.g. signal:USR2 for a heap snapshot) | exec:CMD [default: log]"),
    opt("on-critical", "ACTION", "At the critical threshold: restart | stop | log | signal:NAME | exec:CMD [default: restart]"),
    opt("grace", "DURATION", "SIGTERM → SIGKILL delay when stopping the child [default: 10s]"),
    switch("signal-group", "Forward signals to the command's process group"),
    Spec {
        group: Some("listen"),
        ..opt("listen", "ADDR", "HTTP for /health/memory and /metrics [default: 127.0.0.1:9464]")
    },
    Spec {
        group: Some("listen"),
        ..switch("no-listen", "No HTTP")
    },
    switch("no-runtime-view", "Do not inject the Node runtime view into the child (NODE_OPTIONS=--require of a preload that reports V8's heap for /metrics)"),
    switch("health-details", "Full command lines on /health/memory [default: executable names only]"),
    switch("allow-actions", "Allow POST /actions/restart over HTTP with `Authorization: Bearer TOKEN`"),
    opt("action-token", "TOKEN", "The token --allow-actions needs; prefer the variable, which `ps` does not show"),
    opt("action-interval", "DURATION", "At most one restart over HTTP per DURATION [default: 30s]"),
    opt("max-interval", "DURATION", "Slowest sampling period, far from the limit [default: 1s]"),
    opt("log-format", "FORMAT", "The guard's log on stderr: text, or json (one object a line: ts, level, event, msg and the event's fields) [default: text]"),
    Spec {
        short: Some('h'),
        env: false,
        ..switch("help", "Print help")
    },
    Spec {
        short: Some('V'),
        env: false,
        ..switch("version", "Print version")
    },
];

/// `MEMFIT_GUARD_NO_LISTEN` for `no-listen`.
pub fn env_name(long: &str) -> String {
    format!(
        "MEMFIT_GUARD_{}",
        long.to_ascii_uppercase().replace('-', "_")
    )
}

pub fn find_long(name: &str) -> Option<usize> {
    OPTIONS.iter().position(|s| s.long == name)
}

pub fn find_short(c: char) -> Option<usize> {
    OPTIONS.iter().position(|s| s.short == Some(c))
}

/// The help's width, as clap wraps when it is not told the terminal's.
const WIDTH: usize = 100;

const ABOUT: &str = "Run a service as PID 1 under its memory limit: forward signals, reap zombies, exit with the command's status, and restart it gracefully before the kernel's OOM killer acts.";

const AFTER: &str = "Durations: 500ms, 2s, 10m, 1h, 1d (at most 7d). Sizes: 400M, 1.5G (below 4096P).

Every option can also come from its MEMFIT_GUARD_<NAME> variable (MEMFIT_GUARD_LIMIT=512M, MEMFIT_GUARD_NO_LISTEN=1; switches take 1, 0, true or false; empty is unset). Flags win over the environment.

Exit status: the command's (128 + signal when it was killed); 2 for usage errors.";

/// The help, laid out from [`OPTIONS`] for `bin` (`memfit guard` or `memfit-guard`).
pub fn help(bin: &str) -> String {
    let mut out = String::new();
    push_wrapped(&mut out, ABOUT, 0, WIDTH);
    out.push('\n');
    out.push_str(&format!("Usage: {bin} [OPTIONS] -- <CMD>...\n\n"));
    out.push_str("Arguments:\n");
    out.push_str("  <CMD>...  The service's command and its arguments\n\n");
    out.push_str("Options:\n");
    let specs: Vec<String> = OPTIONS.iter().map(spec_text).collect();
    let column = specs.iter().map(|s| s.chars().count()).max().unwrap_or(0) + 2;
    for (spec, text) in OPTIONS.iter().zip(&specs) {
        let mut words: Vec<String> = spec.help.split_whitespace().map(String::from).collect();
        if spec.env {
            // One unit, never split across lines.
            words.push(format!("[env: {}=]", env_name(spec.long)));
        }
        let mut lines = wrap(&words, WIDTH - column).into_iter();
        let first = lines.next().unwrap_or_default();
        let pad = column - text.chars().count();
        out.push_str(&format!("{text}{}{first}\n", " ".repeat(pad)));
        for line in lines {
            out.push_str(&format!("{}{line}\n", " ".repeat(column)));
        }
    }
    out.push('\n');
    for paragraph in AFTER.split("\n\n") {
        push_wrapped(&mut out, paragraph, 0, WIDTH);
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out
}

/// `  -h, --help` or `      --limit <SIZE>`.
fn spec_text(spec: &Spec) -> String {
    let short = spec.short.map_or("    ".to_string(), |c| format!("-{c}, "));
    let value = spec.value.map_or(String::new(), |v| format!(" <{v}>"));
    format!("  {short}--{}{value}", spec.long)
}

fn push_wrapped(out: &mut String, text: &str, indent: usize, width: usize) {
    let words: Vec<String> = text.split_whitespace().map(String::from).collect();
    for line in wrap(&words, width - indent) {
        out.push_str(&" ".repeat(indent));
        out.push_str(&line);
        out.push('\n');
    }
}

/// Words into lines of at most `width` characters (a longer word gets a line of its own).
fn wrap(words: &[String], width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in words {
        let needed = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if !line.is_empty() && needed > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_is_in_the_help_with_its_variable_and_within_the_width() {
        let help = help("memfit-guard");
        for spec in OPTIONS {
            assert!(help.contains(&format!("--{}", spec.long)), "{}", spec.long);
            assert_eq!(
                help.contains(&format!("[env: {}=]", env_name(spec.long))),
                spec.env
            );
        }
        assert!(help.lines().all(|l| l.chars().count() <= WIDTH), "{help}");
        assert_eq!(env_name("max-restarts"), "MEMFIT_GUARD_MAX_RESTARTS");
        assert_eq!(env_name("action-token"), super::super::ACTION_TOKEN_ENV);
    }
}
