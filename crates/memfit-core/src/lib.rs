//! The shared vocabulary of memfit.
//!
//! This crate holds the small types the other memfit crates speak in: [`ByteSize`]
//! (parsed the way `docker run --memory` parses sizes, printed in binary units), the
//! [`Target`] a command is sized for (resolved once from `--limit`, `--platform` and
//! memfit.toml), the table of PaaS plans ([`platform`]) with the page each number comes from,
//! [`HeapFlags`] (Node's flags as Node reads them), [`CgroupVersion`], and the runtime heap
//! math ([`node`], [`jvm`], [`plan`]) that `memfit plan`, `memfit audit` and `memfit guard` share, and
//! [`text::escape_control`] for showing untrusted text on a terminal. It
//! does no I/O and knows nothing of cgroup files, logs or projects: those belong to
//! `memfit-sys`, `memfit-explain` and `memfit-audit`.

mod cgroup_version;
pub mod heap_flags;
pub mod jvm;
pub mod node;
pub mod plan;
pub mod platform;
mod size;
pub mod target;
pub mod text;

pub use cgroup_version::CgroupVersion;
pub use heap_flags::{HeapFlags, OldSpaceCap};
pub use platform::{Platform, ProcessModel, PLATFORMS};
pub use size::{ByteSize, SizeError, GIB, KIB, MAX_SIZE, MIB};
pub use target::{ConfigTarget, Target, TargetError, TargetRequest, TargetSource};
