//! HLA nomenclature for Boai: IPD-IMGT/HLA release files, allele names, MACs, XX codes,
//! serology, G and P groups and GL strings; expansion of a typing to its set of P-group keys
//! (`../shared/docs/hla-matching.md`, sections 1–3 and 5).
//!
//! Pure: no IO beyond reading the files it is pointed at, no async.

pub mod error;
pub mod expand;
pub mod genotype;
pub mod gl;
pub mod hml;
pub mod input;
pub mod mac;
pub mod position_cache;
pub mod reduce;
pub mod release;
pub mod token;

pub use error::{LoadError, TypingError};
pub use expand::{Alternatives, Expander, PSet, PositionKind, PositionSet};
pub use genotype::{LocusExpansion, LocusTyping, locus_typings};
pub use gl::{AlleleList, GlString};
pub use mac::{Mac, MacDictionary};
pub use position_cache::PositionCache;
pub use reduce::{Reduced, Reducer, Reduction};
pub use release::{Allele, AlleleId, LocusId, PKeyId, Release, TceGroup};
pub use token::{SerologyLocus, Token};

/// The loci a stem-cell search matches or scores.
pub const MATCH_LOCI: [&str; 6] = ["A", "B", "C", "DRB1", "DQB1", "DPB1"];
