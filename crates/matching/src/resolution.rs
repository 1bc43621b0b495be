//! How finely a donor is typed, per locus (a search report's "typing resolution"), read
//! from the positions the index already holds.

use crate::index::{DonorIndex, Row};
use crate::model::{Locus, Resolution};
use crate::position::PositionInfo;

/// One position's resolution: serology; one allele or one G/P group (after the null rule);
/// otherwise a group (MAC, XX, allele group or list, `NEW`).
fn position_resolution(p: &PositionInfo) -> Resolution {
    if p.serology_typed {
        Resolution::Serology
    } else if !p.is_new() && (p.single_allele() || p.single_p_key()) {
        Resolution::Allele
    } else {
        Resolution::Group
    }
}

impl DonorIndex {
    /// How finely the donor is typed at each of `loci`: per locus the coarser of its two
    /// positions (an untyped position makes the locus untyped).
    pub fn resolutions(&self, row: Row, loci: &[Locus]) -> Vec<Resolution> {
        let ids = self.position_ids(row);
        loci.iter()
            .map(|&locus| {
                ids[locus.index()]
                    .iter()
                    .map(|&id| {
                        self.position_info(locus, id)
                            .map_or(Resolution::Untyped, |p| position_resolution(p))
                    })
                    .min()
                    .unwrap_or_default()
            })
            .collect()
    }
}
