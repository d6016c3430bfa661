//! Process identifiers.

use std::fmt;

/// A process identifier: a slot in the node's process table and that slot's generation,
/// so a pid of a dead process never aliases the process that reuses its slot.
///
/// Printed as Erlang prints local pids, `<0.N.S>`: node 0 (local; the field leaves room
/// for a node id later), slot `N`, serial `S` (the slot's generation, 0 on first use).
///
/// # Examples
///
/// ```
/// let node = rusm_otp::Node::new().unwrap();
/// let pid = node.spawn(|| {}).unwrap();
/// assert!(pid.to_string().starts_with("<0."));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl Pid {
    /// The slot number (`N` in `<0.N.S>`).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The slot's generation (`S` in `<0.N.S>`).
    pub fn serial(&self) -> u32 {
        self.generation
    }

    /// Packs the pid into 64 bits (for a guest ABI): generation high, index low.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// Unpacks a pid made by [`Pid::to_u64`].
    pub fn from_u64(v: u64) -> Pid {
        Pid {
            index: v as u32,
            generation: (v >> 32) as u32,
        }
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<0.{}.{}>", self.index, self.generation)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A monitor reference, unique within a node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct MonitorRef(pub(crate) u64);

impl MonitorRef {
    /// The reference as 64 bits (for a guest ABI); never 0.
    pub fn to_u64(self) -> u64 {
        self.0
    }

    /// A reference made by [`MonitorRef::to_u64`].
    pub fn from_u64(v: u64) -> MonitorRef {
        MonitorRef(v)
    }
}
