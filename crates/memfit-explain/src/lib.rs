//! Why did it die? memfit-explain reads a build, CI, deploy or kernel log and answers: memory
//! or not (`oom`, `not-oom`, `uncertain`), which kind of memory failure, which process, what
//! limit — with the decisive lines quoted and remedies made from the facts it found.
//!
//! The knowledge is data: `signatures.toml`, `facts.toml` and `remedies.toml` (embedded at
//! build time) hold every signature with its meaning and source, every fact extractor and
//! every remedy. This crate streams
//! logs of any size with flat memory ([`scan`]), in UTF-8 or UTF-16 ([`decode`]), without the
//! colours and timestamps CI services add ([`clean`]), weighs the evidence ([`verdict`]) and
//! fills the remedies that fit ([`remedy`]). A typo in the data fails at load with its line
//! ([`knowledge`]). It does not run anything, read cgroups or print: memfit-cli renders its
//! [`Explanation`].

mod clean;
mod decode;
mod knowledge;
mod remedy;
mod report;
mod scan;
mod verdict;

pub use report::{Evidence, Explanation, HeapCeiling, Kind, Remedy, SubReason, Verdict};

use std::io::Read;

/// Explains a log read from `reader`; `exit_code` is the status the user saw, if known.
pub fn explain<R: Read>(reader: R, exit_code: Option<i32>) -> std::io::Result<Explanation> {
    let scanned = scan::scan(reader, knowledge::get())?;
    Ok(verdict::decide(&scanned, exit_code, knowledge::get()))
}

/// Explains an exit status alone, without a log.
pub fn explain_exit_code(code: i32) -> Explanation {
    verdict::decide(&scan::Scanned::default(), Some(code), knowledge::get())
}

/// Ids of every signature, for documentation and tests.
pub fn signature_ids() -> Vec<&'static str> {
    knowledge::get()
        .signatures
        .iter()
        .map(|s| s.id.as_str())
        .collect()
}
