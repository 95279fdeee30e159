//! What the runtime writes in each log record: an event's creation (with its
//! whole configuration, so the log alone rebuilds every event) or one
//! transition of one event, with the address of the request that caused it
//! when a fan's own request did (the log is the sale's audit trail: who,
//! what, when and from where), and the two ends of every payment (started
//! before the gateway is asked, settled after). Encoded with postcard; the log sees only
//! bytes.
//!
//! Postcard numbers enum variants in order and writes struct fields in
//! order, so the wire form ([`WireEntry`]) only ever grows at the end: a
//! changed payload is a new variant, and the old one stays readable
//! (`EventCreatedV1`, whose policy predates arrival windows) and is turned
//! into today's [`LogEntry`] on reading.
//!
//! One variant is not the sale's: [`LogEntry::Attached`] carries bytes of
//! the state another layer keeps in the same replicated log (the server's
//! accounts, sessions, audit log and settings; see `attached.rs`). The
//! runtime orders, replicates and commits them like any record and never
//! reads them.

use std::net::IpAddr;

use ingressoja_engine::config::EventConfigV1;
use ingressoja_engine::{CustomerId, EventConfig, Transition};
use serde::{Deserialize, Serialize};

/// An event's id, unique across a cluster: the number of the shard (the
/// replicated log) that owns it times 2^32, plus its number on that shard,
/// from 0 in creation order. A shard names its events without asking any
/// other, and a request's event id says which shard to send it to. Ids stay
/// below 2^48, exact as JavaScript numbers. Shard 0's ids are the plain
/// numbers, so ids logged before shards had numbers read back unchanged
/// (postcard writes a `u32` and a `u64` of the same value alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventId(pub u64);

/// A shard's number in a cluster (0 on a single node).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ShardId(pub u16);

impl EventId {
    /// The event numbered `number` on `shard`.
    pub const fn on_shard(shard: ShardId, number: u32) -> EventId {
        EventId(((shard.0 as u64) << 32) | number as u64)
    }

    /// The shard that owns it (an id past 48 bits, which no shard gives,
    /// names no real shard either way).
    #[allow(clippy::cast_possible_truncation)]
    pub const fn shard(self) -> ShardId {
        ShardId((self.0 >> 32) as u16)
    }

    /// Its number on that shard.
    #[allow(clippy::cast_possible_truncation)] // the low 32 bits, masked
    pub const fn number(self) -> u32 {
        (self.0 & 0xFFFF_FFFF) as u32
    }
}

// Every id fits in 48 bits: exact in a JavaScript number (2^53).
const _: () = assert!(EventId::on_shard(ShardId(u16::MAX), u32::MAX).0 < 1 << 48);

/// One log record's payload, as the runtime uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// A change to an event made by a fan's own request (joined, held,
    /// released, bought, left), with where the request came from. A new
    /// variant rather than a new field: postcard numbers variants in order,
    /// so logs written before it still read.
    RequestedTransition {
        /// Which event.
        event: EventId,
        /// What changed.
        transition: Transition,
        /// The client's address.
        from: IpAddr,
    },
    /// A payment is about to be asked of the gateway: logged (durable)
    /// before the charge, so a crash at any later point leaves a record
    /// that recovery settles with the gateway.
    PaymentStarted {
        /// The payment, with its event and hold.
        payment: PendingPayment,
        /// The address of the fan's request that started it.
        from: Option<IpAddr>,
    },
    /// A started payment came to its end with the gateway.
    PaymentSettled {
        /// Which payment (as started).
        payment: PendingPayment,
        /// How it ended.
        settlement: Settlement,
    },
    /// A change to the state attached to the log (see `attached.rs`):
    /// opaque here.
    Attached(Vec<u8>),
}

/// The wire form of [`LogEntry`]: every variant ever written, in the order
/// first written (see the module documentation).
#[derive(Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
enum WireEntry {
    /// A new event, with a configuration from before issue 11: read, never
    /// written.
    EventCreatedV1 {
        event: EventId,
        config: Box<EventConfigV1>,
    },
    /// A change to an event.
    Transition {
        /// Which event.
        event: EventId,
        /// What changed.
        transition: Transition,
    },
    /// A change to an event made by a fan's own request (joined, held,
    /// released, bought, left), with where the request came from. A new
    /// variant rather than a new field: postcard numbers variants in order,
    /// so logs written before it still read.
    RequestedTransition {
        /// Which event.
        event: EventId,
        /// What changed.
        transition: Transition,
        /// The client's address.
        from: IpAddr,
    },
    /// A payment is about to be asked of the gateway: logged (durable)
    /// before the charge, so a crash at any later point leaves a record
    /// that recovery settles with the gateway.
    PaymentStarted {
        /// The payment, with its event and hold.
        payment: PendingPayment,
        /// The address of the fan's request that started it.
        from: Option<IpAddr>,
    },
    /// A started payment came to its end with the gateway.
    PaymentSettled {
        /// Which payment (as started).
        payment: PendingPayment,
        /// How it ended.
        settlement: Settlement,
    },
    /// A new event.
    EventCreated {
        event: EventId,
        config: Box<EventConfig>,
    },
    /// A change to the attached state (variant [`ATTACHED_TAG`]).
    Attached(Vec<u8>),
}

