//! `boai hla expand | reduce | validate`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use hla::input::SubjectReader;
use hla::{Expander, GlString, PositionKind, Reducer, Reduction, TypingError, locus_typings};
use serde_json::{Map, Value, json};

#[derive(Debug, Subcommand)]
pub enum HlaCommand {
    /// Expand typings to P-group keys; one JSON object per line (per locus position for
    /// GL strings with several positions). Reads one typing a line from stdin when none given.
    Expand { typings: Vec<String> },
    /// Reduce typings to G groups, P groups, two-field ARD (lgx), serology, or DPB1 TCE group.
    Reduce {
        #[arg(long, value_parser = clap::value_parser!(Reduction))]
        to: Reduction,
        /// Print to stderr how long reading and reducing took, the release already loaded
        /// (for comparing with libraries timed the same way).
        #[arg(long)]
        timings: bool,
        typings: Vec<String>,
    },
    /// Report every invalid typing of an `ID%GLSTRING` file (or Atlas-style TSV), with line numbers.
    Validate { file: PathBuf },
}

/// Typings from the arguments, or one a line from stdin.
fn inputs(args: Vec<String>) -> Result<Vec<String>> {
    if !args.is_empty() {
        return Ok(args);
    }
    let mut out = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if !line.trim().is_empty() {
            out.push(line.trim().to_string());
        }
    }
    Ok(out)
}

/// One JSON line per typing, written without building a JSON value (keys in the order a
/// `serde_json::Map` prints them); each distinct allele list is reduced once. Returns
/// whether any typing was invalid.
fn reduce(
    expander: &Expander,
    to: Reduction,
    typings: Vec<String>,
    out: &mut impl Write,
) -> Result<bool> {
    let mut reducer = Reducer::new(expander, to);
    let (release, to) = (expander.release().version.as_str(), to.to_string());
    let mut warnings = Vec::new();
    let mut failed = false;
    for typing in typings {
        warnings.clear();
        let pieces = match reducer.reduce_gl(&typing, &mut warnings) {
            Ok(pieces) => pieces,
            Err(e) => {
                failed = true;
                writeln!(out, "{}", error_line(&typing, &e))?;
                continue;
            }
        };
        // Reduced names come from the release (letters, digits, `*:/~+|^`): nothing in
        // them needs a JSON escape, so they are written as they are.
        out.write_all(b"{\"reduced\":\"")?;
        for piece in pieces {
            debug_assert!(!piece.contains(['"', '\\']) && !piece.contains(char::is_control));
            out.write_all(piece.as_bytes())?;
        }
        out.write_all(b"\",\"release\":")?;
        serde_json::to_writer(&mut *out, release)?;
        out.write_all(b",\"to\":")?;
        serde_json::to_writer(&mut *out, &to)?;
        out.write_all(b",\"typing\":")?;
        serde_json::to_writer(&mut *out, &typing)?;
        if !warnings.is_empty() {
            out.write_all(b",\"warnings\":")?;
            serde_json::to_writer(&mut *out, &warnings)?;
        }
        out.write_all(b"}\n")?;
    }
    Ok(failed)
}

fn error_line(typing: &str, error: &TypingError) -> Value {
    json!({"typing": typing, "error": error.to_string()})
}

/// Returns the process exit code: 0, or 1 when any input was invalid.
pub fn run(cmd: HlaCommand, expander: &Expander) -> Result<i32> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let release = expander.release();
    let mut failed = false;
    match cmd {
        HlaCommand::Expand { typings } => {
            for typing in inputs(typings)? {
                match expand_one(expander, &typing) {
                    Ok(lines) => {
                        for l in lines {
                            writeln!(out, "{l}")?;
                        }
                    }
                    Err(e) => {
                        failed = true;
                        writeln!(out, "{}", error_line(&typing, &e))?;
                    }
                }
            }
        }
        HlaCommand::Reduce {
            to,
            timings,
            typings,
        } => {
            let start = std::time::Instant::now();
            let typings = inputs(typings)?;
            let count = typings.len();
            failed = reduce(expander, to, typings, &mut out)?;
            out.flush()?;
            if timings {
                eprintln!(
                    "reduced {count} typings to {to} in {:.1} ms (reading and writing included)",
                    start.elapsed().as_secs_f64() * 1000.0
                );
            }
        }
        HlaCommand::Validate { file } => {
            let (mut read, mut invalid) = (0usize, 0usize);
            for record in SubjectReader::open(&file)? {
                read += 1;
                let record = match record {
                    Ok(r) => r,
                    Err(e) => {
                        invalid += 1;
                        writeln!(out, "{e}")?;
                        continue;
                    }
                };
                let result = record.locus_typings(expander.release()).and_then(|t| {
                    expander
                        .expand_typings(t)
                        .map_err(|error| hla::input::FieldError {
                            line: record.line,
                            field: "typing".into(),
                            error,
                        })
                });
                match result {
                    Ok(loci) => {
                        for l in loci {
                            for w in l.positions.iter().flat_map(|p| p.warnings.iter()) {
                                writeln!(
                                    out,
                                    "{}:{}: {}: warning: {w}",
                                    file.display(),
                                    record.line,
                                    record.id
                                )?;
                            }
                        }
                    }
                    Err(e) => {
                        invalid += 1;
                        writeln!(
                            out,
                            "{}:{}: {}: field {}: {}",
                            file.display(),
                            e.line,
                            record.id,
                            e.field,
                            e.error
                        )?;
                    }
                }
            }
            out.flush()?;
            eprintln!(
                "{read} records read, {invalid} invalid (IMGT/HLA {})",
                release.version
            );
            failed = invalid > 0;
        }
    }
    out.flush()?;
    Ok(i32::from(failed))
}

/// The JSON lines for one typing: one object, or one per locus position.
fn expand_one(expander: &Expander, typing: &str) -> Result<Vec<Value>, TypingError> {
    let gl = GlString::parse(typing)?;
    let release = expander.release();
    let describe = |set: &hla::PositionSet, text: String| {
        let mut obj = Map::new();
        obj.insert("typing".into(), json!(text));
        obj.insert("release".into(), json!(release.version));
        obj.insert("p_groups".into(), json!(set.p_key_names(release)));
        obj.insert("null".into(), json!(set.is_null()));
        if matches!(set.kind, PositionKind::New) {
            obj.insert("new".into(), json!(true));
        }
        if !set.warnings.is_empty() {
            obj.insert("warnings".into(), json!(set.warnings));
        }
        obj
    };
    if gl.is_single_list() {
        let list = &gl.loci[0].0[0].0[0].0[0];
        let set = expander.expand_list(list)?;
        return Ok(vec![Value::Object(describe(&set, typing.to_string()))]);
    }
    let mut lines = Vec::new();
    for locus in expander.expand_typings(locus_typings(&gl)?)? {
        for (i, set) in locus.positions.iter().enumerate() {
            let mut obj = describe(set, locus.typing.positions[i].to_string());
            obj.insert("locus".into(), json!(locus.typing.locus));
            obj.insert("position".into(), json!(i + 1));
            lines.push(Value::Object(obj));
        }
    }
    Ok(lines)
}
