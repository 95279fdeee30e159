//! The sale log read as an audit trail. Every sale transition is already in
//! the write-ahead log, hash-chained: who (the customer, which is the
//! account id), what (the transition), when (the record's time stamp) and,
//! for what a fan's own request did, from where (the request's address).
//! This module turns records into the same [`Entry`] shape as the audit log
//! of accounts and admin actions, so operators query and export one kind of
//! line: newest first for the admin endpoint (a bounded scan back from the
//! end), oldest first for `ingressoja audit export`.

use std::io::{self, Write};

use ingressoja_engine::{Transition, TypeCounts};
use ingressoja_wal::{LogStore, Record, VerifyError, read_back, read_from};
use serde::Serialize;

use crate::audit::{Entry, Filter};
use crate::http::views::Items;
use crate::runtime::LogEntry;

/// A sale record as the operators' page reads it: the audit entry, and the
/// facts its `detail` tells in words as typed values (the page names the
/// ticket types and formats the money and dates in the operator's
/// language).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SaleEntry {
    /// The entry, as `audit export` writes it.
    #[serde(flatten)]
    pub entry: Entry,
    /// The ticket types and quantities held or released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Items>,
    /// When a hold expires (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// What a payment charges, in centavos.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<u64>,
}

impl std::ops::Deref for SaleEntry {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        &self.entry
    }
}

/// What a query found.
#[derive(Debug, Default, Serialize)]
pub struct Found {
    /// Matching entries, newest first.
    pub entries: Vec<SaleEntry>,
    /// Records read.
    pub scanned: u64,
    /// False when the scan stopped at its budget before reaching the start
    /// of the range (older matches may exist).
    pub complete: bool,
}

/// Sale records matching `filter`, newest first, at most `limit`, reading at
/// most `budget` records back from the end of the log (a query must not
/// walk ten million records while the sale runs).
pub fn query<S: LogStore>(
    store: &S,
    filter: &Filter,
    limit: usize,
    budget: u64,
) -> Result<Found, VerifyError> {
    let mut found = Found {
        complete: true,
        ..Found::default()
    };
    for record in read_back(store, u64::MAX) {
        if found.scanned >= budget {
            found.complete = false;
            break;
        }
        let record = record?;
        found.scanned += 1;
        if filter.since_ms.is_some_and(|t| record.timestamp_ms < t) {
            break;
        }
        if let Some(entry) = sale_entry_of(&record)
            && filter.matches(&entry)
        {
            found.entries.push(entry);
            if found.entries.len() >= limit {
                break;
            }
        }
    }
    Ok(found)
}

/// Sale records stamped at or after `since_ms`, oldest first.
pub fn since<S: LogStore>(
    store: &S,
    since_ms: u64,
) -> impl Iterator<Item = Result<Entry, VerifyError>> + '_ {
    read_from(store, 1).filter_map(move |record| match record {
        Ok(record) if record.timestamp_ms < since_ms => None,
        Ok(record) => entry_of(&record).map(Ok),
        Err(error) => Some(Err(error)),
    })
}

/// One JSON line of `audit export`: which log it comes from, then the entry.
#[derive(Serialize)]
struct Line<'a> {
    log: &'static str,
    #[serde(flatten)]
    entry: &'a Entry,
}

/// Writes `entry` as a JSON line tagged with its log (`audit` or `sale`).
pub fn write_line(log: &'static str, entry: &Entry, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &Line { log, entry })?;
    out.write_all(b"\n")
}

