//! The command's environment, as a container gives it: by default memfit's own (a CI step's
//! view), or — with `clear` — only what the run sets, as a container starts from its image's
//! environment. Host variables that change how a runtime sizes its memory are named in the
//! report when they reach the command.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// What the command's environment is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// Start from nothing but `PATH` and `HOME` (so the command's programs are found), as a
    /// container starts from its image's environment.
    pub clear: bool,
    /// Variables to set, in order (a later one wins): `--env`, `--env-file`.
    pub set: Vec<Variable>,
}

/// `NAME=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: OsString,
    pub value: OsString,
}

/// Host variables that change a runtime's memory: its heap caps and flags (NODE_OPTIONS,
/// JAVA_TOOL_OPTIONS, the JDK's others), what it loads at start (NODE_EXTRA_CA_CERTS: the
/// certificates are parsed into every Node process), and the Go and glibc knobs.
const RUNTIME_VARIABLES: [&str; 9] = [
    "NODE_OPTIONS",
    "NODE_EXTRA_CA_CERTS",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
    "GOMEMLIMIT",
    "GOGC",
    "MALLOC_ARENA_MAX",
    "PYTHONMALLOC",
];

/// Variables kept by `clear`.
const KEPT_WHEN_CLEARED: [&str; 2] = ["PATH", "HOME"];

/// An environment ready for exec, and the host's runtime variables in it.
pub(crate) struct Built {
    /// `NAME=value` entries.
    pub entries: Vec<OsString>,
    /// `NAME=value` of each runtime variable that came from memfit's own environment.
    pub inherited_runtime: Vec<String>,
}

impl Environment {
    pub(crate) fn build(&self) -> Built {
        self.build_from(std::env::vars_os())
    }

    fn build_from(&self, host: impl Iterator<Item = (OsString, OsString)>) -> Built {
        let mut pairs: Vec<(OsString, OsString)> = host
            .filter(|(name, _)| {
                !self.clear
                    || KEPT_WHEN_CLEARED
                        .iter()
                        .any(|kept| name.as_bytes() == kept.as_bytes())
            })
            .collect();
        let inherited_runtime = pairs
            .iter()
            .filter(|(name, _)| {
                RUNTIME_VARIABLES
                    .iter()
                    .any(|v| name.as_bytes() == v.as_bytes())
                    && !self.set.iter().any(|set| set.name == *name)
            })
            .map(|(name, value)| format!("{}={}", name.to_string_lossy(), value.to_string_lossy()))
            .collect();
        for variable in &self.set {
            pairs.retain(|(existing, _)| *existing != variable.name);
            pairs.push((variable.name.clone(), variable.value.clone()));
        }
        let entries = pairs
            .into_iter()
            .map(|(mut name, value)| {
                name.push("=");
                name.push(value);
                name
            })
            .collect();
        Built {
            entries,
            inherited_runtime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> impl Iterator<Item = (OsString, OsString)> {
        [
            ("PATH", "/usr/bin"),
            ("HOME", "/root"),
            ("NODE_OPTIONS", "--max-old-space-size=4096"),
            ("SECRET", "x"),
        ]
        .into_iter()
        .map(|(n, v)| (n.into(), v.into()))
    }

    #[test]
    fn the_hosts_runtime_variables_are_named_when_they_reach_the_command() {
        let built = Environment::default().build_from(host());
        assert_eq!(built.entries.len(), 4);
        assert_eq!(
            built.inherited_runtime,
            ["NODE_OPTIONS=--max-old-space-size=4096"]
        );
    }

    #[test]
    fn a_cleared_environment_keeps_path_and_home_and_what_is_set() {
        let env = Environment {
            clear: true,
            set: vec![Variable {
                name: "NODE_ENV".into(),
                value: "production".into(),
            }],
        };
        let built = env.build_from(host());
        assert_eq!(
            built.entries,
            [
                OsString::from("PATH=/usr/bin"),
                "HOME=/root".into(),
                "NODE_ENV=production".into()
            ]
        );
        assert!(built.inherited_runtime.is_empty());
    }

    #[test]
    fn a_variable_set_for_the_run_replaces_the_hosts() {
        let env = Environment {
            clear: false,
            set: vec![Variable {
                name: "NODE_OPTIONS".into(),
                value: "--max-old-space-size=384".into(),
            }],
        };
        let built = env.build_from(host());
        assert!(built.inherited_runtime.is_empty());
        assert!(built
            .entries
            .contains(&OsString::from("NODE_OPTIONS=--max-old-space-size=384")));
    }
}
