//! Command-line options, from one table ([`table::OPTIONS`]) that drives the parser (lexopt:
//! the guard ships inside containers and carries no argument-parsing framework), lays out
//! `--help` and names each option's `MEMFIT_GUARD_*` variable. Flags win over the environment.
//! Every error is one line that says where the value came from and what is accepted.

pub mod table;
mod values;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use memfit_core::ByteSize;

use values::{bounded_duration, describe, duration};
pub use values::{parse_duration, signal_name, signal_number, Action, Secret, Threshold};

/// The longest duration any option takes: far beyond any sensible setting, and short enough
/// that `Instant + duration` can never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 86400);

/// The slowest sampling period: slower would miss a leak between two samples.
const MAX_SAMPLING_INTERVAL: Duration = Duration::from_secs(60);

/// Memory limits are below 4 EiB: cgroup v1 shows "no limit" as 2^63 − 4096 bytes
/// (`PAGE_COUNTER_MAX` pages, include/linux/page_counter.h), so nothing that large is a limit,
/// and sizes this far below `u64::MAX` leave room for the sums made of them.
pub const MAX_LIMIT: u64 = 4 << 60;

/// The environment variable that carries the action token (kept out of `ps` and /proc/PID/cmdline,
/// unlike `--action-token`). It is `--action-token`'s variable in the table.
pub const ACTION_TOKEN_ENV: &str = "MEMFIT_GUARD_ACTION_TOKEN";

/// Tokens shorter than this are guessable.
const MIN_TOKEN_LEN: usize = 16;

/// `--max-restarts N/DURATION`: at most `count` memory restarts within any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartLimit {
    pub count: u32,
    pub window: Duration,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where the settings that later checks name came from: `--warn` or `MEMFIT_GUARD_WARN`.
#[derive(Debug, Clone)]
pub struct Names {
    pub limit: String,
    pub warn: String,
    pub critical: String,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            limit: "--limit".to_string(),
            warn: "--warn".to_string(),
            critical: "--critical".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub limit: Option<u64>,
    pub warn: Threshold,
    pub critical: Threshold,
    pub sustain: Duration,
    pub startup_grace: Duration,
    pub cooldown: Duration,
    /// At most this many memory restarts within the window.
    pub max_restarts: RestartLimit,
    pub on_warn: Action,
    pub on_critical: Action,
    /// SIGTERM → SIGKILL grace when stopping the child, and for grandchildren at shutdown.
    pub grace: Duration,
    pub signal_group: bool,
    pub listen: Option<SocketAddr>,
    /// `POST /actions/restart` is served only with this token (`--allow-actions`).
    pub action_token: Option<Secret>,
    /// At most one restart over HTTP per this period.
    pub action_interval: Duration,
    /// Full command lines on /health/memory (`--health-details`); by default only the
    /// executable's name, since arguments can hold secrets.
    pub health_details: bool,
    /// Inject the Node runtime view's preload into the child (`--no-runtime-view` turns it off).
    pub runtime_view: bool,
    /// Slowest sampling period (far from the limit).
    pub max_interval: Duration,
    pub log_format: LogFormat,
    pub names: Names,
    pub command: Vec<OsString>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limit: None,
            warn: Threshold::Percent(80.0),
            critical: Threshold::Percent(92.0),
            sustain: Duration::from_secs(2),
            startup_grace: Duration::from_secs(10),
            cooldown: Duration::from_secs(30),
            max_restarts: RestartLimit {
                count: 5,
                window: Duration::from_secs(600),
            },
            on_warn: Action::Log,
            on_critical: Action::Restart,
            grace: Duration::from_secs(10),
            signal_group: false,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            action_token: None,
            action_interval: Duration::from_secs(30),
            health_details: false,
            runtime_view: true,
            max_interval: Duration::from_secs(1),
            log_format: LogFormat::Text,
            names: Names::default(),
            command: Vec::new(),
        }
    }
}

/// What the arguments ask for.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Options>),
    Help,
    Version,
}

