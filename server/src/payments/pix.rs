//! Pix "copia e cola" codes: the BR Code payload (EMV QR Code for
//! merchant-presented mode, as the Banco Central's manual specifies it)
//! that a bank app reads from the QR or from the pasted text. A provider
//! issues one per charge; the payer's bank pays it, and the provider tells
//! the merchant (a webhook; in the sandbox, a channel).
//!
//! A payload is a run of fields `ID (2 digits) · length (2 digits) · value`
//! ending with `6304` and the CRC-16/CCITT-FALSE of everything before it,
//! in four upper-case hex digits. The charge is named by its txid (field
//! 62, sub-field 05: up to 25 letters and digits), which here carries our
//! payment reference, so a paid code leads back to its payment.

use super::gateway::PaymentRef;

/// The Pix key the sandbox charges to (a random-key style EVP).
pub const SANDBOX_KEY: &str = "7d9f0335-8dcc-4054-9bf9-0dbd61d36906";
/// The receiver's name as bank apps show it (at most 25 characters).
pub const MERCHANT_NAME: &str = "INGRESSOJA";
/// The receiver's city (at most 15 characters).
pub const MERCHANT_CITY: &str = "SAO PAULO";
/// The longest payload a bank accepts (and the most we read).
pub const MAX_CODE: usize = 512;

/// One field: its id, its value's length in two digits, its value.
fn field(id: &str, value: &str) -> String {
    debug_assert!(value.len() < 100, "an EMV field holds at most 99 bytes");
    format!("{id}{:02}{value}", value.len())
}

/// CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF), as the
/// BR Code's field 63 requires.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The txid of a payment: "IJ" and its reference in 16 hex digits.
pub fn txid(payment: PaymentRef) -> String {
    format!("IJ{payment:016X}")
}

/// The "copia e cola" payload charging `amount_cents` under `payment`.
pub fn copia_e_cola(payment: PaymentRef, amount_cents: u64) -> String {
    let account = [field("00", "br.gov.bcb.pix"), field("01", SANDBOX_KEY)].concat();
    let amount = format!("{}.{:02}", amount_cents / 100, amount_cents % 100);
    let mut payload = [
        field("00", "01"),
        // 12: a code for one payment only.
        field("01", "12"),
        field("26", &account),
        field("52", "0000"),
        // 986: the real.
        field("53", "986"),
        field("54", &amount),
        field("58", "BR"),
        field("59", MERCHANT_NAME),
        field("60", MERCHANT_CITY),
        field("62", &field("05", &txid(payment))),
        "6304".to_owned(),
    ]
    .concat();
    let crc = crc16(payload.as_bytes());
    payload.push_str(&format!("{crc:04X}"));
    payload
}

/// Why a pasted code is not one of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not a BR Code (bad fields, or the check digits do not match).
    #[error("this is not a Pix code (a field or the check digits are wrong)")]
    Malformed,
    /// A valid code for some other receiver.
    #[error("this Pix code was not issued by this sale")]
    NotOurs,
}

/// The top-level fields of a payload, with the CRC checked.
fn fields(code: &str) -> Result<Vec<(&str, &str)>, CodeError> {
    let code = code.trim();
    if code.len() > MAX_CODE || !code.is_ascii() || code.len() < 8 {
        return Err(CodeError::Malformed);
    }
    let (body, crc) = code.split_at(code.len() - 4);
    let expected = u16::from_str_radix(crc, 16).map_err(|_| CodeError::Malformed)?;
    if !body.ends_with("6304") || crc16(body.as_bytes()) != expected {
        return Err(CodeError::Malformed);
    }
    split(&body[..body.len() - 4])
}

/// A run of fields as (id, value).
fn split(mut rest: &str) -> Result<Vec<(&str, &str)>, CodeError> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let id = rest.get(..2).ok_or(CodeError::Malformed)?;
        let length: usize = rest
            .get(2..4)
            .and_then(|l| l.parse().ok())
            .ok_or(CodeError::Malformed)?;
        let value = rest.get(4..4 + length).ok_or(CodeError::Malformed)?;
        out.push((id, value));
        rest = &rest[4 + length..];
    }
    Ok(out)
}

/// The payment a "copia e cola" code of ours charges.
pub fn payment_of(code: &str) -> Result<PaymentRef, CodeError> {
    let fields = fields(code)?;
    let value = |id: &str| fields.iter().find(|(i, _)| *i == id).map(|(_, v)| *v);
    let account = split(value("26").ok_or(CodeError::NotOurs)?)?;
    if !account.contains(&("01", SANDBOX_KEY)) {
        return Err(CodeError::NotOurs);
    }
    let extra = split(value("62").ok_or(CodeError::NotOurs)?)?;
    let txid = extra
        .iter()
        .find(|(id, _)| *id == "05")
        .map(|(_, v)| *v)
        .ok_or(CodeError::NotOurs)?;
    let hex = txid.strip_prefix("IJ").ok_or(CodeError::NotOurs)?;
    if hex.len() != 16 {
        return Err(CodeError::NotOurs);
    }
    u64::from_str_radix(hex, 16).map_err(|_| CodeError::NotOurs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The example of the Banco Central's BR Code manual, CRC included.
    const MANUAL: &str = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";

    #[test]
    fn the_check_digits_are_the_manuals() {
        let body = &MANUAL[..MANUAL.len() - 4];
        assert_eq!(format!("{:04X}", crc16(body.as_bytes())), "1D3D");
        assert_eq!(payment_of(MANUAL), Err(CodeError::NotOurs));
    }

    #[test]
    fn a_code_names_its_payment_and_amount_and_survives_no_edit() {
        let code = copia_e_cola(0xDEAD_BEEF, 25_050);
        assert!(code.starts_with("000201010212"), "{code}");
        assert!(code.contains("5406250.50"), "the amount in reais: {code}");
        assert!(code.contains("5802BR"));
        assert_eq!(payment_of(&code), Ok(0xDEAD_BEEF));
        assert_eq!(payment_of(&format!("  {code}\n")), Ok(0xDEAD_BEEF));
        // Any changed character breaks the check digits.
        let edited = code.replace("250.50", "150.50");
        assert_eq!(payment_of(&edited), Err(CodeError::Malformed));
        for bad in ["", "6304", "garbage-garbage", &code[..code.len() - 1]] {
            assert_eq!(payment_of(bad), Err(CodeError::Malformed), "{bad}");
        }
    }
}
