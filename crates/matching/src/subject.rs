//! Building scorer subjects from typings, sharing one [`PositionInfo`] per distinct typing.

use std::sync::Arc;

use hla::{AlleleList, Expander, LocusTyping, TypingError};
use rustc_hash::FxHashMap;

use crate::model::Locus;
use crate::position::PositionInfo;
use crate::score::Subject;

pub struct SubjectBuilder {
    expander: Arc<Expander>,
    cache: FxHashMap<(usize, String), Arc<PositionInfo>>,
}

impl SubjectBuilder {
    pub fn new(expander: Arc<Expander>) -> SubjectBuilder {
        SubjectBuilder {
            expander,
            cache: FxHashMap::default(),
        }
    }

    pub fn expander(&self) -> &Arc<Expander> {
        &self.expander
    }

    pub fn position(
        &mut self,
        locus: Locus,
        list: &AlleleList,
    ) -> Result<Arc<PositionInfo>, TypingError> {
        let key = (locus.index(), list.to_string());
        if let Some(info) = self.cache.get(&key) {
            return Ok(info.clone());
        }
        let info = Arc::new(PositionInfo::new(&self.expander, list)?);
        self.cache.insert(key, info.clone());
        Ok(info)
    }

    /// The six loci of a subject from its locus typings. Loci outside the six (DRB3/4/5,
    /// DQA1, DPA1…) are validated but not scored.
    pub fn subject(&mut self, typings: &[LocusTyping]) -> Result<Subject, TypingError> {
        let expander = self.expander.clone();
        subject_from(&expander, typings, |locus, list| self.position(locus, list))
    }

    /// Parse and build a subject from a GL string.
    pub fn from_gl(&mut self, gl: &str) -> Result<Subject, TypingError> {
        let gl = self.expander.parse_gl(gl)?;
        self.subject(&hla::locus_typings(&gl)?)
    }
}

/// A subject from locus typings, each position from `position`; the loci outside the six
/// are expanded (validated) only.
pub(crate) fn subject_from(
    expander: &Expander,
    typings: &[LocusTyping],
    mut position: impl FnMut(Locus, &AlleleList) -> Result<Arc<PositionInfo>, TypingError>,
) -> Result<Subject, TypingError> {
    let mut subject: Subject = Default::default();
    for t in typings {
        match Locus::from_name(&t.locus) {
            Some(locus) => {
                let a = position(locus, &t.positions[0])?;
                let b = position(locus, &t.positions[1])?;
                subject[locus.index()] = Some([a, b]);
            }
            None => {
                expander.expand_list(&t.positions[0])?;
                expander.expand_list(&t.positions[1])?;
            }
        }
    }
    Ok(subject)
}
