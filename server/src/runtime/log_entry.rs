//! What the runtime writes in each log record: an event's creation (with its
//! whole configuration, so the log alone rebuilds every event) or one
//! transition of one event. Encoded with postcard; the log sees only bytes.

use ingressoja_engine::{EventConfig, Transition};
use serde::{Deserialize, Serialize};

/// An event's number on its shard, from 0 in creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventId(pub u32);

/// One log record's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogEntry {
    /// A new event.
    EventCreated {
        /// Its id.
        event: EventId,
        /// Its configuration, shuffle seed included.
        config: Box<EventConfig>,
    },
    /// A change to an event.
    Transition {
        /// Which event.
        event: EventId,
        /// What changed.
        transition: Transition,
    },
}

impl LogEntry {
    /// The payload bytes.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_stdvec(self)
    }

    /// Reads a payload.
    pub fn decode(bytes: &[u8]) -> Result<LogEntry, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}
