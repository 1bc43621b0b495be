//! HML 1.0.1 (NMDP Histoimmunogenetics Markup Language), the format typing labs send: each
//! `sample` with its HLA `typing`s, read into GL strings with the path of the element each
//! came from, so a problem can be named where it is in the document.
//!
//! Only what a registry records is read: the sample's id and centre, each HLA typing's
//! allele assignment (a `glstring`, or `haploid` elements), its date and its typing methods.
//! Everything else (sequences, properties, elements of other namespaces) is passed over.
//! Elements may be in the HML 1.0.1 namespace or in none; a document in another namespace or
//! of another HML version is refused whole.

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

use crate::release::same_release;

/// The HML 1.0.1 namespace.
pub const HML_NAMESPACE: &str = "http://schemas.nmdp.org/spec/hml/1.0.1";

/// A problem at one place of the document: the element's path (`/hml/sample[2]/typing[1]`,
/// positions counted among siblings of the same name from 1; `/@name` for an attribute) and
/// the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmlError {
    pub path: String,
    pub reason: String,
}

/// The typing methods HML names (`sbt-sanger`, `sbt-ngs`, `sso`, `ssp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypingMethod {
    Sbt,
    Ngs,
    Sso,
    Ssp,
}

impl TypingMethod {
    pub fn code(self) -> &'static str {
        match self {
            TypingMethod::Sbt => "SBT",
            TypingMethod::Ngs => "NGS",
            TypingMethod::Sso => "SSO",
            TypingMethod::Ssp => "SSP",
        }
    }

    fn from_element(name: &str) -> Option<TypingMethod> {
        Some(match name {
            "sbt-sanger" => TypingMethod::Sbt,
            "sbt-ngs" => TypingMethod::Ngs,
            "sso" => TypingMethod::Sso,
            "ssp" => TypingMethod::Ssp,
            _ => return None,
        })
    }
}

/// One HLA typing of a sample, as a GL string (one or more loci).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmlTyping {
    /// The element the GL string came from (`glstring`, or the `allele-assignment` whose
    /// `haploid`s were read).
    pub path: String,
    pub gl: String,
    /// The typing's date (`allele-assignment/@date`, else `typing/@date`) and its path.
    pub date: Option<(String, String)>,
    pub methods: Vec<TypingMethod>,
}

/// One `sample` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmlSample {
    pub path: String,
    /// `@id`: the lab's sample id (a registry's sample barcode or a donor's GRID).
    pub id: String,
    pub center_code: Option<String>,
    pub typings: Vec<HmlTyping>,
    /// Problems inside this sample; a sample with any is not recorded.
    pub errors: Vec<HmlError>,
}

/// What a document holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HmlDocument {
    /// `hmlid/@root` and `@extension`, joined by `:`.
    pub hmlid: Option<String>,
    pub reporting_center: Option<String>,
    pub samples: Vec<HmlSample>,
    /// Problems outside any sample.
    pub errors: Vec<HmlError>,
}

struct Frame {
    name: String,
    path: String,
    /// Children seen so far, by name, for the next child's position.
    children: Vec<(String, usize)>,
    /// In the HML namespace (or none): the elements this reader understands.
    hml: bool,
}

impl Frame {
    fn child_path(&mut self, name: &str) -> String {
        let n = match self.children.iter_mut().find(|(c, _)| c == name) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.children.push((name.to_string(), 1));
                1
            }
        };
        format!("{}/{name}[{n}]", self.path)
    }
}

#[derive(Default)]
struct Assignment {
    path: String,
    version: Option<(String, String)>,
    db: Option<(String, String)>,
    date: Option<(String, String)>,
    glstrings: Vec<(String, String)>,
    haploids: Vec<Haploid>,
    errors: Vec<HmlError>,
}

struct Haploid {
    path: String,
    locus: Option<String>,
    method: Option<String>,
    kind: Option<String>,
}

struct Typing {
    path: String,
    hla: bool,
    date: Option<(String, String)>,
    assignments: Vec<Assignment>,
    methods: Vec<TypingMethod>,
}

