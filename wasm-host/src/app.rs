//! Apps: how many guest processes each app holds, against its quota and the node's pool.
//!
//! Every guest holds one [`Slot`] from just before it is spawned until its store is
//! dropped (when its pool instance is returned). A slot counts against two limits:
//! the app's ([`Quotas::processes`](crate::caps::Quotas::processes), enforced for spawns a
//! guest makes) and the node's (`HostConfig::instances`, the pool, enforced for every
//! spawn). Children outlive their spawner, as in Erlang, and keep their app's count up
//! until they end.
//!
//! # Invariants
//!
//! * An app named by `Caps::app` is in `Apps::map` while a guest of it lives, so every
//!   spawn into it shares one count; an app made for one embedder spawn is not (only that
//!   guest and its descendants, through their slots, reach it).
//! * `App::live` is the number of slots of that app alive; `HostInner::live_guests` the
//!   number of all slots. Both go up only in [`Slot::acquire`] and down only in `Drop`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use rusm_otp::Realm;

use crate::HostInner;

/// One app's count of live guest processes.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) realm: Realm,
    live: AtomicUsize,
}

impl App {
    /// An app with no guest yet.
    pub(crate) fn new(realm: Realm) -> App {
        App { realm, live: AtomicUsize::new(0) }
    }
}

/// The apps a host knows, by realm (weak: an app with no live guest is forgotten).
#[derive(Debug, Default)]
pub(crate) struct Apps {
    map: Mutex<HashMap<Realm, Weak<App>>>,
    /// Guest slots alive in the whole host.
    live: AtomicUsize,
}

impl Apps {
    /// The app of `realm`, made if no live guest has it.
    pub(crate) fn get(&self, realm: Realm) -> Arc<App> {
        let mut map = self.map.lock();
        if let Some(a) = map.get(&realm).and_then(Weak::upgrade) {
            return a;
        }
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let a = Arc::new(App::new(realm));
        map.insert(realm, Arc::downgrade(&a));
        a
    }

    /// Guest processes alive now in this host.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    /// The app holds its quota of processes.
    App(usize),
    /// The host's pool is full.
    Pool(u32),
}

/// A guest's place in its app's count and the host's pool; given back on drop.
pub(crate) struct Slot {
    pub(crate) app: Arc<App>,
    host: Arc<HostInner>,
}

impl Slot {
    /// A slot in `app`, if the host's pool and (when `app_limit` is given) the app's quota
    /// have room.
    pub(crate) fn acquire(host: &Arc<HostInner>, app: Arc<App>, app_limit: Option<usize>) -> Result<Slot, NoSlot> {
        let pool = host.config.instances;
        if host.apps.live.fetch_add(1, Ordering::AcqRel) >= pool as usize {
            host.apps.live.fetch_sub(1, Ordering::AcqRel);
            return Err(NoSlot::Pool(pool));
        }
        let n = app.live.fetch_add(1, Ordering::AcqRel);
        if let Some(limit) = app_limit
            && n >= limit
        {
            app.live.fetch_sub(1, Ordering::AcqRel);
            host.apps.live.fetch_sub(1, Ordering::AcqRel);
            return Err(NoSlot::App(limit));
        }
        Ok(Slot { app, host: host.clone() })
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("app", &self.app.realm).finish_non_exhaustive()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.app.live.fetch_sub(1, Ordering::AcqRel);
        self.host.apps.live.fetch_sub(1, Ordering::AcqRel);
    }
}
