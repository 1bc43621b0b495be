//! The typed model of one typing element as labs send it: allele names, MACs, XX codes,
//! G and P group names, serological antigens and `NEW`.

use std::fmt;

use crate::error::TypingError;

/// The serological locus names in use (`Cw` is printed for C, as labs write it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SerologyLocus {
    A,
    B,
    C,
    Dr,
    Dq,
    Dp,
}

impl SerologyLocus {
    pub fn prefix(self) -> &'static str {
        match self {
            SerologyLocus::A => "A",
            SerologyLocus::B => "B",
            SerologyLocus::C => "Cw",
            SerologyLocus::Dr => "DR",
            SerologyLocus::Dq => "DQ",
            SerologyLocus::Dp => "DP",
        }
    }

    /// The serological locus whose antigens an allele of `locus` carries.
    pub fn of_molecular(locus: &str) -> Option<Self> {
        Some(match locus {
            "A" => SerologyLocus::A,
            "B" => SerologyLocus::B,
            "C" => SerologyLocus::C,
            "DRB1" | "DRB3" | "DRB4" | "DRB5" => SerologyLocus::Dr,
            "DQB1" => SerologyLocus::Dq,
            "DPB1" => SerologyLocus::Dp,
            _ => return None,
        })
    }

    /// Locus labels of `rel_ser_ser.txt` (`A`, `B`, `Cw`, `DR`, `DQ`; `Dw` is cellular, ignored).
    pub fn from_label(label: &str) -> Option<Self> {
        Some(match label {
            "A" => SerologyLocus::A,
            "B" | "Bw" => SerologyLocus::B,
            "C" | "Cw" => SerologyLocus::C,
            "DR" => SerologyLocus::Dr,
            "DQ" => SerologyLocus::Dq,
            "DP" | "DPw" => SerologyLocus::Dp,
            _ => return None,
        })
    }

    /// The gene a serological antigen of this locus is encoded by. DR51/52/53 are the
    /// DRB5/DRB3/DRB4 antigens; every other DR antigen is DRB1.
    pub fn molecular_locus(self, antigen: &str) -> &'static str {
        match self {
            SerologyLocus::A => "A",
            SerologyLocus::B => "B",
            SerologyLocus::C => "C",
            SerologyLocus::Dr => match antigen {
                "51" => "DRB5",
                "52" => "DRB3",
                "53" => "DRB4",
                _ => "DRB1",
            },
            SerologyLocus::Dq => "DQB1",
            SerologyLocus::Dp => "DPB1",
        }
    }
}

/// One element of an allele list: what a lab reports for one gene copy (or one alternative).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Token {
    /// `A*02:01:01:01`, `A*02:01`, `A*02`, `A*01:01:01:02N`: 1–4 decimal fields and an
    /// optional expression suffix.
    Allele {
        locus: String,
        fields: Vec<String>,
        suffix: Option<char>,
    },
    /// `A*02:AB` (generic) or `A*25:BYHR` (allele-specific): an NMDP multiple allele code.
    Mac {
        locus: String,
        group: String,
        code: String,
    },
    /// `A*02:XX`: every allele of the allele group.
    Xx { locus: String, group: String },
    /// `A*01:01:01G`.
    GGroup { locus: String, fields: Vec<String> },
    /// `A*01:01P`.
    PGroup { locus: String, fields: Vec<String> },
    /// `A2`, `Cw3`, `DR4`, `B5102`.
    Serology {
        locus: SerologyLocus,
        antigen: String,
    },
    /// `A*NEW`: typed but not assigned; a potential match with anything.
    New { locus: String },
}

const EXPRESSION_SUFFIXES: &[char] = &['N', 'L', 'S', 'Q', 'C', 'A'];