/// Read an HML document against the release `release` (the version an allele assignment
/// must name, if it names one). A document that is not well-formed XML, or not HML 1.0.1,
/// is an `Err` naming where reading stopped; everything else is reported per element.
pub fn read_hml(text: &str, release: &str) -> Result<HmlDocument, HmlError> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut doc = HmlDocument::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root_seen = false;
    let mut sample: Option<HmlSample> = None;
    let mut typing: Option<Typing> = None;
    let mut assignment: Option<Assignment> = None;
    // The glstring being read: its path and text so far.
    let mut gl_text: Option<(String, String)> = None;
    let fatal = |stack: &[Frame], reader: &NsReader<&[u8]>, reason: String| {
        let at = match reader.error_position() {
            0 => reader.buffer_position(),
            at => at,
        };
        let offset = (at as usize).min(text.len());
        let line = text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        HmlError {
            path: stack.last().map_or("/".to_string(), |f| f.path.clone()),
            reason: format!("line {line}: {reason}"),
        }
    };
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (namespace_kind(&ns), event),
            Err(e) => return Err(fatal(&stack, &reader, format!("not well-formed XML: {e}"))),
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let local = e.local_name().as_ref().to_string();
                let hml = match &ns {
                    Namespace::Hml | Namespace::None => stack.last().is_none_or(|f| f.hml),
                    Namespace::Other(_) => false,
                };
                let path = match stack.last_mut() {
                    Some(parent) => parent.child_path(&local),
                    None => {
                        if root_seen {
                            return Err(fatal(&stack, &reader, "a second root element".into()));
                        }
                        root_seen = true;
                        check_root(e, &local, &ns).map_err(|r| fatal(&stack, &reader, r))?;
                        format!("/{local}")
                    }
                };
                if hml {
                    let parent = stack.last().map(|f| f.name.as_str());
                    let grand = stack.len().checked_sub(2).map(|i| stack[i].name.as_str());
                    open_element(
                        &local,
                        parent,
                        grand,
                        e,
                        &path,
                        &mut doc,
                        &mut sample,
                        &mut typing,
                        &mut assignment,
                        &mut gl_text,
                    );
                }
                let frame = Frame {
                    name: local,
                    path,
                    children: Vec::new(),
                    hml,
                };
                if empty {
                    close_element(
                        &frame,
                        &mut doc,
                        &mut sample,
                        &mut typing,
                        &mut assignment,
                        &mut gl_text,
                        release,
                    );
                } else {
                    stack.push(frame);
                }
            }
            Event::End(_) => {
                let frame = stack.pop().expect("the reader checks end names");
                close_element(
                    &frame,
                    &mut doc,
                    &mut sample,
                    &mut typing,
                    &mut assignment,
                    &mut gl_text,
                    release,
                );
            }
            Event::Text(t) => {
                let text = t.xml_content(XmlVersion::Implicit1_0);
                if stack.is_empty() && !text.trim().is_empty() {
                    return Err(fatal(
                        &stack,
                        &reader,
                        "not well-formed XML: text outside the root element".into(),
                    ));
                }
                if let Some((_, gl)) = gl_text.as_mut() {
                    gl.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some((_, gl)) = gl_text.as_mut() {
                    gl.push_str(&t.xml_content(XmlVersion::Implicit1_0));
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(
                        &r.xml_content(XmlVersion::Implicit1_0),
                    )
                    .map(str::to_string),
                    Err(_) => None,
                };
                let Some(resolved) = resolved else {
                    return Err(fatal(
                        &stack,
                        &reader,
                        format!(
                            "unknown entity &{};",
                            r.xml_content(XmlVersion::Implicit1_0)
                        ),
                    ));
                };
                if let Some((_, gl)) = gl_text.as_mut() {
                    gl.push_str(&resolved);
                }
            }
            Event::Eof => {
                if let Some(open) = stack.last() {
                    return Err(fatal(
                        &stack,
                        &reader,
                        format!(
                            "not well-formed XML: the document ends inside <{}>",
                            open.name
                        ),
                    ));
                }
                break;
            }
            _ => {}
        }
    }
    if !root_seen {
        return Err(HmlError {
            path: "/".into(),
            reason: "no root element: this is not an HML document".into(),
        });
    }
    Ok(doc)
}

enum Namespace {
    Hml,
    None,
    Other(String),
}

fn namespace_kind(ns: &ResolveResult<'_>) -> Namespace {
    match ns {
        ResolveResult::Bound(n) if n.0 == HML_NAMESPACE => Namespace::Hml,
        ResolveResult::Bound(n) => Namespace::Other(n.0.to_string()),
        ResolveResult::Unbound => Namespace::None,
        ResolveResult::Unknown(p) => Namespace::Other(format!("undeclared prefix {p}")),
    }
}

fn check_root(e: &BytesStart<'_>, local: &str, ns: &Namespace) -> Result<(), String> {
    if let Namespace::Other(other) = ns {
        return Err(format!(
            "the root element is in namespace {other}, not HML 1.0.1's ({HML_NAMESPACE})"
        ));
    }
    if local != "hml" {
        return Err(format!("the root element is <{local}>, not <hml>"));
    }
    if let Some(version) = attr(e, "version")
        && version != "1.0.1"
    {
        return Err(format!(
            "HML version {version}: this reader reads HML 1.0.1"
        ));
    }
    Ok(())
}

