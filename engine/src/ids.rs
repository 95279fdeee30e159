//! Identifiers. Each is a plain integer newtype so the hot path hashes and
//! compares machine words, and so a customer id can never be passed where an
//! order id is expected.

use serde::{Deserialize, Serialize};

/// An account, as assigned by the accounts system. The engine never invents
/// customer ids; it only counts what each one holds and owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CustomerId(pub u64);

/// A ticket type's index in the event's `ticket_types` (0-based, fewer than
/// [`crate::MAX_TICKET_TYPES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TicketTypeId(pub u8);

impl TicketTypeId {
    /// The index into per-type arrays.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// An order, numbered from 0 in the order orders were placed in this event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderId(pub u32);

/// A ticket, numbered from 0 in the order tickets were sold in this event.
/// The tickets of one order are consecutive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TicketId(pub u32);
