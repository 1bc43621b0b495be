//! Errors are values: every typing error names the offending token and the reason.

use std::path::PathBuf;

/// A reference file (IMGT/HLA release, MAC dictionary, typing file) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Format {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

impl LoadError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LoadError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, line: usize, reason: impl Into<String>) -> Self {
        LoadError::Format {
            path: path.into(),
            line,
            reason: reason.into(),
        }
    }
}

/// A typing that cannot be read or expanded. `Clone` so memoised results can be shared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypingError {
    /// The text is not well-formed (GL syntax, a malformed name).
    #[error("malformed typing `{token}`: {reason}")]
    Syntax { token: String, reason: String },
    #[error("unknown locus `{locus}` in `{token}` (not in IMGT/HLA {release})")]
    UnknownLocus {
        token: String,
        locus: String,
        release: String,
    },
    /// A versioned GL string written against another release: names move between releases
    /// (renames, deletions, new G groups), so it is refused rather than read under this one.
    #[error(
        "`{token}` is written against IMGT/HLA {version}, but this registry reads IMGT/HLA {release}: retype it against {release}, or send it without the version to have it read as {release}"
    )]
    OtherRelease {
        token: String,
        version: String,
        release: String,
    },
    #[error("unknown allele `{token}`: no allele of that name in IMGT/HLA {release}")]
    UnknownAllele { token: String, release: String },
    #[error("allele `{token}` was deleted from IMGT/HLA ({reason}) and has no successor")]
    DeletedAllele { token: String, reason: String },
    #[error("unknown MAC code `{code}` in `{token}`: not in the MAC dictionary")]
    UnknownMac { token: String, code: String },
    #[error(
        "MAC `{token}` is empty in IMGT/HLA {release}: none of its alleles ({expansion}) exists"
    )]
    EmptyMac {
        token: String,
        expansion: String,
        release: String,
    },
    #[error("unknown group `{token}`: no such {kind} group in IMGT/HLA {release}")]
    UnknownGroup {
        token: String,
        kind: &'static str,
        release: String,
    },
    #[error(
        "unknown serological antigen `{token}`: no allele of IMGT/HLA {release} is assigned to it or its family"
    )]
    UnknownAntigen { token: String, release: String },
    #[error("`{token}` is of locus {found} where locus {expected} was expected")]
    WrongLocus {
        token: String,
        expected: String,
        found: String,
    },
    #[error("`{token}` needs a locus (write it as LOCUS*{token})")]
    MissingLocus { token: String },
}

impl TypingError {
    pub(crate) fn syntax(token: impl Into<String>, reason: impl Into<String>) -> Self {
        TypingError::Syntax {
            token: token.into(),
            reason: reason.into(),
        }
    }
}
