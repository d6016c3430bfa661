//! Exit reasons and received items.

use std::any::Any;
use std::fmt;

use crate::{MonitorRef, Pid};

/// Why a process ended. Data, not an error (STYLE §3).
///
/// `Kill` is the untrappable signal one process sends another with
/// [`exit`](crate::exit); the process it kills ends with `Killed`, and that is the reason
/// its links and monitors see (OTP rewrites `kill` to `killed` the same way).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum ExitReason {
    /// Returned from its body. Does not kill linked processes.
    Normal,
    /// Stopped in an orderly way (by a supervisor or node shutdown).
    Shutdown,
    /// The untrappable kill signal (only as an argument of [`exit`](crate::exit)).
    Kill,
    /// Killed by `kill`.
    Killed,
    /// The process did not exist (a link or monitor to a dead pid).
    NoProc,
    /// Panicked, trapped or otherwise failed, with why.
    Crashed(String),
    /// An application-defined reason (Erlang's `exit(Pid, Term)` with any term).
    Other(String),
}

impl ExitReason {
    /// Is this reason `normal`?
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::Kill => f.write_str("kill"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::NoProc => f.write_str("noproc"),
            ExitReason::Crashed(why) => write!(f, "crashed: {why}"),
            ExitReason::Other(s) => f.write_str(s),
        }
    }
}

/// A message payload: bytes (all a Wasm guest can send) or a typed native value.
pub enum Message {
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A typed value between native processes.
    Value(Box<dyn Any + Send>),
}

impl Message {
    /// A typed message.
    pub fn value<T: Any + Send>(v: T) -> Message {
        Message::Value(Box::new(v))
    }

    /// The bytes, if this is a byte message.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Message::Bytes(b) => Some(b),
            Message::Value(_) => None,
        }
    }

    /// The value, if it is a `T`.
    pub fn downcast<T: Any>(self) -> Result<T, Message> {
        match self {
            Message::Value(v) => v.downcast::<T>().map(|b| *b).map_err(Message::Value),
            m => Err(m),
        }
    }

    /// A reference to the value, if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        match self {
            Message::Value(v) => v.downcast_ref::<T>(),
            Message::Bytes(_) => None,
        }
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Message {
        Message::Bytes(b)
    }
}

impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Message {
        Message::Bytes(b.to_vec())
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Message::Value(_) => f.write_str("Value(..)"),
        }
    }
}

/// What [`receive`](crate::receive) returns.
#[derive(Debug)]
pub enum Received {
    /// A message.
    Message(Message),
    /// The read end of a stream another process opened to this one
    /// ([`stream::open`](crate::stream::open)).
    Stream(crate::stream::StreamReader),
    /// An exit signal from a linked process, turned into a message because this process
    /// traps exits.
    Exit {
        /// Who exited (or sent the signal).
        from: Pid,
        /// Why.
        reason: ExitReason,
    },
    /// A monitored process ended.
    Down {
        /// The monitor that fired.
        monitor: MonitorRef,
        /// The process that ended.
        pid: Pid,
        /// Why (`noproc` if it was already dead when monitored).
        reason: ExitReason,
    },
    /// The timeout passed first.
    Timeout,
}
