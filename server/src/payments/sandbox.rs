//! The sandbox payment provider: answers by card number, as providers'
//! test modes do, and keeps its ledger in a file of its own, synced before
//! it answers, so that a crash of the sale process cannot erase a charge
//! (the provider is another company's computer; this file stands in for
//! its records). Tests read the ledger back with [`read_ledger`] to audit
//! that every charge became an order or was given back.
//!
//! | card number | answer |
//! | --- | --- |
//! | 4242 4242 4242 4242 | approved |
//! | 4000 0000 0000 0002 | declined |
//! | 4000 0000 0000 0119 | provider error (nothing authorized) |
//! | 4000 0000 0000 0259 | approved after 2 seconds (a slow provider) |
//!
//! Any other well-formed number is declined.
//!
//! Pix charges are issued as "copia e cola" codes (`pix.rs`) and paid by
//! [`SandboxGateway::pay_pix`], which stands in for the payer's bank (the
//! API's `POST /api/sandbox/pix`): a charge is paid once, only before it
//! lapses, and the payment is then told to the server on the channel given
//! to [`SandboxGateway::on_pix_paid`] (a real provider's webhook).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ingressoja_snapshots::durable::{create_dir_durably, sync_dir};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::gateway::{
    Authorization, ChargeState, GatewayError, GatewayFuture, PaymentGateway, PaymentRef, PixCharge,
    PixPaid, card_digits,
};
use super::pix::{self, CodeError};

/// The ledger's file name inside its directory.
pub const LEDGER_FILE: &str = "ledger.jsonl";

/// One line of the ledger: a payment's new state.
#[derive(Debug, Serialize, Deserialize)]
struct LedgerLine {
    payment: PaymentRef,
    #[serde(flatten)]
    state: ChargeState,
}

/// The ledger: every payment's state, and the file that keeps it.
#[derive(Debug)]
struct Ledger {
    file: File,
    states: HashMap<PaymentRef, ChargeState>,
}

impl Ledger {
    fn state(&self, payment: PaymentRef) -> ChargeState {
        self.states
            .get(&payment)
            .copied()
            .unwrap_or(ChargeState::Unknown)
    }

    /// Writes and syncs the new state, then keeps it.
    fn set(&mut self, payment: PaymentRef, state: ChargeState) -> Result<(), GatewayError> {
        let line = LedgerLine { payment, state };
        let mut bytes = serde_json::to_vec(&line)
            .map_err(|e| GatewayError::Unavailable(format!("ledger encoding: {e}")))?;
        bytes.push(b'\n');
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| GatewayError::Unavailable(format!("ledger write: {e}")))?;
        self.states.insert(payment, state);
        Ok(())
    }
}

/// The sandbox provider (see the module documentation).
#[derive(Clone, Debug)]
pub struct SandboxGateway {
    ledger: Arc<Mutex<Ledger>>,
    /// Where paid Pix charges are told (the webhook's address).
    pix_paid: Arc<Mutex<Option<PixPaid>>>,
}

/// Why the payer's bank could not pay a Pix code.
#[derive(Debug, thiserror::Error)]
pub enum PixRefusal {
    /// Not a code of ours.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// Ours in form, but no such charge was issued.
    #[error("no Pix charge has this code")]
    Unknown,
    /// The charge lapsed (or was cancelled): nothing was paid.
    #[error("this Pix charge has expired; nothing was paid")]
    Lapsed,
    /// Paid already: nothing was paid again.
    #[error("this Pix charge was paid already")]
    Paid,
    /// The provider failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

impl SandboxGateway {
    /// Opens (or creates) the ledger in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<SandboxGateway> {
        create_dir_durably(dir)?;
        let path = dir.join(LEDGER_FILE);
        let states = read_ledger(&path)?;
        cut_torn_tail(&path)?;
        let new = !path.exists();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if new {
            // The ledger's name, not only its lines, must survive a power cut.
            file.sync_all()?;
            sync_dir(dir)?;
        }
        Ok(SandboxGateway {
            ledger: Arc::new(Mutex::new(Ledger { file, states })),
            pix_paid: Arc::new(Mutex::new(None)),
        })
    }

    /// Tells each Pix payment from now on to `to`.
    pub fn on_pix_paid(&self, to: PixPaid) {
        *self.pix_paid.lock() = Some(to);
    }