/// One option's value and where it came from.
#[derive(Debug, Clone)]
struct Given {
    /// `--warn` or `MEMFIT_GUARD_WARN`.
    name: String,
    /// `None` for a switch.
    value: Option<String>,
    from_env: bool,
}

impl Given {
    /// As the user wrote it: `--warn 120%`, `MEMFIT_GUARD_WARN=120%`.
    fn shown(&self) -> String {
        match (&self.value, self.from_env) {
            (Some(v), true) => format!("{}={v}", self.name),
            (Some(v), false) => format!("{} {v}", self.name),
            (None, _) => self.name.clone(),
        }
    }

    fn text(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }
}

/// `1`/`true` sets a switch from the environment, `0`/`false` leaves it off.
fn env_switch(var: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(format!("{var}={value}: use 1, 0, true or false")),
    }
}

const AFTER_DASHES: &str = "put the command after `--`, e.g. memfit guard -- node server.js";

impl Options {
    /// Parses the arguments after `memfit guard`, with `env` for the `MEMFIT_GUARD_*`
    /// variables (`std::env::var_os` in the binary).
    pub fn parse(
        raw: &[OsString],
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Parsed, String> {
        let mut given: Vec<Option<Given>> = vec![None; table::OPTIONS.len()];
        let mut command: Vec<OsString> = Vec::new();
        let mut parser = lexopt::Parser::from_args(raw.iter().cloned());
        loop {
            let arg = parser.next().map_err(|e| lexopt_error(&e))?;
            let (index, name) = match arg {
                None => break,
                Some(lexopt::Arg::Long(long)) => match table::find_long(long) {
                    Some(i) => (i, format!("--{long}")),
                    None => {
                        return Err(format!(
                            "unknown option `--{long}`; {AFTER_DASHES} (see --help)"
                        ))
                    }
                },
                Some(lexopt::Arg::Short(c)) => match table::find_short(c) {
                    Some(i) => (i, format!("-{c}")),
                    None => {
                        return Err(format!(
                            "unknown option `-{c}`; {AFTER_DASHES} (see --help)"
                        ))
                    }
                },
                // The command: after `--`, or the first argument that is not an option (as
                // `memfit guard -- CMD` arrives, clap having taken the `--`).
                Some(lexopt::Arg::Value(program)) => {
                    command.push(program);
                    command.extend(parser.raw_args().map_err(|e| lexopt_error(&e))?);
                    break;
                }
            };
            let spec = &table::OPTIONS[index];
            match spec.long {
                "help" => return Ok(Parsed::Help),
                "version" => return Ok(Parsed::Version),
                _ => {}
            }
            let value = match spec.value {
                Some(_) => {
                    let v = parser
                        .value()
                        .map_err(|_| format!("{name} needs a value; see memfit guard --help"))?;
                    Some(
                        v.into_string()
                            .map_err(|_| format!("{name}: the value is not valid UTF-8"))?,
                    )
                }
                None => None,
            };
            given[index] = Some(Given {
                name,
                value,
                from_env: false,
            });
        }
        // The environment fills what the flags left out.
        let flagged_groups: Vec<&str> = table::OPTIONS
            .iter()
            .zip(&given)
            .filter(|(_, g)| g.is_some())
            .filter_map(|(s, _)| s.group)
            .collect();
        for (spec, slot) in table::OPTIONS.iter().zip(given.iter_mut()) {
            if slot.is_some()
                || !spec.env
                || spec.group.is_some_and(|g| flagged_groups.contains(&g))
            {
                continue;
            }
            let var = table::env_name(spec.long);
            let Some(raw_value) = env(&var) else { continue };
            let text = raw_value
                .into_string()
                .map_err(|_| format!("{var}: the value is not valid UTF-8"))?;
            if text.is_empty() {
                continue;
            }
            let value = match spec.value {
                Some(_) => Some(text),
                None if env_switch(&var, &text)? => None,
                None => continue,
            };
            *slot = Some(Given {
                name: var,
                value,
                from_env: true,
            });
        }

        let mut options = Options::default();
        let mut allow_actions = false;
        let mut token: Option<Given> = None;
        for (spec, g) in table::OPTIONS.iter().zip(&given) {
            let Some(g) = g else { continue };
            options.apply(spec.long, g, &mut allow_actions, &mut token)?;
        }
        if command.is_empty() {
            return Err(format!("no command given; {AFTER_DASHES}"));
        }
        let comparable = matches!(
            (options.warn, options.critical),
            (Threshold::Percent(_), Threshold::Percent(_))
                | (Threshold::Bytes(_), Threshold::Bytes(_))
        );
        // Percentages compare alike for every limit; a mix waits for the limit (`thresholds`).
        if comparable && options.warn.bytes(MAX_LIMIT) >= options.critical.bytes(MAX_LIMIT) {
            return Err(format!(
                "{} {} must be below {} {}",
                options.names.warn, options.warn, options.names.critical, options.critical
            ));
        }
        options.action_token = match (allow_actions, token) {
            (false, Some(t)) if !t.from_env => {
                return Err(
                    "--action-token is used only with --allow-actions; add --allow-actions or drop the token".to_string(),
                )
            }
            // Without --allow-actions the variable is ignored.
            (false, _) => None,
            (true, Some(t)) => Some(Secret::new(&t.name, t.text().to_string())?),
            (true, None) => {
                return Err(format!(
                    "--allow-actions needs a token: set {ACTION_TOKEN_ENV} (or --action-token TOKEN) and send `Authorization: Bearer TOKEN`"
                ))
            }
        };
        options.command = command;
        Ok(Parsed::Run(Box::new(options)))
    }

    /// One option's value into the options.
    fn apply(
        &mut self,
        long: &str,
        g: &Given,
        allow_actions: &mut bool,
        token: &mut Option<Given>,
    ) -> Result<(), String> {
        let shown = g.shown();
        let text = g.text();
        match long {
            "limit" => {
                let size = ByteSize::parse(text).map_err(|e| format!("{shown}: {e}"))?;
                if size.bytes() < 6 * 1024 * 1024 {
                    return Err(format!("{shown}: too small; a container needs at least 6M"));
                }
                if size.bytes() >= MAX_LIMIT {
                    return Err(format!(
                        "{shown}: too large; memory limits are below 4096P (4 EiB)"
                    ));
                }
                self.limit = Some(size.bytes());
                self.names.limit = g.name.clone();
            }
            "warn" => {
                self.warn = Threshold::parse(&shown, text)?;
                self.names.warn = g.name.clone();
            }
            "critical" => {
                self.critical = Threshold::parse(&shown, text)?;
                self.names.critical = g.name.clone();
            }
            "sustain" => self.sustain = duration(&shown, text)?,
            "startup-grace" => self.startup_grace = duration(&shown, text)?,
            "cooldown" => self.cooldown = duration(&shown, text)?,
            "grace" => self.grace = duration(&shown, text)?,
            "action-interval" => {
                let d = duration(&shown, text)?;
                if d < Duration::from_secs(1) {
                    return Err(format!("{shown}: use at least 1s"));
                }
                self.action_interval = d;
            }
            "max-interval" => {
                let d = bounded_duration(&shown, text, MAX_SAMPLING_INTERVAL)?;
                if d < Duration::from_millis(10) {
                    return Err(format!("{shown}: use at least 10ms"));
                }
                self.max_interval = d;
            }
            "max-restarts" => {
                let usage = || format!("{shown}: use N/DURATION, e.g. 5/10m");
                let (n, d) = text.split_once('/').ok_or_else(usage)?;
                let count = n.parse::<u32>().map_err(|_| usage())?;
                let window = duration(&shown, d).map_err(|e| {
                    if e.contains("too long") {
                        format!(
                            "{shown}: the window is too long; use at most {}",
                            describe(MAX_DURATION)
                        )
                    } else {
                        usage()
                    }
                })?;
                self.max_restarts = RestartLimit { count, window };
            }
            "on-warn" => self.on_warn = Action::parse(&shown, text, false)?,
            "on-critical" => self.on_critical = Action::parse(&shown, text, true)?,
            "signal-group" => self.signal_group = true,
            "allow-actions" => *allow_actions = true,
            "action-token" => *token = Some(g.clone()),
            "health-details" => self.health_details = true,
            "no-listen" => self.listen = None,
            "no-runtime-view" => self.runtime_view = false,
            "listen" => {
                self.listen = Some(
                    text.parse()
                        .map_err(|_| format!("{shown}: use HOST:PORT, e.g. 0.0.0.0:9464"))?,
                );
            }
            "log-format" => {
                self.log_format = match text {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(format!("{shown}: use text or json")),
                }
            }
            other => unreachable!("--{other} is in the table but not applied"),
        }
        Ok(())
    }

    /// The warning and critical thresholds in bytes for `limit`, checked against each other and
    /// the limit (a mix of a percentage and a size can only be checked here).
    pub fn thresholds(&self, limit: u64, limit_from: &str) -> Result<(u64, u64), String> {
        let (warn, critical) = (self.warn.bytes(limit), self.critical.bytes(limit));
        for (name, threshold, bytes) in [
            (&self.names.warn, self.warn, warn),
            (&self.names.critical, self.critical, critical),
        ] {
            if bytes > limit {
                return Err(format!(
                    "{name} {threshold} is above the {} limit (from {limit_from}); use a percentage (e.g. 90%) or a smaller size",
                    ByteSize(limit)
                ));
            }
        }
        if warn >= critical {
            return Err(format!(
                "{} {} ({}) must be below {} {} ({}) for the {} limit",
                self.names.warn,
                self.warn,
                ByteSize(warn),
                self.names.critical,
                self.critical,
                ByteSize(critical),
                ByteSize(limit)
            ));
        }
        Ok((warn, critical))
    }
}

/// lexopt's errors in the guard's words.
fn lexopt_error(e: &lexopt::Error) -> String {
    match e {
        lexopt::Error::UnexpectedValue { option, .. } => {
            format!("{option} takes no value; drop the `=…`")
        }
        other => format!("{other}; see memfit guard --help"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, Option<String>> {
        parse_with_token(args, None)
    }

    /// The options, `Err(None)` for --help or --version; the token as MEMFIT_GUARD_ACTION_TOKEN.
    fn parse_with_token(args: &[&str], token: Option<&str>) -> Result<Options, Option<String>> {
        let raw: Vec<OsString> = args.iter().map(OsString::from).collect();
        let env = |name: &str| {
            (name == ACTION_TOKEN_ENV)
                .then_some(token)
                .flatten()
                .map(OsString::from)
        };
        match Options::parse(&raw, env) {
            Ok(Parsed::Run(o)) => Ok(*o),
            Ok(_) => Err(None),
            Err(e) => Err(Some(e)),
        }
    }

    #[test]
    fn defaults_and_values() {
        let o = parse(&[
            "--warn",
            "75%",
            "--critical=400M",
            "--sustain",
            "500ms",
            "--max-restarts",
            "3/1h",
            "--on-warn",
            "signal:USR2",
            "--",
            "node",
            "server.js",
        ])
        .unwrap();
        assert_eq!(o.warn, Threshold::Percent(75.0));
        assert_eq!(o.critical, Threshold::Bytes(400 * 1024 * 1024));
        assert_eq!(o.sustain, Duration::from_millis(500));
        assert_eq!(
            o.max_restarts,
            RestartLimit {
                count: 3,
                window: Duration::from_secs(3600)
            }
        );
        assert_eq!(o.on_warn, Action::Signal(libc::SIGUSR2));
        assert_eq!(o.on_critical, Action::Restart);
        assert_eq!(
            o.command,
            vec![OsString::from("node"), OsString::from("server.js")]
        );
    }

    #[test]
    fn the_command_starts_after_dashes_or_at_the_first_argument_that_is_not_an_option() {
        for args in [
            &["--warn", "70%", "--", "node", "--inspect", "--", "x"][..],
            &["--warn", "70%", "node", "--inspect", "--", "x"][..],
        ] {
            let o = parse(args).unwrap();
            assert_eq!(o.warn, Threshold::Percent(70.0));
            assert_eq!(o.command, ["node", "--inspect", "--", "x"]);
        }
        let err = parse(&["--signal-group=yes", "--", "x"])
            .unwrap_err()
            .unwrap();
        assert!(err.contains("--signal-group takes no value"), "{err}");
    }

    #[test]
    fn errors_say_what_is_accepted() {
        for (args, needle) in [
            (vec!["--"], "no command"),
            (vec!["--warn", "120%", "--", "x"], "from 1% to 100%"),
            (
                vec!["--warn", "90%", "--critical", "80%", "--", "x"],
                "must be below",
            ),
            (vec!["--sustain", "soon", "--", "x"], "500ms, 2s"),
            (vec!["--on-warn", "restart", "--", "x"], "signal:NAME"),
            (
                vec!["--on-critical", "signal:FOO", "--", "x"],
                "unknown signal",
            ),
            (vec!["--limit", "lots", "--", "x"], "invalid size"),
            (vec!["--bogus", "--", "x"], "unknown option"),
            (vec!["--listen", "nowhere", "--", "x"], "HOST:PORT"),
            (vec!["--max-restarts", "5", "--", "x"], "N/DURATION"),
        ] {
            let err = parse(&args).unwrap_err().unwrap();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        assert!(parse(&["--help"]).unwrap_err().is_none());
    }

    #[test]
    fn durations_too_long_for_the_clock_are_errors_not_panics() {
        for text in [
            "18000000000000000000s",
            "99999999999999999999999999999999999999h",
            "1e400s",
            "8d",
            "NaNs",
            "infs",
        ] {
            assert!(parse(&["--grace", text, "--", "x"]).is_err(), "{text}");
            assert!(parse(&["--max-restarts", &format!("1/{text}"), "--", "x"]).is_err());
        }
        assert_eq!(parse_duration("99999999999999999999999999d"), None);
        assert_eq!(
            parse(&["--grace", "7d", "--", "x"]).unwrap().grace,
            MAX_DURATION
        );
    }

    #[test]
    fn the_action_token_comes_from_the_flag_or_the_environment() {
        let token = "0123456789abcdef0123456789abcdef";
        let from_env = parse_with_token(&["--allow-actions", "--", "x"], Some(token)).unwrap();
        assert_eq!(from_env.action_token.unwrap().as_bytes(), token.as_bytes());
        // Without --allow-actions the variable is ignored.
        let off = parse_with_token(&["--", "x"], Some(token)).unwrap();
        assert!(off.action_token.is_none());
        let err = parse_with_token(&["--allow-actions", "--", "x"], Some("short"))
            .unwrap_err()
            .unwrap();
        assert!(err.starts_with("MEMFIT_GUARD_ACTION_TOKEN: "), "{err}");
        let err = parse(&[
            "--allow-actions",
            "--action-token",
            "with a space in it ok",
            "--",
            "x",
        ])
        .unwrap_err()
        .unwrap();
        assert!(err.contains("without spaces"), "{err}");
        // Debug output never shows it.
        let o = parse(&["--allow-actions", "--action-token", token, "--", "x"]).unwrap();
        assert!(!format!("{o:?}").contains(token));
    }

    #[test]
    fn thresholds_are_checked_against_each_other_and_the_limit() {
        const MIB: u64 = 1024 * 1024;
        // 80% is below 900M in 1 GiB, above it in 2 GiB.
        let o = parse(&["--warn", "80%", "--critical", "900M", "--", "x"]).unwrap();
        assert_eq!(
            o.thresholds(1000 * MIB, "--limit").unwrap(),
            (800 * MIB, 900 * MIB)
        );
        let err = o.thresholds(2048 * MIB, "--limit").unwrap_err();
        assert!(err.contains("must be below --critical 900 MiB"), "{err}");
        let o = parse(&["--critical", "2G", "--", "x"]).unwrap();
        let err = o.thresholds(1024 * MIB, "the cgroup").unwrap_err();
        assert!(
            err.starts_with("--critical 2 GiB is above the 1 GiB limit (from the cgroup)"),
            "{err}"
        );
        assert!(parse(&["--warn", "0", "--", "x"]).is_err());
    }
}