/// The first byte of every [`LogEntry::Attached`] payload (postcard writes
/// the variant's index first, and indexes below 128 take one byte): the
/// state machine picks those records out of a committed batch without
/// decoding the sale's (a test ties the two).
pub const ATTACHED_TAG: u8 = 6;

/// Whether a record's payload is a [`LogEntry::Attached`].
pub fn is_attached(payload: &[u8]) -> bool {
    payload.first() == Some(&ATTACHED_TAG)
}

impl From<WireEntry> for LogEntry {
    fn from(wire: WireEntry) -> LogEntry {
        match wire {
            WireEntry::EventCreatedV1 { event, config } => LogEntry::EventCreated {
                event,
                config: Box::new(EventConfig::from(*config)),
            },
            WireEntry::EventCreated { event, config } => LogEntry::EventCreated { event, config },
            WireEntry::Transition { event, transition } => {
                LogEntry::Transition { event, transition }
            }
            WireEntry::RequestedTransition {
                event,
                transition,
                from,
            } => LogEntry::RequestedTransition {
                event,
                transition,
                from,
            },
            WireEntry::PaymentStarted { payment, from } => {
                LogEntry::PaymentStarted { payment, from }
            }
            WireEntry::PaymentSettled {
                payment,
                settlement,
            } => LogEntry::PaymentSettled {
                payment,
                settlement,
            },
            WireEntry::Attached(bytes) => LogEntry::Attached(bytes),
        }
    }
}

impl From<&LogEntry> for WireEntry {
    fn from(entry: &LogEntry) -> WireEntry {
        match entry.clone() {
            LogEntry::EventCreated { event, config } => WireEntry::EventCreated { event, config },
            LogEntry::Transition { event, transition } => {
                WireEntry::Transition { event, transition }
            }
            LogEntry::RequestedTransition {
                event,
                transition,
                from,
            } => WireEntry::RequestedTransition {
                event,
                transition,
                from,
            },
            LogEntry::PaymentStarted { payment, from } => {
                WireEntry::PaymentStarted { payment, from }
            }
            LogEntry::PaymentSettled {
                payment,
                settlement,
            } => WireEntry::PaymentSettled {
                payment,
                settlement,
            },
            LogEntry::Attached(bytes) => WireEntry::Attached(bytes),
        }
    }
}

/// A payment logged as started and not yet settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPayment {
    /// The event whose hold it pays.
    pub event: EventId,
    /// Who pays.
    pub customer: CustomerId,
    /// Our reference for it, which the gateway keys its idempotency on.
    pub payment_ref: u64,
    /// What is asked, in centavos (the hold's total when it started).
    pub amount_cents: u64,
    /// Hash of the checkout's Idempotency-Key (the order it may become).
    pub idempotency_key: u128,
    /// When it started.
    pub started_at_ms: u64,
}

impl PendingPayment {
    /// The checkout it belongs to: at most one payment of a checkout is in
    /// flight at a time.
    pub fn checkout(&self) -> CheckoutKey {
        CheckoutKey {
            event: self.event,
            customer: self.customer,
            idempotency_key: self.idempotency_key,
        }
    }
}

/// One checkout: an event, a customer, an Idempotency-Key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CheckoutKey {
    /// The event.
    pub event: EventId,
    /// The customer.
    pub customer: CustomerId,
    /// Hash of the Idempotency-Key.
    pub idempotency_key: u128,
}

/// How a started payment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settlement {
    /// Captured: it paid for an order.
    Captured,
    /// Authorized, then released without taking money (no order came of it).
    Voided,
    /// Captured, then given back (no order came of it).
    Refunded,
    /// The gateway never charged it (declined, failed, or never reached).
    NotCharged,
}

