//! The letters the server sends, written from typed facts: a purchase's
//! receipt, a password-reset link, and a security notice. Each is plain
//! text in Brazilian Portuguese, then the same in English (an account has
//! no language of its own yet). Dates are shown in Brasília time (UTC−3
//! all year since 2019), money as R$ 1.234,56.

use chrono::{DateTime, FixedOffset};

/// One e-mail, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Letter {
    /// The recipient's address.
    pub to: String,
    /// Its subject line.
    pub subject: String,
    /// Its plain-text body.
    pub text: String,
    /// What it is (`receipt`, `password_reset`, `security_notice`), for
    /// metrics and the log.
    pub kind: &'static str,
}

/// A ticket as the receipt lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptTicket {
    /// Its type's name.
    pub type_name: String,
    /// Its type's price, in centavos.
    pub price_cents: u64,
    /// Its code, 32 hexadecimal digits.
    pub code: String,
}

/// What a receipt says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The buyer's address.
    pub to: String,
    /// The order number (`IJ-1-000001`).
    pub number: String,
    /// The event's name.
    pub event: String,
    /// Where.
    pub venue: String,
    /// When it starts (ms since the epoch).
    pub starts_at_ms: u64,
    /// What was charged, in centavos.
    pub total_cents: u64,
    /// The tickets.
    pub tickets: Vec<ReceiptTicket>,
    /// The ticket holder's name, when the account has one.
    pub holder: Option<String>,
    /// Where the fan's tickets are (`https://…/#/tickets`).
    pub tickets_url: String,
}

/// A security change to tell the account's owner about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Two-factor was turned on (a new authenticator app).
    TwoFactorOn,
    /// The password was changed (or reset).
    PasswordChanged,
}

/// `R$ 1.234,56`.
pub fn reais(cents: u64) -> String {
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    format!("R$ {grouped},{:02}", cents % 100)
}

/// `24/12/2026 20:30 (horário de Brasília)`, or the milliseconds as they
/// are when out of range.
pub fn brasilia(ms: u64) -> String {
    let brasilia = FixedOffset::west_opt(3 * 3_600).map(|offset| {
        i64::try_from(ms)
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .map(|utc| utc.with_timezone(&offset))
    });
    match brasilia.flatten() {
        Some(time) => format!("{} (horário de Brasília)", time.format("%d/%m/%Y %H:%M")),
        None => format!("{ms} ms"),
    }
}

