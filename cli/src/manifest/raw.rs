//! `rusm.toml` as written: the serde types, every table `deny_unknown_fields`, every value
//! that is checked after parsing kept [`Spanned`] so its error can point at it.
//!
//! Enumerated values (profile, restart, strategy, …) are read as strings and checked in
//! `check.rs`, where a wrong one gets a "did you mean" instead of serde's variant list.

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub app: Spanned<AppTable>,
    pub supervisor: Option<Spanned<SupervisorTable>>,
    #[serde(default)]
    pub supervisors: IndexMap<Spanned<String>, Spanned<SupervisorTable>>,
    #[serde(default)]
    pub components: IndexMap<Spanned<String>, Spanned<ComponentTable>>,
}

/// `[app]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppTable {
    pub name: Spanned<String>,
}

/// `[supervisor]` and each `[supervisors.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorTable {
    pub strategy: Option<Spanned<String>>,
    pub intensity: Option<Spanned<i64>>,
    /// Seconds.
    pub period: Option<Spanned<i64>>,
}

/// `[components.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentTable {
    pub source: Option<Spanned<String>>,
    pub wasm: Option<Spanned<String>>,
    pub target: Option<Spanned<String>>,
    pub profile: Option<Spanned<String>>,
    pub memory: Option<Spanned<String>>,
    pub instances: Option<Spanned<i64>>,
    pub restart: Option<Spanned<String>>,
    pub shutdown: Option<Spanned<toml::Value>>,
    pub supervisor: Option<Spanned<String>>,
    pub register: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: IndexMap<String, Spanned<String>>,
    #[serde(default)]
    pub files: Vec<Spanned<FileTable>>,
    pub network: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub grants: Vec<Spanned<String>>,
    pub listen: Option<Spanned<String>>,
    #[serde(default)]
    pub start_after: Vec<Spanned<String>>,
}

/// One entry of `files`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTable {
    pub host: Spanned<String>,
    pub guest: Spanned<String>,
    pub mode: Option<Spanned<String>>,
}
