//! Realms: which app a process belongs to.
//!
//! Every process has a [`Realm`], fixed at spawn: the one [`SpawnOpts::realm`] names, or
//! else its spawner's, or [`Realm::ROOT`] for a process the embedder starts from outside
//! any process. rusm-otp only records and reports it ([`realm_of`], [`processes_in`],
//! [`unregister_in`]); what a realm may do to another is the Wasm host's policy (its
//! capability profiles), so native code keeps Erlang's rules untouched.
//!
//! [`SpawnOpts::realm`]: crate::SpawnOpts::realm

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Pid;

/// An app's identity: the processes an app started, and everything they spawned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Realm(u64);

impl Realm {
    /// The embedder's realm: processes started from outside any process.
    pub const ROOT: Realm = Realm(0);

    /// A realm no process has yet (unique in this OS process).
    pub fn fresh() -> Realm {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Realm(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The realm as a number (0 is [`Realm::ROOT`]).
    pub fn to_u64(self) -> u64 {
        self.0
    }

    /// A realm from [`Realm::to_u64`].
    pub fn from_u64(v: u64) -> Realm {
        Realm(v)
    }
}

impl std::fmt::Display for Realm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "realm {}", self.0)
    }
}

/// The realm of a live process; `None` if `pid` is not alive.
///
/// # Panics
///
/// Outside a process.
pub fn realm_of(pid: Pid) -> Option<Realm> {
    crate::me().node.realm_of(pid)
}

/// The calling process's realm.
///
/// # Panics
///
/// Outside a process.
pub fn self_realm() -> Realm {
    crate::with_me(|p| p.realm)
}

/// The live processes of `realm`, in pid order.
///
/// # Panics
///
/// Outside a process.
pub fn processes_in(realm: Realm) -> Vec<Pid> {
    crate::me().node.pids_where(|p| p.realm == realm)
}

/// Why [`unregister_in`] removed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnregisterError {
    /// No process has the name.
    #[error("the name is not registered")]
    NotFound,
    /// A process of another realm has it.
    #[error("the name belongs to a process of another app")]
    OtherRealm,
}

/// Removes `name` if the process holding it is of `realm` (check and removal in one step
/// under the registry lock, so a name re-registered meanwhile by another app is never
/// removed).
///
/// # Errors
///
/// [`UnregisterError::NotFound`], [`UnregisterError::OtherRealm`].
///
/// # Panics
///
/// Outside a process.
pub fn unregister_in(name: &str, realm: Realm) -> Result<(), UnregisterError> {
    crate::me().node.unregister_where(name, |p| p.realm == realm)
}
