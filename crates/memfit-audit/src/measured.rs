//! A `memfit run` report as the audit reads it (`memfit audit --from run.json`): the command
//! the run measured and its processes with their peaks.
//!
//! The audit never runs the project: it runs as root on repositories it did not write. A run
//! the user made of the service measures what the audit cannot know from the files (how large
//! a worker is); the caller reads and checks the report, this is what is left of it.

/// One process of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasuredProcess {
    pub pid: i32,
    pub ppid: i32,
    /// Its command line as the run last read it (a title set with setproctitle included), or
    /// its kernel name when the run knew it only from its exit record.
    pub command: String,
    /// Its own peak RSS (VmHWM): pages it shares with other processes are counted in each.
    pub peak_rss_bytes: u64,
    pub started_ms: u64,
}

/// A run report, reduced to what the audit reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasuredRun {
    /// The report's path as given, for messages.
    pub file: String,
    /// The command memfit ran.
    pub command: Vec<String>,
    pub processes: Vec<MeasuredProcess>,
}

/// The most characters of a command from a report that the audit prints: a report is
/// untrusted, and a command line can be megabytes long.
pub const MAX_COMMAND_CHARS: usize = 200;

/// A command from the report, cut to [`MAX_COMMAND_CHARS`] with `…`.
pub fn shown(command: &str) -> String {
    match command.char_indices().nth(MAX_COMMAND_CHARS) {
        Some((cut, _)) => format!("{}…", &command[..cut]),
        None => command.to_string(),
    }
}

/// The most servers of a run the summary lists.
pub const MAX_SERVERS_SHOWN: usize = 32;

#[cfg(test)]
mod tests {
    #[test]
    fn long_commands_are_cut() {
        assert_eq!(super::shown("gunicorn app:app"), "gunicorn app:app");
        let long = "é".repeat(1000);
        let cut = super::shown(&long);
        assert_eq!(cut.chars().count(), super::MAX_COMMAND_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
