//! Command-line options, parsed by hand: the guard ships inside containers and carries no
//! argument-parsing framework. Every error is one line that says what is accepted.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use memfit_core::ByteSize;

/// A threshold: a share of the limit or an absolute size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Percent(f64),
    Bytes(u64),
}

impl Threshold {
    pub fn bytes(self, limit: u64) -> u64 {
        match self {
            Threshold::Percent(p) => (limit as f64 * p / 100.0) as u64,
            Threshold::Bytes(b) => b,
        }
    }

    fn parse(flag: &str, text: &str) -> Result<Threshold, String> {
        if let Some(p) = text.strip_suffix('%') {
            match p.trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 100.0 => return Ok(Threshold::Percent(v)),
                _ => return Err(format!("{flag} {text}: use a percentage of the limit from 1% to 100% (e.g. 80%) or a size (e.g. 400M)")),
            }
        }
        match ByteSize::parse(text) {
            Ok(b) if b.bytes() == 0 => Err(format!(
                "{flag} {text}: use a size above 0 or a percentage of the limit (e.g. 80%)"
            )),
            Ok(b) if b.bytes() >= MAX_LIMIT => Err(format!(
                "{flag} {text}: too large; memory sizes are below 4096P (4 EiB)"
            )),
            Ok(b) => Ok(Threshold::Bytes(b.bytes())),
            Err(_) => Err(format!(
                "{flag} {text}: use a percentage of the limit (e.g. 80%) or a size (e.g. 400M)"
            )),
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Threshold::Percent(p) => write!(f, "{p}%"),
            Threshold::Bytes(b) => write!(f, "{}", ByteSize(*b)),
        }
    }
}

/// What to do when a threshold is crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Only the log line.
    Log,
    /// Restart the child: SIGTERM, the grace period, SIGKILL, start again.
    Restart,
    /// Stop the child the same way and exit.
    Stop,
    Signal(i32),
    /// `sh -c CMD`, with MEMFIT_GUARD_* variables.
    Exec(String),
}

impl Action {
    fn parse(flag: &str, text: &str, allow_lifecycle: bool) -> Result<Action, String> {
        let accepted = if allow_lifecycle {
            "restart, stop, log, signal:NAME or exec:CMD"
        } else {
            "log, signal:NAME (e.g. signal:USR2) or exec:CMD"
        };
        match text {
            "log" => Ok(Action::Log),
            "restart" if allow_lifecycle => Ok(Action::Restart),
            "stop" if allow_lifecycle => Ok(Action::Stop),
            _ => {
                if let Some(name) = text.strip_prefix("signal:") {
                    signal_number(name)
                        .map(Action::Signal)
                        .ok_or_else(|| format!("{flag} {text}: unknown signal `{name}`; use a name such as USR2, TERM, HUP"))
                } else if let Some(cmd) = text.strip_prefix("exec:") {
                    if cmd.trim().is_empty() {
                        Err(format!("{flag} exec: needs a command, e.g. exec:'curl -X POST localhost:3000/cache/clear'"))
                    } else {
                        Ok(Action::Exec(cmd.to_string()))
                    }
                } else {
                    Err(format!("{flag} {text}: use {accepted}"))
                }
            }
        }
    }
}

/// A signal by name (`USR2`, `SIGUSR2`) or number.
pub fn signal_number(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let number = match bare {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        "PWR" => libc::SIGPWR,
        _ => return bare.parse().ok().filter(|n| (1..=64).contains(n)),
    };
    Some(number)
}

pub fn signal_name(number: i32) -> String {
    let name = match number {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGTERM => "SIGTERM",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGCONT => "SIGCONT",
        libc::SIGWINCH => "SIGWINCH",
        _ => return format!("signal {number}"),
    };
    name.to_string()
}

/// `2s`, `500ms`, `10m`, `1h`, `1.5s`, `7d`. `None` for anything else, including a duration
/// too long for [`Duration`] (it would panic in `Duration::from_secs_f64`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

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
/// unlike `--action-token`).
pub const ACTION_TOKEN_ENV: &str = "MEMFIT_GUARD_ACTION_TOKEN";

