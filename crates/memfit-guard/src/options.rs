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
        ByteSize::parse(text)
            .map(|b| Threshold::Bytes(b.bytes()))
            .map_err(|_| {
                format!(
                    "{flag} {text}: use a percentage of the limit (e.g. 80%) or a size (e.g. 400M)"
                )
            })
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

/// `2s`, `500ms`, `10m`, `1h`, `1.5s`.
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
        _ => return None,
    };
    // Not from_secs_f64: it panics beyond u64::MAX seconds (fuzz/fuzz_targets/cli_args.rs).
    Duration::try_from_secs_f64(seconds).ok()
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
    pub allow_actions: bool,
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
            allow_actions: false,
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
  --allow-actions          allow POST /actions/restart over HTTP
  --max-interval DURATION  slowest sampling period, far from the limit (default 1s)

Exit status: CMD's (128 + signal when it was killed); 2 for usage errors.";

fn value<'a>(args: &'a [String], i: &mut usize, flag: &str) -> Result<&'a str, String> {
    *i += 1;
    args.get(*i)
        .map(String::as_str)
        .ok_or_else(|| format!("{flag} needs a value; see memfit guard --help"))
}

fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    parse_duration(text)
        .ok_or_else(|| format!("{flag} {text}: use a duration such as 500ms, 2s, 10m or 1h"))
}

impl Options {
    /// Parses the arguments after `memfit guard`. `Err(None)` means --help.
    pub fn parse(raw: &[OsString]) -> Result<Options, Option<String>> {
        let mut options = Options::default();
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
                    options.limit = Some(size.bytes());
                }
                "--warn" => options.warn = Threshold::parse(flag, &take(&mut i)?)?,
                "--critical" => options.critical = Threshold::parse(flag, &take(&mut i)?)?,
                "--sustain" => options.sustain = duration(flag, &take(&mut i)?)?,
                "--startup-grace" => options.startup_grace = duration(flag, &take(&mut i)?)?,
                "--cooldown" => options.cooldown = duration(flag, &take(&mut i)?)?,
                "--grace" => options.grace = duration(flag, &take(&mut i)?)?,
                "--max-interval" => {
                    let d = duration(flag, &take(&mut i)?)?;
                    if d < Duration::from_millis(10) {
                        return Err(Some("--max-interval: use at least 10ms".to_string()));
                    }
                    options.max_interval = d;
                }
                "--max-restarts" => {
                    let v = take(&mut i)?;
                    let parsed = v.split_once('/').and_then(|(n, d)| {
                        Some(RestartLimit {
                            count: n.parse::<u32>().ok()?,
                            window: parse_duration(d)?,
                        })
                    });
                    options.max_restarts = parsed.ok_or_else(|| format!("--max-restarts {v}: use N/DURATION, e.g. 5/10m"))?;
                }
                "--on-warn" => options.on_warn = Action::parse(flag, &take(&mut i)?, false)?,
                "--on-critical" => options.on_critical = Action::parse(flag, &take(&mut i)?, true)?,
                "--signal-group" => options.signal_group = true,
                "--allow-actions" => options.allow_actions = true,
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
        if let (Threshold::Percent(w), Threshold::Percent(c)) = (options.warn, options.critical) {
            if w >= c {
                return Err(Some(format!("--warn {w}% must be below --critical {c}%")));
            }
        }
        options.command = command.to_vec();
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, Option<String>> {
        let raw: Vec<OsString> = args.iter().map(OsString::from).collect();
        Options::parse(&raw)
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
}