/// An attribute's value (entities resolved, white space trimmed); `None` when absent or
/// empty.
fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name && a.key.prefix().is_none())
        .and_then(|a| {
            let v = a
                .normalized_value(XmlVersion::Implicit1_0)
                .ok()?
                .trim()
                .to_string();
            (!v.is_empty()).then_some(v)
        })
}

fn attr_at(e: &BytesStart<'_>, name: &str, path: &str) -> Option<(String, String)> {
    attr(e, name).map(|v| (v, format!("{path}/@{name}")))
}

#[allow(clippy::too_many_arguments)]
fn open_element(
    local: &str,
    parent: Option<&str>,
    grand: Option<&str>,
    e: &BytesStart<'_>,
    path: &str,
    doc: &mut HmlDocument,
    sample: &mut Option<HmlSample>,
    typing: &mut Option<Typing>,
    assignment: &mut Option<Assignment>,
    gl_text: &mut Option<(String, String)>,
) {
    match (parent, local) {
        (Some("hml"), "hmlid") => {
            doc.hmlid = match (attr(e, "root"), attr(e, "extension")) {
                (Some(r), Some(x)) => Some(format!("{r}:{x}")),
                (r, x) => r.or(x),
            }
        }
        (Some("hml"), "reporting-center") => doc.reporting_center = attr(e, "reporting-center-id"),
        (Some("hml"), "sample") => {
            let mut s = HmlSample {
                path: path.to_string(),
                id: attr(e, "id").unwrap_or_default(),
                center_code: attr(e, "center-code"),
                typings: Vec::new(),
                errors: Vec::new(),
            };
            if s.id.is_empty() {
                s.errors.push(HmlError {
                    path: format!("{path}/@id"),
                    reason: "a sample needs its id".into(),
                });
            }
            *sample = Some(s);
        }
        (Some("sample"), "typing") if sample.is_some() => {
            let hla = attr(e, "gene-family").is_none_or(|f| f.eq_ignore_ascii_case("HLA"));
            *typing = Some(Typing {
                path: path.to_string(),
                hla,
                date: attr_at(e, "date", path),
                assignments: Vec::new(),
                methods: Vec::new(),
            });
        }
        (Some("typing"), "allele-assignment") if typing.is_some() => {
            *assignment = Some(Assignment {
                path: path.to_string(),
                version: attr_at(e, "allele-version", path),
                db: attr_at(e, "allele-db", path),
                date: attr_at(e, "date", path),
                ..Assignment::default()
            });
        }
        (Some("allele-assignment"), "glstring") if assignment.is_some() => {
            if let Some(uri) = attr(e, "uri") {
                if let Some(a) = assignment.as_mut() {
                    a.errors.push(HmlError {
                        path: path.to_string(),
                        reason: format!("a GL string given by reference ({uri}) is not fetched; send the GL string itself"),
                    });
                }
            } else {
                *gl_text = Some((path.to_string(), String::new()));
            }
        }
        (Some("allele-assignment"), "haploid") => {
            if let Some(a) = assignment.as_mut() {
                a.haploids.push(Haploid {
                    path: path.to_string(),
                    locus: attr(e, "locus"),
                    method: attr(e, "method"),
                    kind: attr(e, "type"),
                });
            }
        }
        (Some(_), method) if grand == Some("typing") && parent == Some("typing-method") => {
            if let (Some(m), Some(t)) = (TypingMethod::from_element(method), typing.as_mut())
                && !t.methods.contains(&m)
            {
                t.methods.push(m);
            }
        }
        _ => {}
    }
}

fn close_element(
    frame: &Frame,
    doc: &mut HmlDocument,
    sample: &mut Option<HmlSample>,
    typing: &mut Option<Typing>,
    assignment: &mut Option<Assignment>,
    gl_text: &mut Option<(String, String)>,
    release: &str,
) {
    if !frame.hml {
        return;
    }
    match frame.name.as_str() {
        "glstring" => {
            if let (Some((path, text)), Some(a)) = (gl_text.take(), assignment.as_mut())
                && path == frame.path
            {
                let text = text.trim();
                if text.is_empty() {
                    a.errors.push(HmlError {
                        path,
                        reason: "the GL string is empty".into(),
                    });
                } else {
                    a.glstrings.push((path, text.to_string()));
                }
            }
        }
        "allele-assignment" => {
            if let (Some(a), Some(t)) = (assignment.take(), typing.as_mut())
                && a.path == frame.path
            {
                t.assignments.push(a);
            }
        }
        "typing" => {
            if let (Some(t), Some(s)) = (typing.take(), sample.as_mut())
                && t.path == frame.path
                && t.hla
            {
                match finish_typing(t, release) {
                    Ok(typing) => s.typings.push(typing),
                    Err(errors) => s.errors.extend(errors),
                }
            }
        }
        "sample" => {
            if let Some(mut s) = sample.take()
                && s.path == frame.path
            {
                if s.typings.is_empty() && s.errors.is_empty() {
                    s.errors.push(HmlError {
                        path: s.path.clone(),
                        reason: "the sample has no HLA typing".into(),
                    });
                }
                doc.samples.push(s);
            }
        }
        _ => {}
    }
}

