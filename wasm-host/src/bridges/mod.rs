//! The guest-facing interfaces: WASI and RUSM's own imports, one bridge per guest kind.

pub(crate) mod wasip1;
