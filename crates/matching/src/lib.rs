//! The in-memory donor index and the `rayon`-parallel search, scoring and ranking
//! (`../shared/docs/hla-matching.md`, sections 3–6 and 8). Pure computation: no database,
//! no HTTP.

pub mod hit;
pub mod index;
pub mod model;
pub mod position;
mod prefetch;
pub mod probability;
pub mod rank;
mod resolution;
pub mod score;
pub mod search;
pub mod snapshot;
pub mod subject;

pub use hit::{CordResult, SearchHit, SearchResult};
pub use index::{DonorIndex, DonorInput, IndexError, RankFacts, Row};
pub use model::{Abo, Cmv, CordCells, DonorAttributes, DonorType, Locus, Resolution, Sex, Status};
pub use position::PositionInfo;
pub use probability::{HaplotypeSet, MatchProbability};
pub use rank::{DefaultPolicy, ProbabilityWithinGrade, RankingContext, RankingPolicy};
pub use score::{Confidence, Grade, LocusScore, PairScore, Subject, TceMatch};
pub use search::{ProbabilityOptions, SearchError, SearchRequest};
pub use snapshot::SnapshotError;
pub use subject::SubjectBuilder;
