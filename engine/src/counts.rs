//! `TypeCounts`: a quantity per ticket type, stored inline.
//!
//! Carts, holds, per-customer purchases and limits are all "so many of each
//! type". A fixed array keeps them `Copy`, allocation-free and 32 bytes, which
//! matters because one lives in every shopper and every order.

use serde::{Deserialize, Serialize};

use crate::ids::TicketTypeId;

/// The most ticket types one event may have. Real events have a handful
/// (pista, pista premium, camarote, meia-entrada variants); 16 keeps every
/// per-type array in half a cache line.
pub const MAX_TICKET_TYPES: usize = 16;

/// A quantity for each ticket type. Index `t` is ticket type `t`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TypeCounts([u16; MAX_TICKET_TYPES]);

impl TypeCounts {
    /// No tickets of any type.
    pub const ZERO: TypeCounts = TypeCounts([0; MAX_TICKET_TYPES]);

    /// Builds counts from `(type, quantity)` pairs, adding repeated types.
    /// Returns `None` when a type is out of range or a quantity overflows.
    pub fn from_pairs(pairs: &[(TicketTypeId, u16)]) -> Option<TypeCounts> {
        let mut counts = TypeCounts::ZERO;
        for &(ticket_type, quantity) in pairs {
            let slot = counts.0.get_mut(ticket_type.index())?;
            *slot = slot.checked_add(quantity)?;
        }
        Some(counts)
    }

    /// One type, one quantity.
    pub fn single(ticket_type: TicketTypeId, quantity: u16) -> Option<TypeCounts> {
        TypeCounts::from_pairs(&[(ticket_type, quantity)])
    }

    /// The quantity of `ticket_type` (0 for a type out of range).
    pub fn get(&self, ticket_type: TicketTypeId) -> u16 {
        self.0.get(ticket_type.index()).copied().unwrap_or(0)
    }

    /// The quantity at index `t` of the array.
    pub fn at(&self, t: usize) -> u16 {
        self.0.get(t).copied().unwrap_or(0)
    }

    /// Sets the quantity at index `t`; ignored when `t` is out of range.
    pub fn set(&mut self, t: usize, quantity: u16) {
        if let Some(slot) = self.0.get_mut(t) {
            *slot = quantity;
        }
    }

    /// The sum over all types, widened so it cannot overflow.
    pub fn total(&self) -> u32 {
        self.0.iter().map(|&q| u32::from(q)).sum()
    }

    /// True when every quantity is zero.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&q| q == 0)
    }

    /// The first type index at or beyond `type_count` with a non-zero
    /// quantity: a request naming a type the event does not have.
    pub fn first_beyond(&self, type_count: usize) -> Option<TicketTypeId> {
        (type_count..MAX_TICKET_TYPES)
            .find(|&t| self.at(t) > 0)
            .and_then(|t| u8::try_from(t).ok())
            .map(TicketTypeId)
    }

    /// Element-wise sum, or `None` on overflow.
    pub fn checked_add(&self, other: &TypeCounts) -> Option<TypeCounts> {
        let mut sum = *self;
        for (slot, &q) in sum.0.iter_mut().zip(other.0.iter()) {
            *slot = slot.checked_add(q)?;
        }
        Some(sum)
    }

    /// Element-wise difference, or `None` when `other` exceeds `self` in any type.
    pub fn checked_sub(&self, other: &TypeCounts) -> Option<TypeCounts> {
        let mut difference = *self;
        for (slot, &q) in difference.0.iter_mut().zip(other.0.iter()) {
            *slot = slot.checked_sub(q)?;
        }
        Some(difference)
    }

    /// The first type in which `self` exceeds `other`.
    pub fn first_exceeding(&self, other: &TypeCounts) -> Option<TicketTypeId> {
        self.0
            .iter()
            .zip(other.0.iter())
            .position(|(&a, &b)| a > b)
            .and_then(|t| u8::try_from(t).ok())
            .map(TicketTypeId)
    }

    /// The non-zero entries, in type order.
    pub fn iter(&self) -> impl Iterator<Item = (TicketTypeId, u16)> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|&(_, &q)| q > 0)
            .filter_map(|(t, &q)| u8::try_from(t).ok().map(|t| (TicketTypeId(t), q)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_adds_repeats_and_rejects_out_of_range_types() {
        let counts = TypeCounts::from_pairs(&[(TicketTypeId(1), 2), (TicketTypeId(1), 3)]).unwrap();
        assert_eq!(counts.get(TicketTypeId(1)), 5);
        assert_eq!(counts.total(), 5);
        assert!(TypeCounts::from_pairs(&[(TicketTypeId(16), 1)]).is_none());
        assert!(
            TypeCounts::from_pairs(&[(TicketTypeId(0), u16::MAX), (TicketTypeId(0), 1)]).is_none()
        );
    }

    #[test]
    fn subtraction_refuses_to_go_negative() {
        let two = TypeCounts::single(TicketTypeId(0), 2).unwrap();
        let three = TypeCounts::single(TicketTypeId(0), 3).unwrap();
        assert!(two.checked_sub(&three).is_none());
        assert_eq!(three.checked_sub(&two).unwrap().total(), 1);
        assert_eq!(three.first_exceeding(&two), Some(TicketTypeId(0)));
        assert_eq!(two.first_exceeding(&three), None);
    }

    #[test]
    fn first_beyond_names_a_type_the_event_lacks() {
        let counts = TypeCounts::single(TicketTypeId(3), 1).unwrap();
        assert_eq!(counts.first_beyond(3), Some(TicketTypeId(3)));
        assert_eq!(counts.first_beyond(4), None);
    }
}
