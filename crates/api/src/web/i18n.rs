//! Languages: zh-CN and English. Every word a page shows comes from a message catalogue
//! (`messages/*.toml`, compiled in); the language is the `boai_lang` cookie's when the person
//! chose one, else the best of the browser's `Accept-Language`, else Chinese (the registry's
//! own language).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::OnceLock;

use axum::extract::FromRequestParts;
use axum::http::header::{ACCEPT_LANGUAGE, COOKIE};
use axum::http::request::Parts;

pub const LANG_COOKIE: &str = "boai_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    ZhCn,
    En,
}

const CATALOGUES: [(Lang, &str); 2] = [
    (Lang::ZhCn, include_str!("messages/zh-CN.toml")),
    (Lang::En, include_str!("messages/en.toml")),
];

type Catalogue = HashMap<String, String>;

fn catalogue(lang: Lang) -> &'static Catalogue {
    static LOADED: OnceLock<Vec<(Lang, Catalogue)>> = OnceLock::new();
    let all = LOADED.get_or_init(|| {
        CATALOGUES
            .iter()
            .map(|(l, text)| {
                let table: toml::Table = text.parse().expect("message catalogues are valid TOML");
                let map = table
                    .into_iter()
                    .map(|(k, v)| (k, v.as_str().expect("messages are strings").to_string()))
                    .collect();
                (*l, map)
            })
            .collect()
    });
    &all.iter()
        .find(|(l, _)| *l == lang)
        .expect("every language has a catalogue")
        .1
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::ZhCn, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Lang::ZhCn => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "zh-CN" => Some(Lang::ZhCn),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language's own name, for the switch.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::ZhCn => "中文",
            Lang::En => "English",
        }
    }

    /// The message `key`; a mark if a catalogue lacks it (a test keeps both catalogues
    /// full; keys built from request input, such as a notice's, are checked with `has`).
    pub fn t(self, key: &str) -> &'static str {
        match catalogue(self).get(key) {
            Some(text) => text.as_str(),
            None => {
                tracing::warn!(
                    key,
                    lang = self.code(),
                    "message missing from the catalogue"
                );
                "…"
            }
        }
    }

    /// Whether the catalogue has `key`.
    pub fn has(self, key: &str) -> bool {
        catalogue(self).contains_key(key)
    }

    /// The message `key` with `{name}` placeholders filled.
    pub fn tf(self, key: &str, args: &[(&str, &str)]) -> String {
        let mut text = self.t(key).to_string();
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// The best language of an `Accept-Language` header (by q-value, then order).
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut bits = part.trim().split(';');
            let tag = bits.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = bits
                .find_map(|b| {
                    b.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let lang = if tag == "zh" || tag.starts_with("zh-") {
                Lang::ZhCn
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l)
    }
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Lang, Infallible> {
        Ok(cookie(parts, LANG_COOKIE)
            .and_then(Lang::from_code)
            .or_else(|| {
                parts
                    .headers
                    .get(ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Lang::from_accept_language)
            })
            .unwrap_or(Lang::ZhCn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogues_have_the_same_keys_and_no_empty_text() {
        let zh = catalogue(Lang::ZhCn);
        let en = catalogue(Lang::En);
        let mut missing: Vec<_> = zh.keys().filter(|k| !en.contains_key(*k)).collect();
        missing.extend(en.keys().filter(|k| !zh.contains_key(*k)));
        assert!(
            missing.is_empty(),
            "keys in one catalogue only: {missing:?}"
        );
        for (k, v) in zh.iter().chain(en.iter()) {
            assert!(!v.trim().is_empty(), "empty message {k}");
        }
    }

    #[test]
    fn accept_language_picks_the_best_known_language() {
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Some(Lang::En));
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Some(Lang::ZhCn)
        );
        assert_eq!(
            Lang::from_accept_language("fr;q=1, en;q=0.2, zh-TW;q=0.5"),
            Some(Lang::ZhCn)
        );
        assert_eq!(Lang::from_accept_language("fr, de"), None);
        assert_eq!(
            Lang::from_accept_language("en;q=0, zh;q=0.1"),
            Some(Lang::ZhCn)
        );
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;

    /// Every `group.key` string literal of the pages' code, and every key built from the
    /// registry's code lists, is in both catalogues.
    #[test]
    fn every_message_the_pages_use_is_catalogued() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for literal in text.split('"').skip(1).step_by(2) {
                    let mut parts = literal.split('.');
                    let group = parts.next().unwrap_or("");
                    let rest: Vec<&str> = parts.collect();
                    let word = |s: &str| {
                        !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    };
                    if rest.len() == 1
                        && word(group)
                        && word(rest[0])
                        && !["style", "app", "results"].contains(&group)
                    {
                        keys.push(literal.to_string());
                    }
                }
            }
        }
        let lists: [(&str, &[&str]); 13] = [
            ("resolution", &["untyped", "serology", "group", "allele"]),
            ("role", &registry::tokens::ROLES),
            ("scope", &registry::CONSENT_SCOPES),
            ("kind", &registry::REQUEST_KINDS),
            ("request_state", &registry::REQUEST_STATES),
            ("milestone", &registry::MILESTONES),
            ("sample_state", &registry::samples::SAMPLE_STATES),
            ("channel", &registry::CONTACT_CHANNELS),
            ("outcome", &registry::CONTACT_OUTCOMES),
            ("status", &["AV", "TU", "RS", "DE"]),
            ("sex", &["M", "F", "U"]),
            ("abo", &["?", "O", "A", "B", "AB"]),
            ("cmv", &["?", "neg", "pos"]),
        ];
        for (group, codes) in lists {
            keys.extend(codes.iter().map(|c| format!("{group}.{c}")));
        }
        for lang in Lang::ALL {
            let missing: Vec<&String> = keys
                .iter()
                .filter(|k| !catalogue(lang).contains_key(*k))
                .collect();
            assert!(missing.is_empty(), "{}: missing {missing:?}", lang.code());
        }
    }
}
