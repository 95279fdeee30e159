//! The outbox: letters queue here (bounded) and one task sends them, so a
//! request never waits for an SMTP server, and a slow or dead one costs
//! the sale nothing.
//!
//! Transports: an SMTP relay through lettre (`[mail] smtp_url`, e.g.
//! `smtps://user:pass@smtp.example.com:465`, or `smtp://127.0.0.1:2525` for
//! a local relay without TLS); the log when none is set (`make run`: the
//! letters are printed, links included, for whoever runs it); memory, for
//! tests that read what was sent. A transient SMTP failure (a 4xx, a lost
//! connection) is tried again after 1, 2 and 4 s; a permanent one (a 5xx:
//! an address the relay refuses) is not.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::letters::Letter;

/// Letters waiting to be sent, at most: beyond this (an SMTP server down
/// through a whole drop) new ones are dropped and counted.
pub const OUTBOX_CAPACITY: usize = 10_000;
/// Tries of one letter after a transient failure.
const ATTEMPTS: u32 = 4;
/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// The `[mail]` table of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// The SMTP relay (`smtp://`, `smtps://`, `?tls=required` for
    /// STARTTLS); none: letters go to the log.
    pub smtp_url: Option<String>,
    /// The sender, `Name <address>`.
    pub from: String,
    /// The address fans reach the site at, for the links in letters
    /// (`https://ingressoja.example`); none: `http://` + the listening
    /// address. Never taken from a request's `Host` header, which a caller
    /// chooses (a reset link pointing at an attacker's site).
    pub public_url: Option<String>,
}

impl Default for MailConfig {
    fn default() -> MailConfig {
        MailConfig {
            smtp_url: None,
            from: "IngressoJá <nao-responda@ingressoja.invalid>".to_string(),
            public_url: None,
        }
    }
}

/// Why the mail configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The sender is not an address.
    #[error("[mail] from {0:?} is not an e-mail address: {1}")]
    From(String, String),
    /// The relay's URL is not one lettre understands.
    #[error("[mail] smtp_url is not a valid SMTP URL: {0}")]
    Url(String),
}

/// Where letters go.
#[derive(Clone)]
pub enum Transport {
    /// An SMTP relay, by its URL (checked; connected to by the sending
    /// task, whose runtime the connection pool needs).
    Smtp(String),
    /// The server's log (standard output).
    Log,
    /// A list, for tests.
    Memory(Arc<Mutex<Vec<Letter>>>),
}

impl Transport {
    /// The transport `config` names.
    pub fn of(config: &MailConfig) -> Result<Transport, MailError> {
        match &config.smtp_url {
            None => Ok(Transport::Log),
            Some(url) => AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map(|_| Transport::Smtp(url.clone()))
                .map_err(|e| MailError::Url(e.to_string())),
        }
    }
}

/// What became of a letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Delivered to the relay (or the log, or memory).
    Delivered,
    /// Given up on: refused, or still failing after every try.
    Failed,
}

/// See the module documentation.
pub struct Outbox {
    sender: mpsc::Sender<Letter>,
    waiting: Mutex<Option<mpsc::Receiver<Letter>>>,
    from: Mailbox,
    transport: Transport,
    /// Letters dropped because the queue was full.
    pub dropped: prometheus_client::metrics::counter::Counter,
}