impl LogEntry {
    /// The payload bytes.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_stdvec(&WireEntry::from(self))
    }

    /// The event and transition of a transition record, however attributed.
    pub fn transition(&self) -> Option<(EventId, Transition)> {
        match self {
            LogEntry::EventCreated { .. }
            | LogEntry::PaymentStarted { .. }
            | LogEntry::PaymentSettled { .. }
            | LogEntry::Attached(_) => None,
            LogEntry::Transition { event, transition }
            | LogEntry::RequestedTransition {
                event, transition, ..
            } => Some((*event, *transition)),
        }
    }

    /// Where the request that caused this record came from, if a fan's.
    pub fn from(&self) -> Option<IpAddr> {
        match self {
            LogEntry::RequestedTransition { from, .. } => Some(*from),
            LogEntry::PaymentStarted { from, .. } => *from,
            LogEntry::EventCreated { .. }
            | LogEntry::Transition { .. }
            | LogEntry::PaymentSettled { .. }
            | LogEntry::Attached(_) => None,
        }
    }

    /// Reads a payload.
    pub fn decode(bytes: &[u8]) -> Result<LogEntry, postcard::Error> {
        postcard::from_bytes::<WireEntry>(bytes).map(<LogEntry as From<WireEntry>>::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_name_their_shard_and_read_old_logs_unchanged() {
        let id = EventId::on_shard(ShardId(3), 7);
        assert_eq!((id.shard(), id.number()), (ShardId(3), 7));
        assert_eq!(id.0, 3 * (1 << 32) + 7);
        let single_node = EventId::on_shard(ShardId(0), 5);
        assert_eq!(
            single_node,
            EventId(5),
            "shard 0's ids are the plain numbers"
        );
        // An id logged as a u32 before shards had numbers reads back as the
        // same id.
        let old = postcard::to_stdvec(&5u32).unwrap();
        assert_eq!(postcard::from_bytes::<EventId>(&old).unwrap(), EventId(5));
        assert_eq!(postcard::to_stdvec(&EventId(5)).unwrap(), old);
    }

    /// `LogEntry::EventCreated` for event 3 as the code before issue 11
    /// (commit 015270e) wrote it: variant 0, the event, the configuration.
    const EVENT_CREATED_BEFORE_ISSUE_11: &str = "00030453686f77054172656e61c096b10201055069737461a8c301ac02e807d00fc0a8a5049601f403c0cf2480a61d020404040404040404040404040404040480897aeeff8306";

    #[test]
    fn an_event_created_before_arrival_windows_still_reads_and_is_written_anew() {
        let bytes: Vec<u8> = (0..EVENT_CREATED_BEFORE_ISSUE_11.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&EVENT_CREATED_BEFORE_ISSUE_11[i..i + 2], 16).unwrap())
            .collect();
        let entry = LogEntry::decode(&bytes).unwrap();
        let LogEntry::EventCreated { event, config } = &entry else {
            panic!("read as {entry:?}");
        };
        assert_eq!(*event, EventId(3));
        assert_eq!(config.name, "Show");
        assert_eq!(config.policy.arrival_window_ms, 0, "it keeps arrival order");
        // Written again, it takes the new variant and reads back the same.
        let again = entry.encode().unwrap();
        assert_ne!(again[0], 0, "not the old variant");
        assert_eq!(LogEntry::decode(&again).unwrap(), entry);
    }

    #[test]
    fn attached_records_are_told_apart_by_their_first_byte() {
        let attached = LogEntry::Attached(vec![1, 2, 3]);
        let bytes = attached.encode().unwrap();
        assert!(is_attached(&bytes), "{bytes:?}");
        assert_eq!(LogEntry::decode(&bytes).unwrap(), attached);
        let joined = LogEntry::Transition {
            event: EventId(6),
            transition: Transition::Joined {
                customer: CustomerId(6),
            },
        };
        assert!(!is_attached(&joined.encode().unwrap()));
        assert!(!is_attached(&[]));
    }

    #[test]
    fn records_written_before_addresses_were_logged_still_read() {
        // The encoding of `Transition` must not move: old logs hold it.
        let joined = Transition::Joined {
            customer: CustomerId(7),
        };
        let old = LogEntry::Transition {
            event: EventId(3),
            transition: joined,
        };
        let bytes = old.encode().unwrap();
        assert_eq!(bytes[0], 1, "variant index of Transition");
        assert_eq!(LogEntry::decode(&bytes).unwrap(), old);

        let from: IpAddr = "203.0.113.9".parse().unwrap();
        let new = LogEntry::RequestedTransition {
            event: EventId(3),
            transition: joined,
            from,
        };
        let decoded = LogEntry::decode(&new.encode().unwrap()).unwrap();
        assert_eq!(decoded.transition(), Some((EventId(3), joined)));
        assert_eq!(decoded.from(), Some(from));
        assert_eq!(old.from(), None);
    }
}