/// Tokens shorter than this are guessable.
const MIN_TOKEN_LEN: usize = 16;

/// The bearer token `POST /actions/restart` needs. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Where the token came from names it in the error.
    fn new(source: &str, token: String) -> Result<Secret, String> {
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!("{source}: the action token needs at least {MIN_TOKEN_LEN} characters (e.g. from `openssl rand -hex 32`)"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("{source}: the action token must be printable ASCII without spaces (it is sent as `Authorization: Bearer TOKEN`)"));
        }
        Ok(Secret(token))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// `--max-restarts N/DURATION`: at most `count` memory restarts within any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartLimit {
    pub count: u32,
    pub window: Duration,
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
    /// Slowest sampling period (far from the limit).
    pub max_interval: Duration,
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
            max_interval: Duration::from_secs(1),
            command: Vec::new(),
        }
    }
}

pub const USAGE: &str = "usage: memfit guard [OPTIONS] -- CMD [ARGS...]

Runs CMD as its child (as PID 1 or as a subreaper): forwards signals, reaps zombies, exits with
CMD's status, and acts before the kernel's OOM killer does.

  --limit SIZE             memory limit (default: the container's cgroup, else the machine's RAM)
  --warn PCT|SIZE          warning threshold (default 80%)
  --critical PCT|SIZE      critical threshold (default 92%)
  --sustain DURATION       a breach must last this long before an action (default 2s; acted on
                           at once when the growth rate says the limit is nearer than that)
  --startup-grace DURATION no action this long after a (re)start unless the limit is imminent (default 10s)
  --cooldown DURATION      at least this long between two actions of a level (default 30s)
  --max-restarts N/DURATION  memory restarts allowed per window (default 5/10m)
  --on-warn ACTION         log | signal:NAME (e.g. USR2 for a heap snapshot) | exec:CMD (default log)
  --on-critical ACTION     restart | stop | log | signal:NAME | exec:CMD (default restart)
  --grace DURATION         SIGTERM → SIGKILL delay when stopping (default 10s)
  --signal-group           forward signals to CMD's process group
  --listen ADDR            HTTP for /health/memory and /metrics (default 127.0.0.1:9464)
  --no-listen              no HTTP
  --health-details         full command lines on /health/memory (default: executable names only)
  --allow-actions          allow POST /actions/restart over HTTP, with `Authorization: Bearer TOKEN`;
                           the token from MEMFIT_GUARD_ACTION_TOKEN or --action-token TOKEN
  --action-interval DURATION  at most one restart over HTTP per DURATION (default 30s)
  --max-interval DURATION  slowest sampling period, far from the limit (default 1s)

Durations: 500ms, 2s, 10m, 1h, 1d (at most 7d). Sizes: 400M, 1.5G (below 4096P).

Exit status: CMD's (128 + signal when it was killed); 2 for usage errors.";

fn value<'a>(args: &'a [String], i: &mut usize, flag: &str) -> Result<&'a str, String> {
    *i += 1;
    args.get(*i)
        .map(String::as_str)
        .ok_or_else(|| format!("{flag} needs a value; see memfit guard --help"))
}

fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    bounded_duration(flag, text, MAX_DURATION)
}

/// A duration of at most `max`; every error names the flag and what is accepted.
fn bounded_duration(flag: &str, text: &str, max: Duration) -> Result<Duration, String> {
    let too_long = || format!("{flag} {text}: too long; use at most {}", describe(max));
    match parse_duration(text) {
        Some(d) if d > max => Err(too_long()),
        Some(d) => Ok(d),
        // A number with a known unit that does not fit a Duration is too long, not malformed.
        None if text.trim().ends_with(['s', 'm', 'h', 'd'])
            && text.trim().starts_with(|c: char| c.is_ascii_digit()) =>
        {
            let digits = text
                .trim()
                .trim_end_matches(|c: char| c.is_ascii_alphabetic());
            if digits.parse::<f64>().is_ok_and(f64::is_finite) {
                Err(too_long())
            } else {
                Err(format!(
                    "{flag} {text}: use a duration such as 500ms, 2s, 10m or 1h"
                ))
            }
        }
        None => Err(format!(
            "{flag} {text}: use a duration such as 500ms, 2s, 10m or 1h"
        )),
    }
}

