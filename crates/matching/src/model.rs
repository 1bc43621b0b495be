//! Donor attributes and the loci a search uses.

use std::fmt;
use std::str::FromStr;

/// The six loci a stem-cell search matches or scores, in column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Locus {
    A = 0,
    B = 1,
    C = 2,
    Drb1 = 3,
    Dqb1 = 4,
    Dpb1 = 5,
}

impl Locus {
    pub const ALL: [Locus; 6] = [
        Locus::A,
        Locus::B,
        Locus::C,
        Locus::Drb1,
        Locus::Dqb1,
        Locus::Dpb1,
    ];

    pub fn name(self) -> &'static str {
        hla::MATCH_LOCI[self as usize]
    }

    pub fn from_name(name: &str) -> Option<Locus> {
        Locus::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name))
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Locus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Locus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Locus::from_name(s)
            .ok_or_else(|| format!("unknown locus `{s}` (A, B, C, DRB1, DQB1, DPB1)"))
    }
}

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub enum $name { #[default] $($variant),* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn code(self) -> &'static str { match self { $($name::$variant => $code),* } }
            pub fn from_code(code: &str) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.code()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::from_code(s).ok_or_else(|| format!(concat!("unknown ", stringify!($name), " `{}` (one of: {})"), s,
                    $name::ALL.iter().map(|v| v.code()).collect::<Vec<_>>().join(", ")))
            }
        }
    };
}

code_enum!(
    /// Adult volunteer or cord blood unit.
    DonorType { Adult = "adult", Cord = "cord" }
);
code_enum!(
    /// Registry status (registry operations): AV available, TU temporarily unavailable,
    /// RS reserved for a patient, DE deferred or withdrawn.
    Status { Available = "AV", TemporarilyUnavailable = "TU", Reserved = "RS", Deferred = "DE" }
);
code_enum!(Sex { Unknown = "U", Male = "M", Female = "F" });
code_enum!(
    /// How finely a locus is typed (a search report's "typing resolution"), coarsest first:
    /// untyped; serology; an allele group, MAC, `XX` code or allele list (several P
    /// groups); one allele or one G/P group.
    Resolution { Untyped = "untyped", Serology = "serology", Group = "group", Allele = "allele" }
);
code_enum!(Abo { Unknown = "?", O = "O", A = "A", B = "B", Ab = "AB" });
code_enum!(Cmv { Unknown = "?", Negative = "neg", Positive = "pos" });

/// Cell counts of a cord blood unit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CordCells {
    /// Total nucleated cells, ×10^7.
    pub tnc_e7: f32,
    /// CD34+ cells, ×10^5.
    pub cd34_e5: f32,
}

/// What ranking and filtering need to know about a donor (never identity data).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DonorAttributes {
    pub donor_type: DonorType,
    pub status: Status,
    /// Days since 1900-01-01 (see [`days_from_civil`]); None when unknown.
    pub birth_day: Option<u16>,
    pub sex: Sex,
    pub abo: Abo,
    pub rh_positive: Option<bool>,
    pub cmv: Cmv,
    /// Registry or branch code (`CMDP-BJ`, …).
    pub registry: String,
    /// Population code (`API`, `EUR`, …) or empty.
    pub population: String,
    pub cord: Option<CordCells>,
}

/// Days since 1900-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year } as i64;
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 - EPOCH_1900_FROM_1970
}

/// 1900-01-01 counted from 1970-01-01.
const EPOCH_1900_FROM_1970: i64 = -25_567;

/// The day (since 1900-01-01, UTC) holding `secs` seconds after the Unix epoch.
pub fn day_of_unix_secs(secs: i64) -> i64 {
    secs.div_euclid(86_400) - EPOCH_1900_FROM_1970
}

/// (year, month, day) of a day count since 1900-01-01.
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + EPOCH_1900_FROM_1970 + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// Parse `YYYY-MM-DD` into days since 1900-01-01 (within u16: 1900–2079).
pub fn parse_birth_date(text: &str) -> Result<u16, String> {
    let bad = || format!("`{text}` is not a date YYYY-MM-DD");
    // Exactly ISO: dates are stored as text and compared as text, so `1995-3-5`,
    // `+1995-03-15` or a padded date would sort wrongly.
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return Err(bad());
    }
    let parts: Vec<&str> = text.split('-').collect();
    let y: i32 = parts[0].parse().map_err(|_| bad())?;
    let m: u32 = parts[1].parse().map_err(|_| bad())?;
    let d: u32 = parts[2].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || civil_from_days(days_from_civil(y, m, d)) != (y, m, d)
    {
        return Err(bad());
    }
    let days = days_from_civil(y, m, d);
    u16::try_from(days).map_err(|_| format!("`{text}` is outside 1900-01-01..2079-06-06"))
}

/// Format days since 1900-01-01 as `YYYY-MM-DD`.
pub fn format_day(days: u16) -> String {
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Whole years between a birth day and `today` (both days since 1900-01-01).
pub fn age_in_years(birth: u16, today: i64) -> u32 {
    let (by, bm, bd) = civil_from_days(birth as i64);
    let (ty, tm, td) = civil_from_days(today);
    let mut age = ty - by;
    if (tm, td) < (bm, bd) {
        age -= 1;
    }
    age.max(0) as u32
}
