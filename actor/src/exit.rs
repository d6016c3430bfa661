//! Exit reasons and received items.

use std::any::Any;
use std::fmt;

use crate::{MonitorRef, Pid};

/// Why a process ended. Data, not an error (STYLE §3).
///
/// `Kill` is untrappable only as the signal of [`exit`](crate::exit) (Erlang's
/// `exit(Pid, kill)`): the process it reaches ends with `Killed`, and `Killed` is what that
/// process's links and monitors see. A process that ends with `Kill` as its own reason
/// ([`exit_with`](crate::exit_with), Erlang's `exit(kill)`) sends `kill` over its links
/// like any other reason: a trapping partner gets it as a message, a non-trapping one ends
/// with `Kill` too, and monitors see `Kill` (Reference Manual, "Processes", "Receiving
/// Exit Signals").
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum ExitReason {
    /// Returned from its body. Does not kill linked processes.
    Normal,
    /// Stopped in an orderly way (by a supervisor or node shutdown).
    Shutdown,
    /// Stopped in an orderly way, with a term saying why (Erlang's `{shutdown, Term}`):
    /// a shutdown for supervisors (a `transient` child is not restarted) and for
    /// [`is_shutdown`](ExitReason::is_shutdown). Displayed `{shutdown,Term}`.
    ShutdownWith(String),
    /// `kill`: untrappable as the signal of [`exit`](crate::exit); an ordinary reason when
    /// a process ends with it itself.
    Kill,
    /// Killed by `exit(Pid, kill)`.
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

    /// Is this `shutdown` or `{shutdown, Term}` (an orderly stop, which OTP neither
    /// restarts for a `transient` child nor reports as a crash)?
    pub fn is_shutdown(&self) -> bool {
        matches!(self, ExitReason::Shutdown | ExitReason::ShutdownWith(_))
    }

    /// Parses the text [`Display`](fmt::Display) gives for the reasons a process may send
    /// or end with (the guest ABIs take reasons as text): `normal`, `shutdown`, `kill`,
    /// `{shutdown,Term}`; anything else is an application reason with that exact text.
    pub fn from_text(text: &str) -> ExitReason {
        match text {
            "normal" => ExitReason::Normal,
            "shutdown" => ExitReason::Shutdown,
            "kill" => ExitReason::Kill,
            t => match t.strip_prefix("{shutdown,").and_then(|r| r.strip_suffix('}')) {
                Some(term) => ExitReason::ShutdownWith(term.to_owned()),
                None => ExitReason::Other(t.to_owned()),
            },
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::ShutdownWith(term) => write!(f, "{{shutdown,{term}}}"),
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
