//! What a command is sized for: the memory limit and CPUs of a container or a plan, resolved
//! once from `--limit`, `--platform` and `memfit.toml` by [`Target::resolve`], the one
//! function every command calls.

use std::fmt;

use crate::platform::{self, Platform};
use crate::size::{ByteSize, MIB};

/// Docker refuses limits under 6 MiB ("Minimum memory limit allowed is 6MB",
/// moby/moby daemon/daemon_unix.go `linuxMinMemory`).
pub const MIN_LIMIT: ByteSize = ByteSize(6 * MIB);

/// Where the target's memory limit comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSource {
    /// `--limit SIZE`.
    LimitFlag,
    /// `--platform NAME`.
    PlatformFlag,
    /// `limit = "…"` in the project's memfit.toml, as written there.
    ConfigLimit(String),
    /// `platform = "…"` in the project's memfit.toml.
    ConfigPlatform,
}

/// The memory limit, the CPUs, and what they rest on.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub memory: ByteSize,
    /// CPU time: `--cpus`, else the plan's vCPUs (fractional for shared plans). Applied as a
    /// quota, as the platforms and `docker run --cpus` apply it.
    pub cpus: Option<f64>,
    /// The plan, when the limit came from one.
    pub platform: Option<&'static Platform>,
    pub source: TargetSource,
    /// What the numbers do not capture, for the reports (a plan's swap, a shared CPU).
    pub caveats: Vec<String>,
}

/// What the user asked for, before resolution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetRequest<'a> {
    pub limit: Option<ByteSize>,
    pub platform: Option<&'a str>,
    pub cpus: Option<f64>,
    /// The project's memfit.toml settings, used when no flag gives a limit.
    pub config: Option<ConfigTarget>,
}

/// `limit = "512M"` or `platform = "render:starter"` from memfit.toml.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigTarget {
    Limit { size: ByteSize, written: String },
    Platform(&'static Platform),
}

/// Why a request cannot be resolved; the message says what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("unknown platform `{name}`; known: {} (memfit run --platform list shows them all)", .suggestions.join(", "))]
    UnknownPlatform {
        name: String,
        suggestions: Vec<&'static str>,
    },
    #[error("limit {0} is too small: a container needs at least 6M (Docker's minimum); e.g. --limit 256M")]
    TooSmall(ByteSize),
}

impl Target {
    /// Resolves a request: `--limit` wins over `--platform`, flags over memfit.toml. `None`
    /// when nothing sets a limit.
    pub fn resolve(request: &TargetRequest) -> Result<Option<Target>, TargetError> {
        let target = if let Some(size) = request.limit {
            Some(Target::of_limit(size, TargetSource::LimitFlag))
        } else if let Some(name) = request.platform {
            let plan = platform::find(name).ok_or_else(|| TargetError::UnknownPlatform {
                name: name.to_string(),
                suggestions: platform::suggestions(name),
            })?;
            Some(Target::of_platform(plan, TargetSource::PlatformFlag))
        } else {
            match &request.config {
                Some(ConfigTarget::Limit { size, written }) => Some(Target::of_limit(
                    *size,
                    TargetSource::ConfigLimit(written.clone()),
                )),
                Some(ConfigTarget::Platform(plan)) => {
                    Some(Target::of_platform(plan, TargetSource::ConfigPlatform))
                }
                None => None,
            }
        };
        let Some(mut target) = target else {
            return Ok(None);
        };
        if target.memory < MIN_LIMIT {
            return Err(TargetError::TooSmall(target.memory));
        }
        if request.cpus.is_some() {
            target.cpus = request.cpus;
        }
        Ok(Some(target))
    }

    fn of_limit(memory: ByteSize, source: TargetSource) -> Target {
        Target {
            memory,
            cpus: None,
            platform: None,
            source,
            caveats: Vec::new(),
        }
    }

    fn of_platform(plan: &'static Platform, source: TargetSource) -> Target {
        let mut caveats = Vec::new();
        if !plan.note.is_empty() {
            caveats.push(format!("{}: {}", plan.name, plan.note));
        }
        Target {
            memory: plan.memory,
            cpus: plan.cpus.map(f64::from),
            platform: Some(plan),
            source,
            caveats,
        }
    }

    /// The plan's name, when the limit came from one.
    pub fn platform_name(&self) -> Option<&'static str> {
        self.platform.map(|p| p.name)
    }

    /// Where the limit comes from, as a reader would type it: `--limit 512 MiB`,
    /// `--platform render:starter`, `memfit.toml limit = "512M"`.
    pub fn source_text(&self) -> String {
        match (&self.source, self.platform) {
            (TargetSource::LimitFlag, _) => format!("--limit {}", self.memory),
            (TargetSource::PlatformFlag, Some(plan)) => format!("--platform {}", plan.name),
            (TargetSource::ConfigLimit(written), _) => format!("memfit.toml limit = \"{written}\""),
            (TargetSource::ConfigPlatform, Some(plan)) => {
                format!("memfit.toml platform = \"{}\"", plan.name)
            }
            (TargetSource::PlatformFlag | TargetSource::ConfigPlatform, None) => {
                "a platform".to_string()
            }
        }
    }
}

impl fmt::Display for Target {
    /// `512 MiB (--platform render:starter)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.memory, self.source_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(request: TargetRequest) -> Result<Option<Target>, TargetError> {
        Target::resolve(&request)
    }

    #[test]
    fn a_limit_flag_wins_over_a_platform_and_the_config() {
        let target = resolve(TargetRequest {
            limit: Some(ByteSize::mib(300)),
            platform: Some("render:starter"),
            cpus: None,
            config: Some(ConfigTarget::Platform(
                platform::find("fly:shared-cpu-1x").unwrap(),
            )),
        })
        .unwrap()
        .unwrap();
        assert_eq!(target.memory, ByteSize::mib(300));
        assert_eq!(target.source_text(), "--limit 300 MiB");
        assert_eq!(target.cpus, None);
    }

    #[test]
    fn a_platform_brings_its_cpu_time() {
        let target = resolve(TargetRequest {
            platform: Some("render:starter"),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!(target.memory, ByteSize::mib(512));
        assert_eq!(target.cpus, Some(0.5));
        assert_eq!(target.platform_name(), Some("render:starter"));
        assert_eq!(target.to_string(), "512 MiB (--platform render:starter)");
    }

    #[test]
    fn the_config_applies_only_without_flags() {
        let config = ConfigTarget::Limit {
            size: ByteSize::mib(256),
            written: "256M".into(),
        };
        let target = resolve(TargetRequest {
            cpus: Some(2.0),
            config: Some(config),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!(target.source_text(), "memfit.toml limit = \"256M\"");
        assert_eq!(target.cpus, Some(2.0));
        assert_eq!(resolve(TargetRequest::default()), Ok(None));
    }

    #[test]
    fn unknown_platforms_and_tiny_limits_are_refused_with_a_hint() {
        let unknown = resolve(TargetRequest {
            platform: Some("render:huge"),
            ..Default::default()
        })
        .unwrap_err();
        assert!(unknown.to_string().contains("render:starter"), "{unknown}");
        let tiny = resolve(TargetRequest {
            limit: Some(ByteSize::mib(5)),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(tiny, TargetError::TooSmall(ByteSize::mib(5)));
    }
}
