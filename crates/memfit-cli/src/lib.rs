//! The command line's definitions as a library, so that the fuzz targets (`fuzz/`) parse
//! arguments exactly as the `memfit` binary does, and the output convention
//! ([`report_format`]) that every reporting command shares. Everything else of the CLI lives in the
//! binary (src/main.rs).

pub mod args;
pub mod report_format;
