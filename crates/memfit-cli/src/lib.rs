//! The command line's definitions as a library, so that the fuzz targets (`fuzz/`) parse
//! arguments exactly as the `memfit` binary does. Everything else of the CLI lives in the
//! binary (src/main.rs).

pub mod args;
