//! National ids as the registry stores and compares them.
//!
//! Clerks type ids with stray spaces, lower-case `x` and full-width digits from Chinese
//! input methods; those are one person, so an id is normalised before it is stored or
//! compared: Unicode NFKC (full-width to ASCII), every white-space character removed, upper
//! case. An id that then looks like an 18-character resident identity number (17 digits and
//! a digit or `X`) must carry a valid GB 11643-1999 check character; other shapes (passports,
//! Hong Kong, Macao and Taiwan permits, 15-digit legacy numbers) are kept as normalised.

use unicode_normalization::UnicodeNormalization;

use crate::{RegistryError, Result};

/// Longest id kept (after normalisation).
pub const NATIONAL_ID_MAX: usize = 40;

/// The weights of GB 11643-1999's ISO 7064 MOD 11-2 check, for positions 1–17.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// The check character for each remainder mod 11.
const CHECK: &[u8; 11] = b"10X98765432";

/// `raw` normalised, or an error naming `field`.
pub fn normalise_national_id(field: &str, raw: &str) -> Result<String> {
    let id: String = raw
        .nfkc()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect();
    if id.is_empty() {
        return Err(RegistryError::invalid(field, "must not be blank"));
    }
    if id.chars().count() > NATIONAL_ID_MAX {
        return Err(RegistryError::invalid(
            field,
            format!("at most {NATIONAL_ID_MAX} characters"),
        ));
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(RegistryError::invalid(
            field,
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    if looks_like_resident_id(&id) {
        let expected = resident_id_check(&id);
        let given = id.as_bytes()[17];
        if given != expected {
            return Err(RegistryError::invalid(
                field,
                format!(
                    "not a valid resident identity number: its check character is `{}`, the first 17 digits give `{}`",
                    given as char, expected as char
                ),
            ));
        }
    }
    Ok(id)
}

/// A resident identity number from its first 17 digits, with its GB 11643 check
/// character (for synthetic data and tests).
pub fn resident_id_with_check(first17: &str) -> Option<String> {
    let b = first17.as_bytes();
    (b.len() == 17 && b.iter().all(u8::is_ascii_digit)).then(|| {
        format!(
            "{first17}{}",
            resident_id_check(&format!("{first17}0")) as char
        )
    })
}

fn looks_like_resident_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 18
        && b[..17].iter().all(u8::is_ascii_digit)
        && (b[17].is_ascii_digit() || b[17] == b'X')
}

/// The check character of an 18-character resident identity number's first 17 digits.
fn resident_id_check(id: &str) -> u8 {
    let sum: u32 = id.as_bytes()[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_case_and_full_width_digits_are_one_id() {
        // 11010519491231002X is GB 11643's own example.
        let plain = normalise_national_id("national_id", "11010519491231002X").unwrap();
        assert_eq!(plain, "11010519491231002X");
        for variant in [
            " 11010519491231002X ",
            "110105 19491231 002x",
            "１１０１０５１９４９１２３１００２Ｘ",
            "110105\u{3000}19491231002X",
        ] {
            assert_eq!(
                normalise_national_id("n", variant).unwrap(),
                plain,
                "{variant:?}"
            );
        }
    }

    #[test]
    fn a_resident_id_with_a_wrong_check_character_is_refused() {
        let e = normalise_national_id("identity.national_id", "110105194912310021").unwrap_err();
        let RegistryError::Invalid { field, reason } = e else {
            panic!("not invalid")
        };
        assert_eq!(field, "identity.national_id");
        assert!(reason.contains("`X`"), "{reason}");
        // Other shapes are not checked: a passport number and a 15-digit legacy number.
        assert_eq!(normalise_national_id("n", "e1234567").unwrap(), "E1234567");
        assert_eq!(
            normalise_national_id("n", "110105491231002").unwrap(),
            "110105491231002"
        );
    }

    #[test]
    fn blank_long_and_control_characters_are_refused() {
        assert!(normalise_national_id("n", " \u{3000} ").is_err());
        assert!(normalise_national_id("n", &"9".repeat(41)).is_err());
        assert!(normalise_national_id("n", "AB\u{7}12").is_err());
    }
}
