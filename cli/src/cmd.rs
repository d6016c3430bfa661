//! One module a subcommand.

pub mod build;
pub mod check;
pub mod ctl;
pub mod new;
pub mod run;
