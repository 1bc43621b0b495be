//! The frame every page shares (header, navigation by role, language switch, sign-out) and
//! the form fields, each with its label and a place for its error beside it.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use registry::people::Person;

use super::i18n::Lang;
use super::session::encode;

/// What the frame needs to know about the request.
pub struct View<'a> {
    pub lang: Lang,
    pub person: Option<&'a Person>,
    pub csrf: Option<&'a str>,
    /// This page's path and query (the language switch comes back here).
    pub here: &'a str,
}

/// The pages each role works in: (path, message key).
fn navigation(role: &str) -> &'static [(&'static str, &'static str)] {
    match role {
        "station" => &[
            ("/donors", "nav.donors"),
            ("/donors/new", "nav.enrol"),
            ("/samples", "nav.samples"),
        ],
        "coordinator" => &[
            ("/patients", "nav.patients"),
            ("/patients/new", "nav.new_patient"),
            ("/cases", "nav.cases"),
        ],
        "case_manager" => &[("/cases", "nav.cases"), ("/followups", "nav.followups")],
        "admin" => &[
            ("/reports/yearly", "nav.report"),
            ("/stations", "nav.stations"),
            ("/people", "nav.people"),
        ],
        "auditor" => &[("/audit", "nav.audit"), ("/reports/yearly", "nav.report")],
        _ => &[],
    }
}

/// The hidden CSRF field every form of a signed-in page carries.
pub fn csrf_field(view: &View) -> Markup {
    html! { @if let Some(token) = view.csrf { input type="hidden" name="csrf" value=(token); } }
}

/// A whole page.
pub fn page(view: &View, title: &str, body: Markup) -> Response {
    let lang = view.lang;
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t("app.name")) }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/app.js" defer {}
            }
            body {
                a.skip href="#main" { (lang.t("app.skip")) }
                header.top {
                    a.brand href="/" { (lang.t("app.name")) }
                    @if let Some(p) = view.person {
                        nav aria-label=(lang.t("nav.label")) {
                            ul {
                                @for (path, key) in navigation(&p.role) {
                                    li { a href=(path) { (lang.t(key)) } }
                                }
                            }
                        }
                    }
                    div.who {
                        span.langs {
                            @for other in Lang::ALL {
                                @if other == lang {
                                    span aria-current="true" { (other.own_name()) }
                                } @else {
                                    a href={ "/lang/" (other.code()) "?back=" (encode(view.here)) } lang=(other.code()) hreflang=(other.code()) { (other.own_name()) }
                                }
                            }
                        }
                        @if let Some(p) = view.person {
                            span.person { (p.name) " · " (lang.t(&format!("role.{}", p.role))) @if let Some(s) = &p.station { " · " (s) } }
                            form.inline method="post" action="/sign-out" {
                                (csrf_field(view))
                                button type="submit" { (lang.t("sign_out")) }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::response::Html(markup.into_string()),
    )
        .into_response()
}

/// A labelled input with room for its error beside it.
pub fn text_field(
    lang: Lang,
    name: &str,
    label_key: &str,
    value: &str,
    error: Option<&str>,
    kind: &str,
    required: bool,
) -> Markup {
    let error_id = format!("{name}-error");
    html! {
        div.field {
            label for=(name) { (lang.t(label_key)) @if required { span.required aria-hidden="true" { " *" } } }
            input id=(name) name=(name) type=(kind) value=(value) required[required]
                aria-invalid=[error.map(|_| "true")] aria-describedby=(error_id);
            span.field-error id=(error_id) role="status" { @if let Some(e) = error { (e) } }
        }
    }
}

/// A labelled choice among `options` (value, message key); `blank` offers "none".
pub fn select_field(
    lang: Lang,
    name: &str,
    label_key: &str,
    options: &[(String, String)],
    selected: &str,
    error: Option<&str>,
) -> Markup {
    let error_id = format!("{name}-error");
    html! {
        div.field {
            label for=(name) { (lang.t(label_key)) }
            select id=(name) name=(name) aria-describedby=(error_id) aria-invalid=[error.map(|_| "true")] {
                @for (value, text) in options {
                    option value=(value) selected[*value == selected] { (text) }
                }
            }
            span.field-error id=(error_id) role="status" { @if let Some(e) = error { (e) } }
        }
    }
}

/// Options from codes, each named by `prefix.code` in the catalogue.
pub fn coded_options(
    lang: Lang,
    prefix: &str,
    codes: &[&str],
    blank: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if blank {
        out.push((String::new(), lang.t("choice.none").to_string()));
    }
    out.extend(
        codes
            .iter()
            .map(|c| (c.to_string(), lang.t(&format!("{prefix}.{c}")).to_string())),
    );
    out
}

/// A notice after an action (from the `done` query parameter).
pub fn notice(lang: Lang, done: Option<&str>) -> Markup {
    // Only the catalogue's notices: the query cannot put words on the page.
    let key = done.map(|d| format!("done.{d}")).filter(|k| lang.has(k));
    html! { @if let Some(key) = key { p.notice role="status" { (lang.t(&key)) } } }
}

/// A JSON value as the text of a table cell.
pub fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "—".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(b) => if *b { "✓" } else { "✗" }.into(),
        other => other.to_string(),
    }
}

/// A table of JSON records: `columns` are (field, message key); the first column links to
/// `link(record)` when given.
pub fn table(
    lang: Lang,
    caption_key: &str,
    items: &[serde_json::Value],
    columns: &[(&str, &str)],
    link: Option<&dyn Fn(&serde_json::Value) -> String>,
) -> Markup {
    html! {
        @if items.is_empty() {
            p.empty { (lang.t("list.empty")) }
        } @else {
            div.scroll {
                table {
                    caption { (lang.t(caption_key)) }
                    thead { tr { @for (_, key) in columns { th scope="col" { (lang.t(key)) } } } }
                    tbody {
                        @for item in items {
                            tr {
                                @for (i, (field, _)) in columns.iter().enumerate() {
                                    td {
                                        @match (i, link) {
                                            (0, Some(link)) => a href=(link(item)) { (cell(&item[*field])) },
                                            _ => (cell(&item[*field])),
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// "Next page" for a cursor-paged list.
pub fn next_link(lang: Lang, base: &str, next_cursor: &serde_json::Value) -> Markup {
    html! {
        @if let Some(cursor) = next_cursor.as_str() {
            p { a href={ (base) (if base.contains('?') { "&" } else { "?" }) "cursor=" (encode(cursor)) } { (lang.t("list.next")) } }
        }
    }
}

/// Stored instants (fields `at` and `*_at`) in the registry's local time, for people to read.
pub fn local_times(clock: &registry::Clock, items: &mut [serde_json::Value]) {
    for item in items {
        if let Some(fields) = item.as_object_mut() {
            for (name, value) in fields.iter_mut() {
                if (name == "at" || name.ends_with("_at"))
                    && let Some(text) = value.as_str()
                {
                    *value = serde_json::Value::String(clock.local_time_text(text));
                }
            }
        }
    }
}