/// `7d`, `60s`: a bound as the user would type it.
fn describe(d: Duration) -> String {
    let s = d.as_secs();
    if s % 86400 == 0 {
        format!("{}d", s / 86400)
    } else {
        format!("{s}s")
    }
}

impl Options {
    /// Parses the arguments after `memfit guard`, with the value of MEMFIT_GUARD_ACTION_TOKEN
    /// when it is set. `Err(None)` means --help.
    pub fn parse(
        raw: &[OsString],
        token_from_env: Option<OsString>,
    ) -> Result<Options, Option<String>> {
        let mut options = Options::default();
        let mut allow_actions = false;
        let mut token_flag: Option<String> = None;
        let split = raw.iter().position(|a| a == "--");
        let (flags, command) = match split {
            Some(p) => (&raw[..p], &raw[p + 1..]),
            None => (raw, &raw[raw.len()..]),
        };
        let args: Vec<String> = flags
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].as_str();
            // --flag=value is accepted too.
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (arg, None),
            };
            let take = |i: &mut usize| -> Result<String, String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => value(&args, i, flag).map(str::to_string),
                }
            };
            match flag {
                "-h" | "--help" => return Err(None),
                "--limit" => {
                    let v = take(&mut i)?;
                    let size = ByteSize::parse(&v).map_err(|e| Some(e.to_string()))?;
                    if size.bytes() < 6 * 1024 * 1024 {
                        return Err(Some(format!("--limit {v}: too small; a container needs at least 6M")));
                    }
                    if size.bytes() >= MAX_LIMIT {
                        return Err(Some(format!("--limit {v}: too large; memory limits are below 4096P (4 EiB)")));
                    }
                    options.limit = Some(size.bytes());
                }
                "--warn" => options.warn = Threshold::parse(flag, &take(&mut i)?)?,
                "--critical" => options.critical = Threshold::parse(flag, &take(&mut i)?)?,
                "--sustain" => options.sustain = duration(flag, &take(&mut i)?)?,
                "--startup-grace" => options.startup_grace = duration(flag, &take(&mut i)?)?,
                "--cooldown" => options.cooldown = duration(flag, &take(&mut i)?)?,
                "--grace" => options.grace = duration(flag, &take(&mut i)?)?,
                "--action-interval" => {
                    let d = duration(flag, &take(&mut i)?)?;
                    if d < Duration::from_secs(1) {
                        return Err(Some("--action-interval: use at least 1s".to_string()));
                    }
                    options.action_interval = d;
                }
                "--max-interval" => {
                    let d = bounded_duration(flag, &take(&mut i)?, MAX_SAMPLING_INTERVAL)?;
                    if d < Duration::from_millis(10) {
                        return Err(Some("--max-interval: use at least 10ms".to_string()));
                    }
                    options.max_interval = d;
                }
                "--max-restarts" => {
                    let v = take(&mut i)?;
                    let usage = || format!("--max-restarts {v}: use N/DURATION, e.g. 5/10m");
                    let (n, d) = v.split_once('/').ok_or_else(usage)?;
                    let count = n.parse::<u32>().map_err(|_| usage())?;
                    let window = duration(flag, d).map_err(|e| {
                        if e.contains("too long") { format!("--max-restarts {v}: the window is too long; use at most {}", describe(MAX_DURATION)) } else { usage() }
                    })?;
                    options.max_restarts = RestartLimit { count, window };
                }
                "--on-warn" => options.on_warn = Action::parse(flag, &take(&mut i)?, false)?,
                "--on-critical" => options.on_critical = Action::parse(flag, &take(&mut i)?, true)?,
                "--signal-group" => options.signal_group = true,
                "--allow-actions" => allow_actions = true,
                "--action-token" => token_flag = Some(take(&mut i)?),
                "--health-details" => options.health_details = true,
                "--no-listen" => options.listen = None,
                "--listen" => {
                    let v = take(&mut i)?;
                    options.listen = Some(v.parse().map_err(|_| format!("--listen {v}: use HOST:PORT, e.g. 0.0.0.0:9464"))?);
                }
                other => {
                    return Err(Some(format!(
                        "unknown option `{other}`; put the command after `--`, e.g. memfit guard -- node server.js (see --help)"
                    )))
                }
            }
            i += 1;
        }
        if command.is_empty() {
            return Err(Some(
                "no command given; put it after `--`, e.g. memfit guard -- node server.js"
                    .to_string(),
            ));
        }
        let comparable = matches!(
            (options.warn, options.critical),
            (Threshold::Percent(_), Threshold::Percent(_))
                | (Threshold::Bytes(_), Threshold::Bytes(_))
        );
        // Percentages compare alike for every limit; a mix waits for the limit (`thresholds`).
        if comparable && options.warn.bytes(MAX_LIMIT) >= options.critical.bytes(MAX_LIMIT) {
            return Err(Some(format!(
                "--warn {} must be below --critical {}",
                options.warn, options.critical
            )));
        }
        options.action_token = match (allow_actions, token_flag, token_from_env) {
            (false, Some(_), _) => {
                return Err(Some(
                    "--action-token is used only with --allow-actions; add --allow-actions or drop the token".to_string(),
                ))
            }
            (false, None, _) => None,
            (true, Some(token), _) => Some(Secret::new("--action-token", token)?),
            (true, None, Some(token)) => Some(Secret::new(
                ACTION_TOKEN_ENV,
                token.to_string_lossy().into_owned(),
            )?),
            (true, None, None) => {
                return Err(Some(format!(
                    "--allow-actions needs a token: set {ACTION_TOKEN_ENV} (or --action-token TOKEN) and send `Authorization: Bearer TOKEN`"
                )))
            }
        };
        options.command = command.to_vec();
        Ok(options)
    }

    /// The warning and critical thresholds in bytes for `limit`, checked against each other and
    /// the limit (a mix of a percentage and a size can only be checked here).
    pub fn thresholds(&self, limit: u64, limit_from: &str) -> Result<(u64, u64), String> {
        let (warn, critical) = (self.warn.bytes(limit), self.critical.bytes(limit));
        for (flag, threshold, bytes) in [
            ("--warn", self.warn, warn),
            ("--critical", self.critical, critical),
        ] {
            if bytes > limit {
                return Err(format!(
                    "{flag} {threshold} is above the {} limit (from {limit_from}); use a percentage (e.g. 90%) or a smaller size",
                    ByteSize(limit)
                ));
            }
        }
        if warn >= critical {
            return Err(format!(
                "--warn {} ({}) must be below --critical {} ({}) for the {} limit",
                self.warn,
                ByteSize(warn),
                self.critical,
                ByteSize(critical),
                ByteSize(limit)
            ));
        }
        Ok((warn, critical))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, Option<String>> {
        let raw: Vec<OsString> = args.iter().map(OsString::from).collect();
        Options::parse(&raw, None)
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
        let raw = |args: &[&str]| args.iter().map(OsString::from).collect::<Vec<_>>();
        let token = "0123456789abcdef0123456789abcdef";
        let from_env =
            Options::parse(&raw(&["--allow-actions", "--", "x"]), Some(token.into())).unwrap();
        assert_eq!(from_env.action_token.unwrap().as_bytes(), token.as_bytes());
        // Without --allow-actions the variable is ignored.
        let off = Options::parse(&raw(&["--", "x"]), Some(token.into())).unwrap();
        assert!(off.action_token.is_none());
        let err = Options::parse(&raw(&["--allow-actions", "--", "x"]), Some("short".into()))
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