/// A record as an audit entry (`None` for a payload this build cannot read,
/// which `wal verify` would report; the trail shows what it can).
pub fn entry_of(record: &Record) -> Option<Entry> {
    let entry = LogEntry::decode(&record.payload).ok()?;
    let base = Entry {
        seq: record.seq,
        at_ms: record.timestamp_ms,
        ip: entry.from().map(|ip| ip.to_string()),
        ..Entry::default()
    };
    Some(match entry {
        LogEntry::EventCreated { event, config } => Entry {
            action: "event_created".into(),
            event: Some(event.0),
            detail: config.name,
            ..base
        },
        LogEntry::Transition { event, transition }
        | LogEntry::RequestedTransition {
            event, transition, ..
        } => Entry {
            action: transition.kind().into(),
            account: transition.customer().map(|c| c.0),
            event: Some(event.0),
            detail: detail(&transition),
            ..base
        },
        LogEntry::PaymentStarted { payment, .. } => Entry {
            action: "payment_started".into(),
            account: Some(payment.customer.0),
            event: Some(payment.event.0),
            detail: format!(
                "payment {} of {} centavos",
                payment.payment_ref, payment.amount_cents
            ),
            ..base
        },
        LogEntry::PaymentSettled {
            payment,
            settlement,
        } => Entry {
            action: "payment_settled".into(),
            account: Some(payment.customer.0),
            event: Some(payment.event.0),
            detail: format!("payment {} {settlement:?}", payment.payment_ref),
            ..base
        },
        // Accounts, sessions and settings: their audit entries are in the
        // audit log, logged through the same records.
        LogEntry::Attached(_) => return None,
    })
}

/// A record as an entry with its typed facts (`None` as for [`entry_of`]).
pub fn sale_entry_of(record: &Record) -> Option<SaleEntry> {
    let entry = entry_of(record)?;
    let mut sale = SaleEntry {
        entry,
        items: None,
        until_ms: None,
        amount_cents: None,
    };
    match LogEntry::decode(&record.payload).ok()? {
        LogEntry::Transition { transition, .. }
        | LogEntry::RequestedTransition { transition, .. } => match transition {
            Transition::ItemsHeld {
                items,
                expires_at_ms,
                ..
            } => {
                sale.items = Some(Items(items));
                sale.until_ms = Some(expires_at_ms);
            }
            Transition::ItemsReleased { items, .. } => sale.items = Some(Items(items)),
            _ => {}
        },
        LogEntry::PaymentStarted { payment, .. } => sale.amount_cents = Some(payment.amount_cents),
        _ => {}
    }
    Some(sale)
}

/// What an auditor needs beyond the kind: quantities, expiry, payment.
fn detail(transition: &Transition) -> String {
    match *transition {
        Transition::ItemsHeld {
            items,
            expires_at_ms,
            ..
        } => format!("{} until {expires_at_ms}", items_text(&items)),
        Transition::ItemsReleased { items, .. } => items_text(&items),
        Transition::OrderPlaced { payment_ref, .. } => format!("payment {payment_ref}"),
        Transition::Admitted { count, .. } => format!("{count} admitted"),
        Transition::Opened { prequeue_len, .. } => format!("{prequeue_len} in the pre-queue"),
        Transition::Closed { reason, .. } => format!("{reason:?}"),
        Transition::PolicyChanged { policy, .. } => format!("{policy:?}"),
        Transition::PolicyChangedV1 { policy, .. } => format!("{policy:?}"),
        Transition::ArrivalWindowOpened { ends_at_ms } => format!("drawn at {ends_at_ms}"),
        Transition::ArrivalsDrawn { count, seed, .. } => format!("{count} drawn, seed {seed:#x}"),
        Transition::Rescheduled { schedule } => format!("{schedule:?}"),
        Transition::Joined { .. }
        | Transition::LeftQueue { .. }
        | Transition::HoldExpired { .. }
        | Transition::SessionEnded { .. }
        | Transition::ShopperIdle { .. }
        | Transition::Paused { .. }
        | Transition::Resumed { .. } => String::new(),
    }
}

