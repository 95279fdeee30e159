//! Orders, their tickets, and what each customer has bought.
//!
//! An order's id is its index; its tickets are numbered consecutively after
//! the previous order's, in type order, so a ticket's order is found by
//! binary search and no ticket can belong to two orders. Each customer's
//! orders form a chain through `previous_of_customer`, so looking up an
//! idempotency key or listing a customer's orders touches only their own
//! orders (at most the per-event limit), with no allocation per customer.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::counts::TypeCounts;
use crate::ids::{CustomerId, OrderId, TicketId, TicketTypeId};

/// A paid order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Who bought.
    pub customer: CustomerId,
    /// What was bought.
    pub items: TypeCounts,
    /// The first of `items.total()` consecutive tickets.
    pub first_ticket: TicketId,
    /// What was charged, in centavos.
    pub total_cents: u64,
    /// When the order was placed.
    pub placed_at_ms: u64,
    /// The gateway's reference for the charge.
    pub payment_ref: u64,
    /// Hash of the Idempotency-Key that placed it.
    pub idempotency_key: u128,
    /// Secret from which the tickets' codes derive.
    ticket_seed: u128,
    /// The same customer's previous order.
    previous_of_customer: Option<OrderId>,
}

/// A ticket as shown to its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Its number in this event.
    pub id: TicketId,
    /// Its type.
    pub ticket_type: TicketTypeId,
    /// The order it belongs to.
    pub order: OrderId,
    /// Its owner.
    pub customer: CustomerId,
    /// The unguessable code printed in its QR code: SHA-256 of the order's
    /// 128-bit random seed and the ticket's place in the order, truncated to
    /// 128 bits, so holding one ticket of an order reveals nothing about the
    /// others (tickets of one order are often passed on to friends).
    pub code: u128,
}

/// What one customer has bought, across orders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    /// Tickets owned per type.
    pub sold: TypeCounts,
    /// The customer's latest order (head of their chain).
    last_order: Option<OrderId>,
}

/// All orders of one event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderBook {
    orders: Vec<Order>,
    buyers: FxHashMap<CustomerId, Buyer>,
    tickets_sold: u32,
}

impl OrderBook {
    /// Every order, by id.
    pub fn orders(&self) -> &[Order] {
        &self.orders
    }

    /// One order.
    pub fn order(&self, id: OrderId) -> Option<&Order> {
        self.orders.get(id.0 as usize)
    }

    /// Tickets sold so far, all types.
    pub fn tickets_sold(&self) -> u32 {
        self.tickets_sold
    }

    /// Everyone who bought, with what they own.
    pub fn buyers(&self) -> impl Iterator<Item = (&CustomerId, &Buyer)> {
        self.buyers.iter()
    }

    /// What a customer owns per type.
    pub fn sold_to(&self, customer: CustomerId) -> TypeCounts {
        self.buyers
            .get(&customer)
            .map_or(TypeCounts::ZERO, |b| b.sold)
    }

    /// A customer's orders, newest first.
    pub fn orders_of(&self, customer: CustomerId) -> impl Iterator<Item = (OrderId, &Order)> {
        let mut next = self.buyers.get(&customer).and_then(|b| b.last_order);
        std::iter::from_fn(move || {
            let id = next?;
            let order = self.orders.get(id.0 as usize)?;
            next = order.previous_of_customer;
            Some((id, order))
        })
    }

    /// The order a customer placed with this idempotency key, if any.
    pub fn find_by_key(&self, customer: CustomerId, idempotency_key: u128) -> Option<OrderId> {
        self.orders_of(customer)
            .find(|(_, order)| order.idempotency_key == idempotency_key)
            .map(|(id, _)| id)
    }

