//! GRID: Global Registration Identifier for Donors (registry operations §2): 4-digit ION,
//! 13-character registry donor id (`0-9A-Z`, zero-padded), 2-digit ISO/IEC 7064 MOD 37-2
//! checksum over the first 17 characters.

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    #[error("GRID `{0}` must be 19 characters (ION 4 + donor id 13 + checksum 2)")]
    Length(String),
    #[error("GRID `{0}`: the issuing organisation number must be 4 digits")]
    Ion(String),
    #[error("GRID `{0}`: the donor id may use only 0-9 and A-Z")]
    Character(String),
    #[error("GRID `{grid}`: checksum {found} should be {expected:02}")]
    Checksum {
        grid: String,
        found: String,
        expected: u32,
    },
    #[error("donor id `{0}` does not fit in 13 characters of 0-9A-Z")]
    DonorId(String),
}

/// The MOD 37-2 check value (0–36) of `text` (characters of the GRID alphabet).
pub fn mod37_2(text: &str) -> Option<u32> {
    let mut p: u32 = 0;
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())? as u32;
        p = ((p + v) * 2) % 37;
    }
    Some((38 - p) % 37)
}

/// Build a GRID from an ION and a registry donor id (zero-padded to 13).
pub fn make_grid(ion: u16, donor_id: &str) -> Result<String, GridError> {
    if donor_id.is_empty()
        || donor_id.len() > 13
        || !donor_id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return Err(GridError::DonorId(donor_id.to_string()));
    }
    let body = format!("{ion:04}{donor_id:0>13}");
    let check = mod37_2(&body).ok_or_else(|| GridError::DonorId(donor_id.to_string()))?;
    Ok(format!("{body}{check:02}"))
}

/// Validate a GRID given on input.
pub fn validate_grid(grid: &str) -> Result<(), GridError> {
    if grid.len() != 19 || !grid.is_ascii() {
        return Err(GridError::Length(grid.to_string()));
    }
    let (ion, rest) = grid.split_at(4);
    let (id, check) = rest.split_at(13);
    if !ion.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GridError::Ion(grid.to_string()));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return Err(GridError::Character(grid.to_string()));
    }
    let expected = mod37_2(&grid[..17]).ok_or_else(|| GridError::Character(grid.to_string()))?;
    if check.parse::<u32>().ok() != Some(expected) {
        return Err(GridError::Checksum {
            grid: grid.to_string(),
            found: check.to_string(),
            expected,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_test_vectors() {
        assert_eq!(mod37_2("6939DKM0013926127"), Some(26));
        assert_eq!(mod37_2("G123498654321"), Some(17));
        validate_grid("6939DKM001392612726").unwrap();
        assert!(matches!(
            validate_grid("6939DKM001392612725"),
            Err(GridError::Checksum { expected: 26, .. })
        ));
        assert!(validate_grid("6939DKM00139261272").is_err());
        assert!(validate_grid("69a9DKM001392612726").is_err());
        let g = make_grid(2197, "42").unwrap();
        assert_eq!(&g[..17], "21970000000000042");
        validate_grid(&g).unwrap();
    }
}
