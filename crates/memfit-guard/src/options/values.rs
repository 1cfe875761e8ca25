//! The values options take: thresholds, actions, signals, durations, the action token. Every
//! error starts with where the value came from (`--warn 120%` or `MEMFIT_GUARD_WARN=120%`) and
//! says what is accepted.

use std::time::Duration;

use memfit_core::ByteSize;

use super::{MAX_DURATION, MAX_LIMIT, MIN_TOKEN_LEN};

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

    /// `shown` is where the value came from, as the user wrote it (`--warn 120%`).
    pub(super) fn parse(shown: &str, text: &str) -> Result<Threshold, String> {
        if let Some(p) = text.strip_suffix('%') {
            match p.trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 100.0 => return Ok(Threshold::Percent(v)),
                _ => return Err(format!("{shown}: use a percentage of the limit from 1% to 100% (e.g. 80%) or a size (e.g. 400M)")),
            }
        }
        match ByteSize::parse(text) {
            Ok(b) if b.bytes() == 0 => Err(format!(
                "{shown}: use a size above 0 or a percentage of the limit (e.g. 80%)"
            )),
            Ok(b) if b.bytes() >= MAX_LIMIT => Err(format!(
                "{shown}: too large; memory sizes are below 4096P (4 EiB)"
            )),
            Ok(b) => Ok(Threshold::Bytes(b.bytes())),
            Err(_) => Err(format!(
                "{shown}: use a percentage of the limit (e.g. 80%) or a size (e.g. 400M)"
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
    pub(super) fn parse(shown: &str, text: &str, allow_lifecycle: bool) -> Result<Action, String> {
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
                    signal_number(name).map(Action::Signal).ok_or_else(|| {
                        format!(
                            "{shown}: unknown signal `{name}`; use a name such as USR2, TERM, HUP"
                        )
                    })
                } else if let Some(cmd) = text.strip_prefix("exec:") {
                    if cmd.trim().is_empty() {
                        Err(format!("{shown}: exec: needs a command, e.g. exec:'curl -X POST localhost:3000/cache/clear'"))
                    } else {
                        Ok(Action::Exec(cmd.to_string()))
                    }
                } else {
                    Err(format!("{shown}: use {accepted}"))
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

pub(super) fn duration(shown: &str, text: &str) -> Result<Duration, String> {
    bounded_duration(shown, text, MAX_DURATION)
}

/// A duration of at most `max`; every error names where it came from and what is accepted.
pub(super) fn bounded_duration(shown: &str, text: &str, max: Duration) -> Result<Duration, String> {
    let too_long = || format!("{shown}: too long; use at most {}", describe(max));
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
                    "{shown}: use a duration such as 500ms, 2s, 10m or 1h"
                ))
            }
        }
        None => Err(format!(
            "{shown}: use a duration such as 500ms, 2s, 10m or 1h"
        )),
    }
}

/// `7d`, `60s`: a bound as the user would type it.
pub(super) fn describe(d: Duration) -> String {
    let s = d.as_secs();
    if s % 86400 == 0 {
        format!("{}d", s / 86400)
    } else {
        format!("{s}s")
    }
}

/// The bearer token `POST /actions/restart` needs. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Where the token came from names it in the error.
    pub(super) fn new(source: &str, token: String) -> Result<Secret, String> {
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