    /// The payer's bank pays the Pix `code` at `now_ms`: the charge becomes
    /// `Captured` (synced) and the server is told. A notice that finds the
    /// channel full or gone is not lost: the payment stays in flight and
    /// the settlement sweep finds it captured.
    pub async fn pay_pix(&self, code: &str, now_ms: u64) -> Result<PaymentRef, PixRefusal> {
        let payment = pix::payment_of(code)?;
        let paid = self
            .with_ledger(move |ledger| match ledger.state(payment) {
                ChargeState::Awaiting {
                    amount_cents,
                    expires_at_ms,
                } if now_ms < expires_at_ms => ledger
                    .set(payment, ChargeState::Captured { amount_cents })
                    .map(|()| Ok(payment)),
                ChargeState::Awaiting { .. } | ChargeState::Voided => Ok(Err(PixRefusal::Lapsed)),
                ChargeState::Captured { .. } | ChargeState::Refunded => Ok(Err(PixRefusal::Paid)),
                _ => Ok(Err(PixRefusal::Unknown)),
            })
            .await??;
        if let Some(to) = self.pix_paid.lock().as_ref()
            && to.try_send(paid).is_err()
        {
            tracing::warn!(
                payment = paid,
                "Pix notice not delivered: left for the sweep"
            );
        }
        Ok(paid)
    }

    /// Runs `change` on the ledger off the async workers (it syncs a file).
    async fn with_ledger<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut Ledger) -> Result<T, GatewayError> + Send + 'static,
    ) -> Result<T, GatewayError> {
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || change(&mut ledger.lock()))
            .await
            .map_err(|e| GatewayError::Unavailable(format!("ledger task: {e}")))?
    }
}

/// Where a sandbox keeps its ledger for a data directory.
pub fn ledger_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("sandbox-gateway")
}

/// Every payment's last state in the ledger at `path` (empty if there is
/// none). A last line cut short by a crash is ignored: its write never
/// returned, so nobody was told of it.
pub fn read_ledger(path: &Path) -> std::io::Result<HashMap<PaymentRef, ChargeState>> {
    let mut states = HashMap::new();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(states),
        Err(e) => return Err(e),
    };
    let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>()?;
    let last = lines.len().saturating_sub(1);
    for (index, line) in lines.iter().enumerate() {
        match serde_json::from_str::<LedgerLine>(line) {
            Ok(entry) => {
                states.insert(entry.payment, entry.state);
            }
            Err(_) if index == last => {}
            Err(error) => {
                return Err(std::io::Error::other(format!(
                    "sandbox ledger line {}: {error}",
                    index + 1
                )));
            }
        }
    }
    Ok(states)
}

/// Cuts a last line that a crash left unfinished, so that lines written
/// after it start on a line of their own.
fn cut_torn_tail(path: &Path) -> std::io::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(keep as u64)?;
    file.sync_all()
}

fn refused(what: &str, state: ChargeState) -> GatewayError {
    GatewayError::Refused(format!("cannot {what} a payment in state {state:?}"))
}

