//! Process groups by name (Erlang's `pg`, node-local).
//!
//! A process joins a group as often as it likes and appears once per join, as in Erlang;
//! it must leave as many times. A process that exits leaves all its groups before its exit
//! signals go out, so a process told of the death never finds it in a group.

use crate::{ExitReason, Pid};
use crate::process::NodeInner;

impl NodeInner {
    /// Adds `pid` to `group` once. `false` if it is not alive.
    pub(crate) fn join(&self, group: &str, pid: Pid) -> bool {
        let Some(p) = self.get(pid) else {
            return false;
        };
        // Process lock, then the group map: `exit` takes the groups under the process lock
        // after marking it dead, so a join either sees it dead or is undone by its exit.
        let mut st = p.state.lock();
        if !st.alive {
            return false;
        }
        st.cold().groups.push(group.to_owned());
        self.groups.lock().entry(group.to_owned()).or_default().push(pid);
        true
    }

    /// Removes one membership of `pid` in `group`. `false` if it was not a member.
    pub(crate) fn leave(&self, group: &str, pid: Pid) -> bool {
        let Some(p) = self.get(pid) else {
            return false;
        };
        let mut st = p.state.lock();
        let Some(cold) = st.cold_mut() else {
            return false;
        };
        let Some(i) = cold.groups.iter().position(|g| g == group) else {
            return false;
        };
        cold.groups.swap_remove(i);
        self.remove_member(&mut self.groups.lock(), group, pid);
        true
    }

    /// Removes a dead process from the groups it joined (one entry per join).
    pub(crate) fn leave_all(&self, pid: Pid, groups: &[String]) {
        let mut map = self.groups.lock();
        for g in groups {
            self.remove_member(&mut map, g, pid);
        }
    }

    fn remove_member(&self, map: &mut std::collections::HashMap<String, Vec<Pid>>, group: &str, pid: Pid) {
        if let Some(members) = map.get_mut(group) {
            if let Some(i) = members.iter().position(|m| *m == pid) {
                members.remove(i);
            }
            if members.is_empty() {
                map.remove(group);
            }
        }
    }

    pub(crate) fn members(&self, group: &str) -> Vec<Pid> {
        self.groups.lock().get(group).cloned().unwrap_or_default()
    }

    pub(crate) fn which_groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self.groups.lock().keys().cloned().collect();
        v.sort();
        v
    }
}

/// Adds `pid` to `group` (once more if it is already a member). `false` if `pid` is not
/// alive.
///
/// # Panics
///
/// Outside a process.
pub fn join(group: &str, pid: Pid) -> bool {
    crate::me().node.join(group, pid)
}

/// Removes one membership of `pid` in `group`. `false` if it was not a member.
///
/// # Panics
///
/// Outside a process.
pub fn leave(group: &str, pid: Pid) -> bool {
    crate::me().node.leave(group, pid)
}

/// The members of `group` in join order, a pid once per join; empty for an unknown group.
///
/// # Panics
///
/// Outside a process.
pub fn members(group: &str) -> Vec<Pid> {
    crate::me().node.members(group)
}

/// The groups that have members, sorted.
///
/// # Panics
///
/// Outside a process.
pub fn which_groups() -> Vec<String> {
    crate::me().node.which_groups()
}

/// Sends an exit signal with `reason` to every member of `group` (each pid once), with
/// [`exit`](crate::exit)'s rules. The caller is signalled last if it is a member. Returns
/// how many processes were signalled.
///
/// # Panics
///
/// Outside a process.
pub fn exit_all(group: &str, reason: ExitReason) -> usize {
    let me = crate::me();
    let mut pids = me.node.members(group);
    pids.sort();
    pids.dedup();
    let mine = pids.iter().position(|p| *p == me.pid).map(|i| pids.remove(i));
    let n = pids.len() + usize::from(mine.is_some());
    for pid in pids {
        if let Some(p) = me.node.get(pid) {
            crate::process::deliver_exit(&p, me.pid, reason.clone(), crate::process::Via::Exit2);
        }
    }
    if mine.is_some() {
        crate::process::deliver_exit(&me, me.pid, reason, crate::process::Via::Exit2);
    }
    me.check_exit();
    n
}

/// [`exit_all`] with `kill`: every member ends `killed`.
///
/// # Panics
///
/// Outside a process.
pub fn kill_all(group: &str) -> usize {
    exit_all(group, ExitReason::Kill)
}
