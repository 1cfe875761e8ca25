//! The shared vocabulary of memfit.
//!
//! This crate holds the small types every other memfit crate speaks in: [`ByteSize`]
//! (parsed the way `docker run --memory` parses sizes, printed in binary units) and the
//! table of PaaS plans ([`platform`]) that `--platform` emulates, each entry with the page
//! it comes from, and the runtime heap math ([`node`], [`plan`]) that `memfit plan`,
//! `memfit audit` and `memfit guard` share. It does no I/O and knows nothing of cgroups, logs or projects: those
//! belong to `memfit-measure`, `memfit-explain` and `memfit-audit`.

pub mod node;
pub mod plan;
pub mod platform;
mod size;

pub use platform::{Platform, PLATFORMS};
pub use size::{ByteSize, SizeError, GIB, KIB, MIB};