/// One typing's GL string: from the one allele assignment made against `release` (or
/// naming none).
fn finish_typing(t: Typing, release: &str) -> Result<HmlTyping, Vec<HmlError>> {
    if t.assignments.is_empty() {
        return Err(vec![HmlError {
            path: t.path,
            reason: "the typing has no allele-assignment".into(),
        }]);
    }
    let (ours, others): (Vec<Assignment>, Vec<Assignment>) =
        t.assignments.into_iter().partition(|a| {
            a.version
                .as_ref()
                .is_none_or(|(v, _)| same_release(v, release))
        });
    let mut ours = ours.into_iter();
    let Some(a) = ours.next() else {
        return Err(others
            .into_iter()
            .filter_map(|a| a.version)
            .map(|(v, path)| HmlError {
                path,
                reason: format!("names IMGT/HLA {v}; this registry reads {release}"),
            })
            .collect());
    };
    if let Some(second) = ours.next() {
        return Err(vec![HmlError {
            path: second.path,
            reason: format!("a second allele assignment against IMGT/HLA {release} in one typing"),
        }]);
    }
    let mut errors = a.errors;
    if let Some((db, path)) = &a.db
        && !db.eq_ignore_ascii_case("IMGT/HLA")
        && !db.eq_ignore_ascii_case("IMGT-HLA")
    {
        errors.push(HmlError {
            path: path.clone(),
            reason: format!("allele database {db}: only IMGT/HLA names are read"),
        });
    }
    let gl = match (a.glstrings.len(), a.haploids.is_empty()) {
        (1, true) => Some((a.glstrings[0].0.clone(), a.glstrings[0].1.clone())),
        (0, false) => haploids_gl(&a.haploids, &mut errors).map(|gl| (a.path.clone(), gl)),
        (0, true) => {
            if errors.is_empty() {
                errors.push(HmlError {
                    path: a.path.clone(),
                    reason: "the allele assignment has no glstring or haploid".into(),
                });
            }
            None
        }
        _ => {
            errors.push(HmlError {
                path: a.path.clone(),
                reason: "give one glstring, or haploids, in an allele assignment; not several"
                    .into(),
            });
            None
        }
    };
    match gl {
        Some((path, gl)) if errors.is_empty() => Ok(HmlTyping {
            path,
            gl,
            date: a.date.or(t.date),
            methods: t.methods,
        }),
        _ => Err(errors),
    }
}

/// `haploid` elements as a GL string: two per locus (`HLA-A` + `01:01` → `HLA-A*01:01`; a
/// serological `type` → `A1`, `Cw1`, `DR4`, `DQ2`, `DP1`).
fn haploids_gl(haploids: &[Haploid], errors: &mut Vec<HmlError>) -> Option<String> {
    let mut loci: Vec<(String, Vec<String>, String)> = Vec::new();
    let before = errors.len();
    for h in haploids {
        let (Some(locus), Some(kind)) = (&h.locus, &h.kind) else {
            errors.push(HmlError {
                path: h.path.clone(),
                reason: "a haploid needs its locus and type".into(),
            });
            continue;
        };
        let bare = locus.strip_prefix("HLA-").unwrap_or(locus);
        let name = match h.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("SER") => {
                let prefix = match bare {
                    "C" => "Cw",
                    "DRB1" => "DR",
                    "DQB1" => "DQ",
                    "DPB1" => "DP",
                    other => other,
                };
                format!("{prefix}{kind}")
            }
            None | Some("DNA") => format!("HLA-{bare}*{kind}"),
            Some(other) => {
                // Still counted at its locus, so the count says nothing more.
                errors.push(HmlError {
                    path: format!("{}/@method", h.path),
                    reason: format!("haploid method {other}: DNA or SER"),
                });
                String::new()
            }
        };
        match loci.iter_mut().find(|(l, _, _)| l == bare) {
            Some((_, names, _)) => names.push(name),
            None => loci.push((bare.to_string(), vec![name], h.path.clone())),
        }
    }
    for (locus, names, first) in &loci {
        if names.len() != 2 {
            errors.push(HmlError {
                path: first.clone(),
                reason: format!(
                    "{} haploid(s) at HLA-{locus}: give both copies (the same twice for a homozygous typing)",
                    names.len()
                ),
            });
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(
        loci.iter()
            .map(|(_, names, _)| names.join("+"))
            .collect::<Vec<_>>()
            .join("^"),
    )
}
