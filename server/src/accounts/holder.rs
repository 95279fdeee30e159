//! The ticket holder of an account: the full name printed on its tickets
//! and the CPF (Cadastro de Pessoas Físicas) that Brazilian on-sales tie
//! tickets to against scalpers. One CPF has at most one account, so the
//! per-customer limit is a per-CPF limit too.
//!
//! The CPF is personal data under the LGPD and is never stored or logged
//! in clear: what is kept is its HMAC-SHA256 under a key all nodes share
//! (`cpf_digest`), which finds a CPF already used without holding it, and
//! its two check digits, which show a fan which CPF they gave ("•••.•••.
//! •••-09") while saying nothing of the other nine. Set once: a holder
//! cannot be swapped after tickets are bought (support changes it, not the
//! fan). See ARCHITECTURE.md, "CPF".

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The name of the shared secret that keys CPF digests.
pub const CPF_KEY_NAME: &str = "cpf";
/// The longest holder name accepted, in characters.
pub const MAX_NAME: usize = 120;

/// An account's ticket holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The full name, as printed on tickets (trimmed, single spaces).
    pub name: String,
    /// HMAC-SHA256 of the CPF's eleven digits under the shared CPF key.
    pub cpf_hash: [u8; 32],
    /// The CPF's two check digits, to show it masked.
    pub cpf_check: [u8; 2],
}

impl Holder {
    /// The CPF as shown back: only its check digits.
    pub fn masked_cpf(&self) -> String {
        format!(
            "•••.•••.•••-{}{}",
            self.cpf_check[0] % 10,
            self.cpf_check[1] % 10
        )
    }
}

/// Why a holder is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HolderError {
    /// Not eleven digits with the right check digits.
    #[error("this is not a valid CPF (11 digits whose last two are its check digits)")]
    BadCpf,
    /// No name, a single word, or too long.
    #[error("give the holder's full name (first and last name, at most 120 characters)")]
    BadName,
}

/// A CPF's eleven digits, if `raw` is one: digits with the usual dots and
/// dash allowed, the check digits right, and not one digit repeated (such
/// as 111.111.111-11, which passes the check but is never issued).
pub fn parse_cpf(raw: &str) -> Result<[u8; 11], HolderError> {
    let mut digits = [0u8; 11];
    let mut count = 0;
    for c in raw.trim().chars() {
        match c {
            '0'..='9' => {
                if count == 11 {
                    return Err(HolderError::BadCpf);
                }
                digits[count] = c as u8 - b'0';
                count += 1;
            }
            '.' | '-' | ' ' => {}
            _ => return Err(HolderError::BadCpf),
        }
    }
    if count != 11 || digits.iter().all(|&d| d == digits[0]) {
        return Err(HolderError::BadCpf);
    }
    // Weights count down from len + 1 to 2 over the first len digits.
    let check = |len: usize| {
        let sum: usize = digits[..len]
            .iter()
            .enumerate()
            .map(|(i, &d)| usize::from(d) * (len + 1 - i))
            .sum();
        match (sum * 10) % 11 {
            10 => 0,
            rest => u8::try_from(rest).unwrap_or(u8::MAX),
        }
    };
    if check(9) != digits[9] || check(10) != digits[10] {
        return Err(HolderError::BadCpf);
    }
    Ok(digits)
}

/// The holder's name, trimmed with single spaces; at least two words.
pub fn normalize_name(raw: &str) -> Result<String, HolderError> {
    let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let valid = name.chars().count() <= MAX_NAME
        && name.split(' ').count() >= 2
        && name
            .chars()
            .all(|c| c.is_alphabetic() || " '-.".contains(c));
    if valid {
        Ok(name)
    } else {
        Err(HolderError::BadName)
    }
}

/// The digest a CPF is kept and found by.
pub fn cpf_digest(key: &[u8; 32], digits: &[u8; 11]) -> [u8; 32] {
    // A key of any length is valid for HMAC: this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(b"cpf:");
    mac.update(digits);
    mac.finalize().into_bytes().into()
}

/// The holder for `name` and `cpf` under `key`.
pub fn holder(key: &[u8; 32], name: &str, cpf: &str) -> Result<Holder, HolderError> {
    let digits = parse_cpf(cpf)?;
    Ok(Holder {
        name: normalize_name(name)?,
        cpf_hash: cpf_digest(key, &digits),
        cpf_check: [digits[9], digits[10]],
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cpf_check_digits_are_verified() {
        // Valid CPFs (generated with the check-digit rule).
        for good in [
            "529.982.247-25",
            "52998224725",
            " 111.444.777-35 ",
            "000.000.001-91",
        ] {
            assert!(parse_cpf(good).is_ok(), "{good}");
        }
        for bad in [
            "529.982.247-24",
            "529.982.247-52",
            "5299822472",
            "529982247255",
            "111.111.111-11",
            "000.000.000-00",
            "529.982.247-2a",
            "",
        ] {
            assert_eq!(parse_cpf(bad), Err(HolderError::BadCpf), "{bad}");
        }
    }

    #[test]
    fn names_are_tidied_and_need_two_words() {
        assert_eq!(
            normalize_name("  Maria   da  Silva ").unwrap(),
            "Maria da Silva"
        );
        assert_eq!(
            normalize_name("João D'Ávila-Neto").unwrap(),
            "João D'Ávila-Neto"
        );
        for bad in ["", "Maria", "Maria <b>", &"a ".repeat(70)] {
            assert_eq!(normalize_name(bad), Err(HolderError::BadName), "{bad}");
        }
    }

    #[test]
    fn the_digest_depends_on_the_key_and_keeps_no_digits() {
        let digits = parse_cpf("529.982.247-25").unwrap();
        let one = cpf_digest(&[1; 32], &digits);
        assert_ne!(one, cpf_digest(&[2; 32], &digits));
        assert_eq!(
            one,
            cpf_digest(&[1; 32], &parse_cpf("52998224725").unwrap())
        );
        let holder = holder(&[1; 32], "Maria Silva", "529.982.247-25").unwrap();
        assert_eq!(holder.masked_cpf(), "•••.•••.•••-25");
        let stored = postcard::to_stdvec(&holder).unwrap();
        assert!(
            !stored.windows(3).any(|w| w == b"529" || w == [5, 2, 9]),
            "no run of the CPF's digits is stored"
        );
    }
}