impl Outbox {
    /// An outbox sending through `transport` as `config.from`; nothing is
    /// sent until [`Outbox::run`] runs.
    pub fn new(config: &MailConfig, transport: Transport) -> Result<Outbox, MailError> {
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|e| MailError::From(config.from.clone(), e.to_string()))?;
        let (sender, receiver) = mpsc::channel(OUTBOX_CAPACITY);
        Ok(Outbox {
            sender,
            waiting: Mutex::new(Some(receiver)),
            from,
            transport,
            dropped: Default::default(),
        })
    }

    /// Queues `letter`; never waits. A full queue drops it (counted, and
    /// logged without the body, which may hold a reset link).
    pub fn send(&self, letter: Letter) {
        if let Err(error) = self.sender.try_send(letter) {
            let letter = match error {
                mpsc::error::TrySendError::Full(l) | mpsc::error::TrySendError::Closed(l) => l,
            };
            self.dropped.inc();
            tracing::warn!(kind = letter.kind, "mail outbox full: a letter was dropped");
        }
    }

    /// Letters queued and not yet taken by the sending task.
    pub fn pending(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// Sends queued letters until every sender is gone (run once, as a
    /// task of the server; a second call returns at once).
    pub async fn run(self: Arc<Self>, on_sent: impl Fn(&'static str, Sent)) {
        let Some(mut receiver) = self.waiting.lock().take() else {
            return;
        };
        let smtp = match &self.transport {
            Transport::Smtp(url) => AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map(|builder| builder.timeout(Some(SMTP_TIMEOUT)).build())
                .map_err(|e| tracing::error!(%e, "the SMTP relay's URL stopped parsing"))
                .ok(),
            _ => None,
        };
        while let Some(letter) = receiver.recv().await {
            let outcome = self.deliver(&letter, smtp.as_ref()).await;
            on_sent(letter.kind, outcome);
        }
    }

    async fn deliver(
        &self,
        letter: &Letter,
        smtp: Option<&AsyncSmtpTransport<Tokio1Executor>>,
    ) -> Sent {
        let smtp = match (&self.transport, smtp) {
            (Transport::Log, _) => {
                // Printed whole: with no relay configured, whoever runs the
                // server is the post office (`make run`).
                println!(
                    "mail to {} ({}): {}\n{}\n",
                    letter.to, letter.kind, letter.subject, letter.text
                );
                return Sent::Delivered;
            }
            (Transport::Memory(sent), _) => {
                sent.lock().push(letter.clone());
                return Sent::Delivered;
            }
            (Transport::Smtp(_), Some(smtp)) => smtp,
            (Transport::Smtp(_), None) => return Sent::Failed,
        };
        let message = match self.message(letter) {
            Ok(message) => message,
            Err(why) => {
                tracing::warn!(kind = letter.kind, %why, "a letter could not be written");
                return Sent::Failed;
            }
        };
        let mut pause = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            match smtp.send(message.clone()).await {
                Ok(_) => return Sent::Delivered,
                Err(error) if error.is_permanent() || attempt == ATTEMPTS => {
                    tracing::warn!(kind = letter.kind, %error, attempt, "a letter was not sent");
                    return Sent::Failed;
                }
                Err(error) => {
                    tracing::info!(kind = letter.kind, %error, attempt, "sending a letter again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
        Sent::Failed
    }

    fn message(&self, letter: &Letter) -> Result<Message, String> {
        let to = letter
            .to
            .parse::<Mailbox>()
            .map_err(|e| format!("recipient: {e}"))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(letter.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(letter.text.clone())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(to: &str) -> Letter {
        Letter {
            to: to.into(),
            subject: "Olá".into(),
            text: "corpo".into(),
            kind: "receipt",
        }
    }

    #[tokio::test]
    async fn queued_letters_are_delivered_in_order_by_the_task() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let outbox =
            Arc::new(Outbox::new(&MailConfig::default(), Transport::Memory(sent.clone())).unwrap());
        outbox.send(letter("a@example.com"));
        outbox.send(letter("b@example.com"));
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let seen = delivered.clone();
        let task = tokio::spawn(
            outbox
                .clone()
                .run(move |kind, sent| seen.lock().push((kind, sent))),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while delivered.lock().len() < 2 {
            assert!(std::time::Instant::now() < deadline, "not delivered");
            tokio::task::yield_now().await;
        }
        let to: Vec<String> = sent.lock().iter().map(|l| l.to.clone()).collect();
        assert_eq!(to, ["a@example.com", "b@example.com"]);
        assert_eq!(delivered.lock()[0], ("receipt", Sent::Delivered));
        task.abort();
    }

    #[test]
    fn a_full_outbox_drops_and_counts_instead_of_waiting() {
        let outbox = Outbox::new(&MailConfig::default(), Transport::Log).unwrap();
        for _ in 0..OUTBOX_CAPACITY + 3 {
            outbox.send(letter("a@example.com"));
        }
        assert_eq!(outbox.dropped.get(), 3);
    }

    #[test]
    fn a_bad_sender_or_relay_is_refused_with_its_name() {
        let bad = MailConfig {
            from: "not an address".into(),
            ..MailConfig::default()
        };
        let error = Outbox::new(&bad, Transport::Log).err().unwrap();
        assert!(error.to_string().contains("from"), "{error}");
        let bad = MailConfig {
            smtp_url: Some("gopher://mail".into()),
            ..MailConfig::default()
        };
        assert!(Transport::of(&bad).is_err());
    }
}
