//! What the index loads read: the columns, a donor as read for the index, and the splitter
//! of stored GL strings into positions.

use hla::GlString;
use matching::{Abo, Cmv, CordCells, DonorType, Locus, Sex, Status};

use crate::Result;
use crate::model::Donor;

/// Donors that may be searchable: listed and not deleted. Age-out and deferral are checked
/// per donor ([`Registry::is_indexable`]), as they depend on the day.
pub(crate) const INDEX_COLUMNS: &str = "SELECT d.id, d.birth_date, d.sex, d.abo, d.rh, d.cmv, d.donor_type, d.status, d.station_code, d.population, \
     d.cord_tnc_e7, d.cord_cd34_e5, t.gl FROM donors d JOIN typings t ON t.donor_id = d.id AND t.is_current \
     WHERE d.listed AND d.status <> 'DE'";

/// Locus and two position texts per typed locus.
pub type PositionTexts = Vec<(Locus, [String; 2])>;

/// A donor read for the index, with its typing split into positions.
pub(crate) struct LoadedDonor {
    pub donor: Donor,
    pub positions: PositionTexts,
}

/// Splits stored GL strings into positions, learning each position text once: its locus
/// when it is a valid allele list printed canonically, `None` when it is not, `Some(None)`
/// when its locus is not one the index holds.
#[derive(Default)]
pub(crate) struct PositionSplitter {
    loci: hla::PositionCache<Option<Option<Locus>>>,
}

impl PositionSplitter {
    pub fn new() -> PositionSplitter {
        PositionSplitter::default()
    }

    /// The positions of a stored GL string: split on `^` and `+` when every piece has the
    /// common shape, else by the full parser (which also words any error).
    pub fn positions(&self, gl: &str) -> Result<PositionTexts> {
        if let Some(p) = self.split(gl) {
            return Ok(p);
        }
        full_positions(gl)
    }

    fn split(&self, gl: &str) -> Option<PositionTexts> {
        if gl
            .bytes()
            .any(|b| matches!(b, b'#' | b'|' | b'~') || !b.is_ascii_graphic())
        {
            return None;
        }
        let mut out: PositionTexts = Vec::with_capacity(6);
        for piece in gl.split('^') {
            let mut parts = piece.split('+');
            let first = parts.next()?;
            let second = parts.next().unwrap_or(first);
            if parts.next().is_some() {
                return None;
            }
            let locus = self.locus(first)?;
            if self.locus(second)? != locus {
                return None;
            }
            // Loci the index does not hold are left out, as by the full parser.
            if let Some(l) = locus {
                if out.iter().any(|(o, _)| *o == l) {
                    return None;
                }
                out.push((l, [first.to_string(), second.to_string()]));
            }
        }
        Some(out)
    }

    /// `None`: not a canonical allele list (the caller falls back); `Some(None)`: valid but
    /// of a locus the index does not hold.
    fn locus(&self, text: &str) -> Option<Option<Locus>> {
        if text.is_empty() {
            return None;
        }
        self.loci.get_or_compute(text, |text| {
            hla::gl::AlleleList::parse(text, None)
                .ok()
                .filter(|list| list.to_string() == text)
                .map(|list| Locus::from_name(list.locus()))
        })
    }
}

/// The general path: parse the whole GL string.
pub(crate) fn full_positions(gl: &str) -> Result<PositionTexts> {
    let gl = GlString::parse(gl)?;
    Ok(hla::locus_typings(&gl)?
        .iter()
        .filter_map(|t| {
            Locus::from_name(&t.locus)
                .map(|l| (l, [t.positions[0].to_string(), t.positions[1].to_string()]))
        })
        .collect())
}

/// Decode the packed attribute columns shared by both backends' index rows.
#[allow(clippy::too_many_arguments)]
pub(crate) fn index_donor(
    id: i64,
    birth_date: Option<String>,
    codes: [&str; 6],
    station: String,
    population: String,
    tnc: Option<f64>,
    cd34: Option<f64>,
    gl: Option<String>,
) -> Donor {
    let [sex, abo, rh, cmv, donor_type, status] = codes;
    let donor_type = DonorType::from_code(donor_type).unwrap_or_default();
    Donor {
        id,
        grid: String::new(),
        external_id: String::new(),
        station,
        birth_date,
        sex: Sex::from_code(sex).unwrap_or_default(),
        abo: Abo::from_code(abo).unwrap_or_default(),
        rh_positive: crate::model::rh_from_code(rh).flatten(),
        cmv: Cmv::from_code(cmv).unwrap_or_default(),
        population,
        donor_type,
        cord: (donor_type == DonorType::Cord).then(|| CordCells {
            tnc_e7: tnc.unwrap_or(0.0) as f32,
            cd34_e5: cd34.unwrap_or(0.0) as f32,
        }),
        status: Status::from_code(status).unwrap_or_default(),
        status_reason: None,
        status_until: None,
        reserved_for: None,
        listed: true,
        current_typing: gl,
        campaign_id: None,
        last_contact_on: None,
    }
}
