//! The guest-facing interfaces: WASI and RUSM's own imports, one bridge per guest kind.

pub(crate) mod wasip1;
pub(crate) mod wasip2;
pub(crate) mod wasip3;