impl PaymentGateway for SandboxGateway {
    fn authorize<'a>(
        &'a self,
        payment: PaymentRef,
        card: &'a str,
        amount_cents: u64,
    ) -> GatewayFuture<'a, Authorization> {
        let digits = card_digits(card).unwrap_or_default();
        Box::pin(async move {
            let answer = match digits.as_str() {
                "4242424242424242" => Authorization::Approved,
                "4000000000000119" => {
                    return Err(GatewayError::Unavailable("sandbox: card 0119".into()));
                }
                "4000000000000259" => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Authorization::Approved
                }
                _ => Authorization::Declined,
            };
            self.with_ledger(move |ledger| match ledger.state(payment) {
                // A Pix charge's reference is never a card's.
                ChargeState::Awaiting { .. } => Ok(Authorization::Declined),
                // Idempotent: the same reference gets the same answer.
                ChargeState::Authorized { .. } | ChargeState::Captured { .. } => {
                    Ok(Authorization::Approved)
                }
                ChargeState::Declined | ChargeState::Voided | ChargeState::Refunded => {
                    Ok(Authorization::Declined)
                }
                ChargeState::Unknown => {
                    let state = match answer {
                        Authorization::Approved => ChargeState::Authorized { amount_cents },
                        Authorization::Declined => ChargeState::Declined,
                    };
                    ledger.set(payment, state)?;
                    Ok(answer)
                }
            })
            .await
        })
    }

    fn create_pix(
        &self,
        payment: PaymentRef,
        amount_cents: u64,
        expires_at_ms: u64,
    ) -> GatewayFuture<'_, PixCharge> {
        Box::pin(self.with_ledger(move |ledger| {
            let charge = |amount_cents, expires_at_ms| PixCharge {
                code: pix::copia_e_cola(payment, amount_cents),
                amount_cents,
                expires_at_ms,
            };
            match ledger.state(payment) {
                ChargeState::Unknown => {
                    ledger.set(
                        payment,
                        ChargeState::Awaiting {
                            amount_cents,
                            expires_at_ms,
                        },
                    )?;
                    Ok(charge(amount_cents, expires_at_ms))
                }
                // Idempotent: the charge already issued, as issued.
                ChargeState::Awaiting {
                    amount_cents,
                    expires_at_ms,
                } => Ok(charge(amount_cents, expires_at_ms)),
                other => Err(refused("issue a Pix charge for", other)),
            }
        }))
    }

    fn capture(&self, payment: PaymentRef) -> GatewayFuture<'_, ()> {
        Box::pin(self.with_ledger(move |ledger| match ledger.state(payment) {
            ChargeState::Authorized { amount_cents } => {
                ledger.set(payment, ChargeState::Captured { amount_cents })
            }
            ChargeState::Captured { .. } => Ok(()),
            other => Err(refused("capture", other)),
        }))
    }

    fn void(&self, payment: PaymentRef) -> GatewayFuture<'_, ()> {
        Box::pin(self.with_ledger(move |ledger| match ledger.state(payment) {
            ChargeState::Authorized { .. }
            | ChargeState::Awaiting { .. }
            | ChargeState::Unknown => ledger.set(payment, ChargeState::Voided),
            ChargeState::Voided | ChargeState::Declined => Ok(()),
            other => Err(refused("void", other)),
        }))
    }

    fn refund(&self, payment: PaymentRef) -> GatewayFuture<'_, ()> {
        Box::pin(self.with_ledger(move |ledger| match ledger.state(payment) {
            ChargeState::Captured { .. } => ledger.set(payment, ChargeState::Refunded),
            ChargeState::Refunded => Ok(()),
            other => Err(refused("refund", other)),
        }))
    }

    fn status(&self, payment: PaymentRef) -> GatewayFuture<'_, ChargeState> {
        Box::pin(self.with_ledger(move |ledger| Ok(ledger.state(payment))))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = "4242 4242 4242 4242";

    #[tokio::test]
    async fn the_ledger_outlives_the_gateway_and_every_call_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let gateway = SandboxGateway::open(dir.path()).unwrap();
        assert_eq!(
            gateway.authorize(1, GOOD, 500).await,
            Ok(Authorization::Approved)
        );
        assert_eq!(
            gateway.authorize(1, GOOD, 500).await,
            Ok(Authorization::Approved),
            "the same reference is not charged twice"
        );
        gateway.capture(1).await.unwrap();
        gateway.capture(1).await.unwrap();
        assert_eq!(
            gateway.authorize(2, "4000 0000 0000 0002", 500).await,
            Ok(Authorization::Declined)
        );
        assert!(matches!(
            gateway.authorize(3, "4000 0000 0000 0119", 500).await,
            Err(GatewayError::Unavailable(_))
        ));
        // A reference voided before it was ever authorized stays refused.
        gateway.void(4).await.unwrap();
        assert_eq!(
            gateway.authorize(4, GOOD, 500).await,
            Ok(Authorization::Declined)
        );
        assert!(matches!(
            gateway.void(1).await,
            Err(GatewayError::Refused(_))
        ));
        drop(gateway);

        let again = SandboxGateway::open(dir.path()).unwrap();
        assert_eq!(
            again.status(1).await,
            Ok(ChargeState::Captured { amount_cents: 500 })
        );
        again.refund(1).await.unwrap();
        let ledger = read_ledger(&dir.path().join(LEDGER_FILE)).unwrap();
        assert_eq!(ledger[&1], ChargeState::Refunded);
        assert_eq!(ledger[&2], ChargeState::Declined);
        assert_eq!(ledger[&4], ChargeState::Voided);
        assert!(!ledger.contains_key(&3), "a provider error charges nothing");
    }

    /// On a disk that forgets what was not synced (names included) when
    /// power is cut: a charge the provider answered is in its ledger after
    /// the cut, in a ledger directory and file the gateway created.
    #[tokio::test]
    async fn a_charge_the_provider_answered_survives_a_power_cut() {
        let dir = tempfile::tempdir().unwrap();
        let disk = ingressoja_powerloss::mount_in(dir.path()).unwrap();
        let ledger = ledger_dir(&disk.path.join("data"));
        let gateway = SandboxGateway::open(&ledger).unwrap();
        assert_eq!(
            gateway.authorize(1, GOOD, 500).await,
            Ok(Authorization::Approved)
        );
        gateway.capture(1).await.unwrap();
        assert_eq!(
            gateway.authorize(2, GOOD, 700).await,
            Ok(Authorization::Approved)
        );
        let cut = disk.power.cut(std::path::Path::new("")).unwrap();
        assert_eq!(cut.names, 0, "every name the ledger needs was synced");
        drop(gateway);
        let again = SandboxGateway::open(&ledger).unwrap();
        assert_eq!(
            again.status(1).await,
            Ok(ChargeState::Captured { amount_cents: 500 })
        );
        assert_eq!(
            again.status(2).await,
            Ok(ChargeState::Authorized { amount_cents: 700 })
        );
    }

    #[tokio::test]
    async fn a_pix_charge_is_paid_once_before_it_lapses_and_told() {
        let dir = tempfile::tempdir().unwrap();
        let gateway = SandboxGateway::open(dir.path()).unwrap();
        let (told, mut notices) = tokio::sync::mpsc::channel(4);
        gateway.on_pix_paid(told);
        let charge = gateway.create_pix(9, 12_000, 1_000).await.unwrap();
        assert_eq!(
            gateway.create_pix(9, 12_000, 1_000).await.unwrap(),
            charge,
            "the same reference, the same charge"
        );
        assert_eq!(
            gateway.status(9).await,
            Ok(ChargeState::Awaiting {
                amount_cents: 12_000,
                expires_at_ms: 1_000
            })
        );
        assert!(matches!(
            gateway.pay_pix("not a code", 10).await,
            Err(PixRefusal::Code(CodeError::Malformed))
        ));
        assert!(matches!(
            gateway.pay_pix(&pix::copia_e_cola(10, 12_000), 10).await,
            Err(PixRefusal::Unknown)
        ));
        assert_eq!(gateway.pay_pix(&charge.code, 999).await.unwrap(), 9);
        assert_eq!(notices.recv().await, Some(9));
        assert!(matches!(
            gateway.pay_pix(&charge.code, 999).await,
            Err(PixRefusal::Paid)
        ));
        assert_eq!(
            gateway.status(9).await,
            Ok(ChargeState::Captured {
                amount_cents: 12_000
            })
        );
        // A charge paid at or after its end is refused and stays unpaid.
        let late = gateway.create_pix(11, 500, 1_000).await.unwrap();
        assert!(matches!(
            gateway.pay_pix(&late.code, 1_000).await,
            Err(PixRefusal::Lapsed)
        ));
        gateway.void(11).await.unwrap();
        assert!(matches!(
            gateway.pay_pix(&late.code, 10).await,
            Err(PixRefusal::Lapsed)
        ));
        assert!(notices.try_recv().is_err(), "nothing else was told");
        assert_eq!(
            gateway.authorize(11, GOOD, 500).await,
            Ok(Authorization::Declined)
        );
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_a_damaged_middle_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEDGER_FILE);
        let good = r#"{"payment":7,"state":"authorized","amount_cents":10}"#;
        std::fs::write(&path, format!("{good}\n{{\"payment\":8,\"st")).unwrap();
        assert_eq!(read_ledger(&path).unwrap().len(), 1);
        // Opening cuts it, so what is written next reads back.
        let gateway = SandboxGateway::open(dir.path()).unwrap();
        drop(gateway);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{good}\n"));
        std::fs::write(&path, format!("garbage\n{good}\n")).unwrap();
        assert!(read_ledger(&path).is_err());
    }
}
