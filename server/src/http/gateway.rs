//! Payments. The server talks to a gateway through [`PaymentGateway`]; the
//! built-in [`TestGateway`] answers by card number, as payment providers'
//! sandboxes do:
//!
//! | card number | answer |
//! | --- | --- |
//! | 4242 4242 4242 4242 | approved |
//! | 4000 0000 0000 0002 | declined |
//! | 4000 0000 0000 0119 | gateway error |
//! | 4000 0000 0000 0259 | approved after 2 seconds (a slow gateway) |
//!
//! Any other well-formed number is declined.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a charge came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charge {
    /// Captured, with the gateway's reference.
    Approved {
        /// The reference, kept on the order.
        reference: u64,
    },
    /// The card was declined.
    Declined,
    /// The gateway failed.
    Failed,
}

/// A payment provider.
pub trait PaymentGateway: Send + Sync + 'static {
    /// Charges `amount_cents` to the card.
    fn charge(
        &self,
        card: &str,
        amount_cents: u64,
    ) -> Pin<Box<dyn Future<Output = Charge> + Send + '_>>;
    /// Voids an approved charge that did not become an order (the cart
    /// changed or expired meanwhile, or a retry had already paid).
    fn void(&self, reference: u64);
}

/// The built-in sandbox gateway (see the module documentation).
#[derive(Debug, Default)]
pub struct TestGateway {
    next_reference: AtomicU64,
    voided: AtomicU64,
}

impl TestGateway {
    /// How many charges were voided (for tests).
    pub fn voided(&self) -> u64 {
        self.voided.load(Ordering::Relaxed)
    }
}

/// Keeps the digits of a card number; `None` unless 12 to 19 digits (spaces
/// and dashes allowed between them).
pub fn card_digits(card: &str) -> Option<String> {
    let digits: String = card.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let valid = (12..=19).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit());
    valid.then_some(digits)
}

impl PaymentGateway for TestGateway {
    fn charge(
        &self,
        card: &str,
        _amount_cents: u64,
    ) -> Pin<Box<dyn Future<Output = Charge> + Send + '_>> {
        let digits = card_digits(card).unwrap_or_default();
        Box::pin(async move {
            let approved = || Charge::Approved {
                reference: self.next_reference.fetch_add(1, Ordering::Relaxed) + 1,
            };
            match digits.as_str() {
                "4242424242424242" => approved(),
                "4000000000000119" => Charge::Failed,
                "4000000000000259" => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    approved()
                }
                _ => Charge::Declined,
            }
        })
    }

    fn void(&self, _reference: u64) {
        self.voided.fetch_add(1, Ordering::Relaxed);
    }
}
