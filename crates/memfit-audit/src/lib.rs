//! `memfit audit`: a project's memory risks before it deploys.
//!
//! The audit reads a project (Dockerfiles, package manifests and lockfiles, TypeScript and
//! Cargo configuration, platform configuration), builds a model of what ships and how it
//! runs, and checks rules against it. Every rule lives in its own file under `rules/`.

pub mod audit;
pub mod context;
pub mod dockerfile;
pub mod finding;
pub mod fix;
pub mod js;
pub mod json;
pub mod lockfile;
pub mod measured;
pub mod platform;
pub mod project;
pub mod report;
pub mod rules;
pub mod runtime;
pub mod source;
pub mod tsconfig;
pub mod yaml;