/// `type 0 × 2, type 2 × 1`.
fn items_text(items: &TypeCounts) -> String {
    items
        .iter()
        .map(|(t, q)| format!("type {} × {q}", t.0))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::EventId;
    use ingressoja_engine::{CustomerId, TicketTypeId};
    use ingressoja_wal::{MemStore, Wal};

    fn record(seq: u64, at_ms: u64, entry: &LogEntry) -> Record {
        Record {
            seq,
            timestamp_ms: at_ms,
            payload: entry.encode().unwrap(),
        }
    }

    /// Ana (account 1) joins and holds from an address; Bia (2) joins; a
    /// tick expires Ana's hold (nobody's request).
    fn sale() -> MemStore {
        let store = MemStore::default();
        let (mut wal, _) = Wal::open(store.clone(), 0, |_| Ok(())).unwrap();
        let from = "198.51.100.7".parse().unwrap();
        let event = EventId(0);
        let mine = |transition| LogEntry::RequestedTransition {
            event,
            transition,
            from,
        };
        let ana = CustomerId(1);
        let items = TypeCounts::single(TicketTypeId(1), 2).unwrap();
        wal.append(
            1_000,
            vec![
                record(1, 1_000, &mine(Transition::Joined { customer: ana })),
                record(
                    2,
                    1_000,
                    &LogEntry::Transition {
                        event,
                        transition: Transition::Joined {
                            customer: CustomerId(2),
                        },
                    },
                ),
            ],
        )
        .unwrap();
        wal.append(
            2_000,
            vec![record(
                3,
                2_000,
                &mine(Transition::ItemsHeld {
                    customer: ana,
                    items,
                    expires_at_ms: 9_000,
                }),
            )],
        )
        .unwrap();
        wal.append(
            9_000,
            vec![record(
                4,
                9_000,
                &LogEntry::Transition {
                    event,
                    transition: Transition::HoldExpired { customer: ana },
                },
            )],
        )
        .unwrap();
        store
    }

    #[test]
    fn a_fans_sale_actions_come_newest_first_with_where_from() {
        let found = query(
            &sale(),
            &Filter {
                account: Some(1),
                ..Filter::default()
            },
            10,
            1_000,
        )
        .unwrap();
        let seen: Vec<(u64, &str, Option<&str>)> = found
            .entries
            .iter()
            .map(|e| (e.seq, e.action.as_str(), e.ip.as_deref()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (4, "hold_expired", None),
                (3, "items_held", Some("198.51.100.7")),
                (1, "joined", Some("198.51.100.7")),
            ]
        );
        assert_eq!(found.entries[1].detail, "type 1 × 2 until 9000");
        let typed = serde_json::to_value(&found.entries[1]).unwrap();
        assert_eq!(
            typed["items"],
            serde_json::json!([{"ticket_type": 1, "quantity": 2}])
        );
        assert_eq!(typed["until_ms"], 9_000);
        assert_eq!(
            typed["action"], "items_held",
            "the entry's own fields, flattened"
        );
        assert!(
            serde_json::to_value(&found.entries[0])
                .unwrap()
                .get("items")
                .is_none()
        );
        assert_eq!(found.entries[1].at_ms, 2_000);
        assert!(found.complete);
    }

    #[test]
    fn a_query_stops_at_its_time_range_and_its_budget() {
        let store = sale();
        let recent = Filter {
            since_ms: Some(2_000),
            ..Filter::default()
        };
        let found = query(&store, &recent, 10, 1_000).unwrap();
        assert_eq!(
            found.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![4, 3]
        );
        assert!(found.complete);

        let found = query(&store, &Filter::default(), 10, 2).unwrap();
        assert_eq!((found.scanned, found.complete), (2, false));
    }

    #[test]
    fn export_lines_name_their_log() {
        let mut out = Vec::new();
        for entry in since(&sale(), 2_000) {
            write_line("sale", &entry.unwrap(), &mut out).unwrap();
        }
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["log"], "sale");
        assert_eq!(lines[0]["seq"], 3);
        assert_eq!(lines[0]["account"], 1);
        assert_eq!(lines[0]["ip"], "198.51.100.7");
        assert_eq!(lines[1]["action"], "hold_expired");
    }
}