fn is_locus_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl Token {
    /// The molecular locus this token belongs to (`DRB1` for `DR4`).
    pub fn locus(&self) -> &str {
        match self {
            Token::Allele { locus, .. }
            | Token::Mac { locus, .. }
            | Token::Xx { locus, .. }
            | Token::GGroup { locus, .. }
            | Token::PGroup { locus, .. }
            | Token::New { locus } => locus,
            Token::Serology { locus, antigen } => locus.molecular_locus(antigen),
        }
    }

    /// The first field (allele group) of a molecular token, used by the short list form
    /// `*01:01/02`.
    fn first_field(&self) -> Option<&str> {
        match self {
            Token::Allele { fields, .. }
            | Token::GGroup { fields, .. }
            | Token::PGroup { fields, .. } => fields.first().map(String::as_str),
            Token::Mac { group, .. } | Token::Xx { group, .. } => Some(group),
            _ => None,
        }
    }

    /// Parse one token. `HLA-` is optional. `locus` supplies the locus where the text
    /// omits it (`*02:01`, `02:01`, serology `24`, `NEW` in a per-locus column).
    pub fn parse(text: &str, locus: Option<&str>) -> Result<Token, TypingError> {
        let body = text.strip_prefix("HLA-").unwrap_or(text);
        if body.is_empty() {
            return Err(TypingError::syntax(text, "empty typing"));
        }
        if let Some(star) = body.find('*') {
            let (loc, rest) = (&body[..star], &body[star + 1..]);
            let loc = if loc.is_empty() {
                locus.ok_or_else(|| TypingError::MissingLocus {
                    token: text.to_string(),
                })?
            } else {
                loc
            };
            if !is_locus_name(loc) {
                return Err(TypingError::syntax(
                    text,
                    format!("`{loc}` is not a locus name"),
                ));
            }
            return Self::parse_molecular(text, loc, rest);
        }
        if body == "NEW" {
            return match locus {
                Some(l) => Ok(Token::New {
                    locus: l.to_string(),
                }),
                None => Err(TypingError::MissingLocus {
                    token: text.to_string(),
                }),
            };
        }
        // Bare digits in a per-locus context: serology (`24` in an A column), or
        // a molecular name without locus (`02:01`).
        if let Some(l) = locus
            && body.starts_with(|c: char| c.is_ascii_digit())
        {
            if is_digits(body) {
                let ser = SerologyLocus::of_molecular(l).ok_or_else(|| {
                    TypingError::syntax(text, format!("locus {l} has no serological antigens"))
                })?;
                return Self::serology(text, ser, body);
            }
            return Self::parse_molecular(text, l, body);
        }
        Self::parse_serology(text, body)
    }

    fn serology(text: &str, locus: SerologyLocus, number: &str) -> Result<Token, TypingError> {
        if !is_digits(number) {
            return Err(TypingError::syntax(
                text,
                "a serological antigen is a locus and a number (A2, Cw3, DR4)",
            ));
        }
        let antigen = number.trim_start_matches('0');
        if antigen.is_empty() {
            return Err(TypingError::syntax(text, "antigen number 0 does not exist"));
        }
        Ok(Token::Serology {
            locus,
            antigen: antigen.to_string(),
        })
    }

    fn parse_serology(text: &str, body: &str) -> Result<Token, TypingError> {
        let split = body.find(|c: char| c.is_ascii_digit()).ok_or_else(|| {
            TypingError::syntax(
                text,
                "not an allele name (LOCUS*FIELDS), a MAC, an XX code or a serological antigen",
            )
        })?;
        let (label, number) = body.split_at(split);
        if label == "Bw" && (number == "4" || number == "6") {
            return Err(TypingError::syntax(
                text,
                "Bw4 and Bw6 are public epitopes shared by many B (and some A) antigens, not an antigen of one locus",
            ));
        }
        let locus = SerologyLocus::from_label(label).ok_or_else(|| {
            TypingError::syntax(
                text,
                format!("`{label}` is not a serological locus (A, B, Cw, DR, DQ, DP)"),
            )
        })?;
        Self::serology(text, locus, number)
    }

    fn parse_molecular(text: &str, locus: &str, rest: &str) -> Result<Token, TypingError> {
        let locus_owned = locus.to_string();
        if rest == "NEW" {
            return Ok(Token::New { locus: locus_owned });
        }
        if rest.is_empty() {
            return Err(TypingError::syntax(text, "nothing after the locus"));
        }
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(TypingError::syntax(text, "empty field"));
        }
        let last = *parts.last().expect("split yields at least one part");
        // MAC or XX: F1:LETTERS.
        if parts.len() == 2 && last.bytes().all(|b| b.is_ascii_uppercase()) {
            let group = parts[0];
            if !is_digits(group) {
                return Err(TypingError::syntax(
                    text,
                    "the allele group before a MAC or XX must be a number",
                ));
            }
            if last == "XX" {
                return Ok(Token::Xx {
                    locus: locus_owned,
                    group: group.to_string(),
                });
            }
            if last.len() < 2 || last.len() > 5 {
                return Err(TypingError::syntax(text, "a MAC code has 2 to 5 letters"));
            }
            return Ok(Token::Mac {
                locus: locus_owned,
                group: group.to_string(),
                code: last.to_string(),
            });
        }
        if parts.len() > 4 {
            return Err(TypingError::syntax(
                text,
                "an allele name has at most four fields",
            ));
        }
        let mut fields: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
        let last_field = fields.last_mut().expect("at least one field");
        let mut suffix = None;
        if let Some(c) = last_field.chars().last()
            && c.is_ascii_alphabetic()
        {
            last_field.pop();
            suffix = Some(c);
        }
        for f in &fields {
            if !is_digits(f) {
                return Err(TypingError::syntax(
                    text,
                    format!("field `{f}` is not a number"),
                ));
            }
        }
        match suffix {
            Some('G') => Ok(Token::GGroup {
                locus: locus_owned,
                fields,
            }),
            Some('P') => Ok(Token::PGroup {
                locus: locus_owned,
                fields,
            }),
            Some(c) if EXPRESSION_SUFFIXES.contains(&c) => Ok(Token::Allele {
                locus: locus_owned,
                fields,
                suffix: Some(c),
            }),
            Some(c) => Err(TypingError::syntax(
                text,
                format!(
                    "`{c}` is not an expression suffix (N, L, S, Q, C, A) or group suffix (G, P)"
                ),
            )),
            None => Ok(Token::Allele {
                locus: locus_owned,
                fields,
                suffix: None,
            }),
        }
    }

    /// Parse an allele list (`/`), accepting the short form `*01:01/02` and `A*01:01/02:05`
    /// (elements without a locus take the previous element's locus, and without a colon
    /// also its allele group).
    pub fn parse_list(text: &str, locus: Option<&str>) -> Result<Vec<Token>, TypingError> {
        let mut out: Vec<Token> = Vec::new();
        for part in text.split('/') {
            if part.is_empty() {
                return Err(TypingError::syntax(text, "empty element in allele list"));
            }
            let token = match out.last() {
                Some(prev) if part.starts_with(|c: char| c.is_ascii_digit()) => {
                    let prev_locus = prev.locus().to_string();
                    if part.contains(':') {
                        Token::parse_molecular(part, &prev_locus, part)?
                    } else if let Some(group) = prev.first_field() {
                        let full = format!("{group}:{part}");
                        Token::parse_molecular(part, &prev_locus, &full)?
                    } else {
                        Token::parse(part, Some(&prev_locus))?
                    }
                }
                _ => Token::parse(part, locus)?,
            };
            out.push(token);
        }
        Ok(out)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Allele {
                locus,
                fields,
                suffix,
            } => {
                write!(f, "{locus}*{}", fields.join(":"))?;
                if let Some(s) = suffix {
                    write!(f, "{s}")?;
                }
                Ok(())
            }
            Token::Mac { locus, group, code } => write!(f, "{locus}*{group}:{code}"),
            Token::Xx { locus, group } => write!(f, "{locus}*{group}:XX"),
            Token::GGroup { locus, fields } => write!(f, "{locus}*{}G", fields.join(":")),
            Token::PGroup { locus, fields } => write!(f, "{locus}*{}P", fields.join(":")),
            Token::Serology { locus, antigen } => write!(f, "{}{antigen}", locus.prefix()),
            Token::New { locus } => write!(f, "{locus}*NEW"),
        }
    }
}