    /// The tickets of an order, in ticket order.
    pub fn tickets_of(&self, id: OrderId) -> impl Iterator<Item = Ticket> + '_ {
        let order = self.orders.get(id.0 as usize);
        order.into_iter().flat_map(move |order| {
            let types = order
                .items
                .iter()
                .flat_map(|(t, q)| std::iter::repeat_n(t, q.into()));
            types.enumerate().map(move |(i, ticket_type)| {
                let index = u32::try_from(i).unwrap_or(u32::MAX);
                Ticket {
                    id: TicketId(order.first_ticket.0 + index),
                    ticket_type,
                    order: id,
                    customer: order.customer,
                    code: ticket_code(order.ticket_seed, index),
                }
            })
        })
    }

    /// One ticket by id.
    pub fn ticket(&self, id: TicketId) -> Option<Ticket> {
        let after = self.orders.partition_point(|o| o.first_ticket <= id);
        let order_index = after.checked_sub(1)?;
        let order_id = OrderId(u32::try_from(order_index).ok()?);
        self.tickets_of(order_id).find(|t| t.id == id)
    }

    /// Records an order and returns its id.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn place(
        &mut self,
        customer: CustomerId,
        items: TypeCounts,
        total_cents: u64,
        placed_at_ms: u64,
        payment_ref: u64,
        idempotency_key: u128,
        ticket_seed: u128,
    ) -> OrderId {
        let id = OrderId(u32::try_from(self.orders.len()).unwrap_or(u32::MAX));
        let buyer = self.buyers.entry(customer).or_default();
        self.orders.push(Order {
            customer,
            items,
            first_ticket: TicketId(self.tickets_sold),
            total_cents,
            placed_at_ms,
            payment_ref,
            idempotency_key,
            ticket_seed,
            previous_of_customer: buyer.last_order,
        });
        // Within the per-customer limits, which the checkout respected.
        buyer.sold = buyer.sold.checked_add(&items).unwrap_or_else(|| {
            unreachable!(
                "{customer:?}'s tickets overflowed: {:?} + {items:?}",
                buyer.sold
            )
        });
        buyer.last_order = Some(id);
        self.tickets_sold += items.total();
        id
    }
}

fn ticket_code(seed: u128, index_in_order: u32) -> u128 {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(index_in_order.to_le_bytes())
        .finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_consecutive_typed_and_found_by_id() {
        let mut book = OrderBook::default();
        let items = TypeCounts::from_pairs(&[(TicketTypeId(0), 1), (TicketTypeId(2), 2)]).unwrap();
        let a = book.place(CustomerId(1), items, 100, 0, 0, 11, 1);
        let b = book.place(CustomerId(2), items, 100, 0, 0, 22, 2);
        let tickets: Vec<Ticket> = book.tickets_of(b).collect();
        assert_eq!(
            tickets.iter().map(|t| t.id.0).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(
            tickets.iter().map(|t| t.ticket_type.0).collect::<Vec<_>>(),
            vec![0, 2, 2]
        );
        assert_eq!(book.ticket(TicketId(2)).unwrap().order, a);
        assert_eq!(book.ticket(TicketId(3)).unwrap().order, b);
        assert!(book.ticket(TicketId(6)).is_none());
    }

    #[test]
    fn codes_differ_between_tickets_and_orders() {
        let mut book = OrderBook::default();
        let items = TypeCounts::single(TicketTypeId(0), 2).unwrap();
        let a = book.place(CustomerId(1), items, 0, 0, 0, 1, 1);
        let b = book.place(CustomerId(1), items, 0, 0, 0, 2, 2);
        let codes: Vec<u128> = book
            .tickets_of(a)
            .chain(book.tickets_of(b))
            .map(|t| t.code)
            .collect();
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 4, "{codes:?}");
    }

    #[test]
    fn a_customers_orders_chain_newest_first_and_keys_are_found() {
        let mut book = OrderBook::default();
        let one = TypeCounts::single(TicketTypeId(0), 1).unwrap();
        let first = book.place(CustomerId(9), one, 0, 0, 0, 100, 1);
        book.place(CustomerId(8), one, 0, 0, 0, 100, 2);
        let second = book.place(CustomerId(9), one, 0, 0, 0, 200, 3);
        let ids: Vec<OrderId> = book.orders_of(CustomerId(9)).map(|(id, _)| id).collect();
        assert_eq!(ids, vec![second, first]);
        assert_eq!(book.find_by_key(CustomerId(9), 100), Some(first));
        assert_eq!(book.find_by_key(CustomerId(9), 300), None);
        assert_eq!(book.sold_to(CustomerId(9)).total(), 2);
    }
}