/// A ticket's code in groups of four, as the page shows it.
fn grouped(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Receipt {
    /// The receipt as a letter.
    pub fn letter(&self) -> Letter {
        let when = brasilia(self.starts_at_ms);
        let total = reais(self.total_cents);
        let lines: Vec<String> = self
            .tickets
            .iter()
            .map(|t| {
                format!(
                    "- {} · {} · {}",
                    t.type_name,
                    reais(t.price_cents),
                    grouped(&t.code)
                )
            })
            .collect();
        let tickets = lines.join("\n");
        let count = self.tickets.len();
        let holder = self
            .holder
            .as_ref()
            .map(|name| format!("Titular: {name}\n"))
            .unwrap_or_default();
        let text = format!(
            "Olá!\n\nSua compra está confirmada.\n\n\
             Pedido: {number}\nEvento: {event}\nLocal: {venue}\nData: {when}\n{holder}\
             Total: {total} ({count} ingresso(s))\n\nIngressos:\n{tickets}\n\n\
             Os ingressos, com os QR codes para a entrada, estão em \"Meus ingressos\":\n{url}\n\
             Lá você também pode imprimi-los ou pôr o evento na sua agenda.\n\n\
             — IngressoJá\n\n\
             ----\n\n\
             Your purchase is confirmed: order {number}, {event}, {venue}, {when}, \
             {count} ticket(s), {total}. Your tickets, with the QR codes for the door, \
             are in \"My tickets\": {url}\n",
            number = self.number,
            event = self.event,
            venue = self.venue,
            url = self.tickets_url,
        );
        Letter {
            to: self.to.clone(),
            subject: format!("Seus ingressos: {} · Pedido {}", self.event, self.number),
            text,
            kind: "receipt",
        }
    }
}

/// The password-reset letter: the single-use link and how long it lasts.
pub fn password_reset(to: &str, link: &str, valid_minutes: u64) -> Letter {
    let text = format!(
        "Olá!\n\nAlguém (esperamos que você) pediu para trocar a senha da sua conta no IngressoJá.\n\n\
         Para escolher uma senha nova, abra este link em até {valid_minutes} minutos:\n{link}\n\n\
         O link vale uma vez. Se não foi você, ignore este e-mail: sua senha continua a mesma, \
         e a verificação em duas etapas continua pedida ao entrar.\n\n\
         — IngressoJá\n\n\
         ----\n\n\
         Someone (we hope you) asked to change your IngressoJá password. To choose a new one, \
         open this link within {valid_minutes} minutes (it works once):\n{link}\n\
         If it was not you, ignore this e-mail: your password stays the same.\n"
    );
    Letter {
        to: to.to_string(),
        subject: "Trocar a senha do IngressoJá".to_string(),
        text,
        kind: "password_reset",
    }
}

/// A notice that something protecting the account changed, so that its
/// owner learns of a change they did not make.
pub fn security_notice(to: &str, change: Change, at_ms: u64, from: &str) -> Letter {
    let (subject, pt, en) = match change {
        Change::TwoFactorOn => (
            "Verificação em duas etapas ativada",
            "A verificação em duas etapas foi ativada na sua conta, com um novo aplicativo autenticador.",
            "Two-step verification was turned on for your account, with a new authenticator app.",
        ),
        Change::PasswordChanged => (
            "Sua senha foi trocada",
            "A senha da sua conta foi trocada, e todas as sessões abertas foram encerradas.",
            "Your account's password was changed, and every open session was ended.",
        ),
    };
    let when = brasilia(at_ms);
    let text = format!(
        "Olá!\n\n{pt}\n\nQuando: {when}\nDe onde: {from}\n\n\
         Se foi você, nada a fazer. Se não foi, troque sua senha agora pelo link \
         \"Esqueci minha senha\" na página de entrada.\n\n\
         — IngressoJá\n\n----\n\n{en} When: {when}. From: {from}. \
         If it was not you, reset your password now (\"Forgot your password\" on the login page).\n"
    );
    Letter {
        to: to.to_string(),
        subject: subject.to_string(),
        text,
        kind: "security_notice",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_dates_are_written_the_brazilian_way() {
        assert_eq!(reais(0), "R$ 0,00");
        assert_eq!(reais(25_000), "R$ 250,00");
        assert_eq!(reais(123_456_789), "R$ 1.234.567,89");
        // 2026-12-24 23:30 UTC is 20:30 in Brasília.
        assert_eq!(
            brasilia(1_798_155_000_000),
            "24/12/2026 20:30 (horário de Brasília)"
        );
        assert_eq!(brasilia(u64::MAX), format!("{} ms", u64::MAX));
    }

    #[test]
    fn a_receipt_names_the_order_the_event_and_every_ticket() {
        let letter = Receipt {
            to: "ana@example.com".into(),
            number: "IJ-1-000001".into(),
            event: "Festival".into(),
            venue: "Arena".into(),
            starts_at_ms: 1_798_155_000_000,
            total_cents: 50_000,
            tickets: vec![
                ReceiptTicket {
                    type_name: "Pista".into(),
                    price_cents: 25_000,
                    code: "0123456789ABCDEF0123456789ABCDEF".into(),
                };
                2
            ],
            holder: Some("Ana Souza".into()),
            tickets_url: "http://127.0.0.1:8080/#/tickets".into(),
        }
        .letter();
        assert!(
            letter.text.contains("Titular: Ana Souza\n"),
            "{}",
            letter.text
        );
        assert_eq!(
            letter.subject,
            "Seus ingressos: Festival · Pedido IJ-1-000001"
        );
        for part in [
            "Pedido: IJ-1-000001",
            "Local: Arena",
            "24/12/2026 20:30",
            "Total: R$ 500,00 (2 ingresso(s))",
            "- Pista · R$ 250,00 · 0123 4567 89AB CDEF 0123 4567 89AB CDEF",
            "http://127.0.0.1:8080/#/tickets",
            "Your purchase is confirmed",
        ] {
            assert!(letter.text.contains(part), "{part} in {}", letter.text);
        }
    }
}
