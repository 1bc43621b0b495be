//! Station clerks' pages: enrol a donor (HLA fields checked against the release as they are
//! typed, and again when posted), the station's donors and samples, and a donor's page with
//! its typings, samples, consents and contact attempts. Case managers open a donor's page
//! from a case, and read its identity after giving a reason.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{Api, ApiFailure};
use super::i18n::Lang;
use super::layout::{
    View, coded_options, csrf_field, local_times, next_link, notice, page, select_field, table,
    text_field,
};
use super::session::{Posted, Signed, encode};
use super::{FormData, PageError, PageResult};
use crate::AppState;

/// The loci a clerk types at enrolment, two fields each.
pub const ENROL_LOCI: [&str; 5] = ["A", "B", "C", "DRB1", "DQB1"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/donors", get(list).post(enrol))
        .route("/donors/new", get(enrol_form))
        .route("/donors/{id}", get(show))
        .route("/donors/{id}/samples", post(record_sample))
        .route("/donors/{id}/typings", post(record_typing))
        .route("/donors/{id}/consents", post(record_consent))
        .route("/donors/{id}/contacts", post(record_contact))
        .route("/donors/{id}/identity", post(read_identity))
        .route("/samples", get(samples))
        .route("/samples/{id}/state", post(sample_state))
        .route("/hla-check", get(hla_check))
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    listed: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
}

fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", encode(v)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

async fn list(
    signed: Signed,
    axum::Extension(api): axum::Extension<Api>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let lang = signed.lang;
    let station = signed.caller.station.as_deref();
    let uri = format!(
        "/v1/donors{}",
        query_string(&[
            ("station", station),
            ("status", q.status.as_deref()),
            ("listed", q.listed.as_deref()),
            ("cursor", q.cursor.as_deref()),
            ("limit", Some("50")),
        ])
    );
    let found = api.read(&signed, &uri).await?;
    let items = found["items"].as_array().cloned().unwrap_or_default();
    let statuses = coded_options(lang, "status", &["AV", "TU", "RS", "DE"], true);
    let listed = coded_options(lang, "listed", &["true", "false"], true);
    let base = format!(
        "/donors{}",
        query_string(&[
            ("status", q.status.as_deref()),
            ("listed", q.listed.as_deref())
        ])
    );
    let view = signed.view();
    let body = html! {
        (notice(lang, q.done.as_deref()))
        form.filters method="get" action="/donors" {
            (select_field(lang, "status", "donor.status", &statuses, q.status.as_deref().unwrap_or(""), None))
            (select_field(lang, "listed", "donor.listed", &listed, q.listed.as_deref().unwrap_or(""), None))
            button type="submit" { (lang.t("list.filter")) }
        }
        (table(lang, "donors.caption", &items, &[
            ("grid", "donor.grid"), ("external_id", "donor.external_id"), ("status", "donor.status"),
            ("listed", "donor.listed"), ("birth_date", "donor.birth_date"), ("sex", "donor.sex"),
            ("campaign_id", "donor.campaign"), ("last_contact_on", "donor.last_contact_on"),
        ], Some(&|d: &Value| format!("/donors/{}", d["id"]))))
        (next_link(lang, &base, &found["next_cursor"]))
    };
    Ok(page(&view, lang.t("donors.title"), body))
}

/// What the enrolment form holds, and the errors beside its fields.
#[derive(Default)]
struct EnrolForm {
    values: Vec<(String, String)>,
    errors: Vec<(String, String)>,
    general: Option<String>,
}

impl EnrolForm {
    fn value(&self, name: &str) -> &str {
        self.values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
    fn error(&self, name: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn enrol_form(signed: Signed, axum::Extension(api): axum::Extension<Api>) -> PageResult {
    render_enrol(&signed, &api, &EnrolForm::default(), StatusCode::OK).await
}

async fn render_enrol(
    signed: &Signed,
    api: &Api,
    form: &EnrolForm,
    status: StatusCode,
) -> PageResult {
    let lang = signed.lang;
    if signed.caller.station.is_none() {
        return Err(PageError::new(
            lang,
            StatusCode::FORBIDDEN,
            lang.t("error.forbidden"),
        ));
    }
    // The station's campaigns, to say where the donor came from.
    let campaigns = api
        .call(
            &signed.caller,
            Method::GET,
            &format!(
                "/v1/campaigns?station={}",
                encode(signed.caller.station.as_deref().unwrap_or(""))
            ),
            None,
        )
        .await
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default();
    let mut campaign_options = vec![(String::new(), lang.t("choice.none").to_string())];
    campaign_options.extend(campaigns.iter().map(|c| {
        (
            c["id"].to_string(),
            format!(
                "{} ({})",
                super::layout::cell(&c["name"]),
                super::layout::cell(&c["held_on"])
            ),
        )
    }));
    let f = |name: &str, key: &str, kind: &str, required: bool| {
        text_field(
            lang,
            name,
            key,
            form.value(name),
            form.error(name),
            kind,
            required,
        )
    };
    let view = signed.view();
    let body = html! {
        @if let Some(g) = &form.general { p.error role="alert" id="form-error" { (g) } }
        form.wide method="post" action="/donors" novalidate {
            (csrf_field(&view))
            fieldset {
                legend { (lang.t("enrol.donor")) }
                (f("external_id", "donor.external_id", "text", true))
                (f("birth_date", "donor.birth_date", "date", true))
                (select_field(lang, "sex", "donor.sex", &coded_options(lang, "sex", &["M", "F", "U"], false), form.value("sex"), form.error("sex")))
                (select_field(lang, "abo", "donor.abo", &coded_options(lang, "abo", &["?", "O", "A", "B", "AB"], false), form.value("abo"), form.error("abo")))
                (select_field(lang, "rh", "donor.rh", &coded_options(lang, "rh", &["+", "-"], true), form.value("rh"), form.error("rh")))
                (select_field(lang, "cmv", "donor.cmv", &coded_options(lang, "cmv", &["?", "neg", "pos"], false), form.value("cmv"), form.error("cmv")))
                (f("population", "donor.population", "text", false))
                (select_field(lang, "campaign_id", "donor.campaign", &campaign_options, form.value("campaign_id"), form.error("campaign_id")))
            }
            fieldset {
                legend { (lang.t("enrol.identity")) }
                (f("family_name", "identity.family_name", "text", true))
                (f("given_name", "identity.given_name", "text", true))
                (f("national_id", "identity.national_id", "text", false))
                (f("phone", "identity.phone", "tel", false))
                (f("email", "identity.email", "email", false))
                (f("address", "identity.address", "text", false))
            }
            fieldset.hla {
                legend { (lang.t("enrol.hla")) }
                p.hint id="hla-hint" { (lang.t("enrol.hla_hint")) }
                @if let Some(e) = form.error("typing") { p.field-error role="alert" id="typing-error" { (e) } }
                div.hla-grid {
                    @for locus in ENROL_LOCI {
                        @for n in 1..=2 {
                            @let name = format!("hla_{locus}_{n}");
                            @let error_id = format!("{name}-error");
                            div.field {
                                label for=(name) { "HLA-" (locus) " (" (n) ")" }
                                input id=(name) name=(name) type="text" value=(form.value(&name))
                                    data-hla-locus=(locus) autocomplete="off" spellcheck="false"
                                    aria-invalid=[form.error(&name).map(|_| "true")]
                                    aria-describedby={ (error_id) " hla-hint" };
                                span.field-error id=(error_id) role="status" { @if let Some(e) = form.error(&name) { (e) } }
                            }
                        }
                    }
                }
            }
            fieldset {
                legend { (lang.t("enrol.consent")) }
                (f("consent_form_version", "consent.form_version", "text", false))
            }
            button type="submit" { (lang.t("enrol.submit")) }
        }
    };
    let mut response = page(&view, lang.t("enrol.title"), body);
    *response.status_mut() = status;
    Ok(response)
}

/// One HLA field: the typing as a GL position of `locus` (`HLA-A*02:01`), or why not.
/// `02:01` and `A*02:01` are read as `HLA-A*02:01`; the offending token is named.
pub fn check_position(
    state: &AppState,
    lang: Lang,
    locus: &str,
    text: &str,
) -> Result<String, String> {
    let text = text.trim();
    let full = if text.starts_with("HLA-") {
        text.to_string()
    } else if text.contains('*') {
        format!("HLA-{text}")
    } else {
        format!("HLA-{locus}*{text}")
    };
    if full.contains(['^', '+', '~', '|']) {
        return Err(lang.tf("hla.one_typing", &[("token", text)]));
    }
    let gl = hla::GlString::parse(&full).map_err(|e| e.to_string())?;
    let loci = hla::locus_typings(&gl).map_err(|e| e.to_string())?;
    let expander = state.registry.expander();
    for l in &loci {
        if l.locus != locus {
            return Err(lang.tf("hla.wrong_locus", &[("token", text), ("locus", locus)]));
        }
        for p in &l.positions {
            expander.expand_list(p).map_err(|e| e.to_string())?;
        }
    }
    Ok(full)
}

#[derive(Deserialize)]
pub struct HlaCheckQuery {
    locus: String,
    value: String,
}

/// The live check behind the enrolment form's HLA fields (the script asks as the clerk types).
async fn hla_check(
    signed: Signed,
    State(state): State<AppState>,
    Query(q): Query<HlaCheckQuery>,
) -> Response {
    if q.value.trim().is_empty() {
        return Json(json!({"ok": true, "message": ""})).into_response();
    }
    if !ENROL_LOCI.contains(&q.locus.as_str()) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"ok": false, "message": "locus"})),
        )
            .into_response();
    }
    match check_position(&state, signed.lang, &q.locus, &q.value) {
        Ok(full) => Json(json!({"ok": true, "message": "", "typing": full})).into_response(),
        Err(reason) => Json(json!({"ok": false, "message": reason})).into_response(),
    }
}

/// The GL string of the form's HLA fields, or the fields' errors.
fn typing_of(
    state: &AppState,
    lang: Lang,
    form: &FormData,
) -> (Option<String>, Vec<(String, String)>) {
    let mut errors = Vec::new();
    let mut loci = Vec::new();
    for locus in ENROL_LOCI {
        let names = [format!("hla_{locus}_1"), format!("hla_{locus}_2")];
        let values = [form.get(&names[0]), form.get(&names[1])];
        let mut pair = Vec::new();
        for (name, value) in names.iter().zip(values) {
            match value.map(|v| check_position(state, lang, locus, v)) {
                Some(Ok(full)) => pair.push(full),
                Some(Err(reason)) => errors.push((name.clone(), reason)),
                None => {}
            }
        }
        // One copy alone reads as homozygous, as everywhere else in the registry.
        if !pair.is_empty() {
            loci.push(pair.join("+"));
        }
    }
    let gl = (!loci.is_empty()).then(|| loci.join("^"));
    (gl, errors)
}

/// Which form field an API refusal's field is.
fn form_field(api_field: &str) -> &str {
    api_field.strip_prefix("identity.").unwrap_or(api_field)
}

async fn enrol(
    State(state): State<AppState>,
    axum::Extension(api): axum::Extension<Api>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let lang = signed.lang;
    let (typing, errors) = typing_of(&state, lang, &form);
    let mut shown = EnrolForm {
        values: form
            .0
            .iter()
            .filter(|(k, _)| k != "csrf")
            .cloned()
            .collect(),
        errors,
        general: None,
    };
    if !shown.errors.is_empty() {
        shown.general = Some(lang.t("enrol.fix_errors").into());
        return render_enrol(&signed, &api, &shown, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let campaign_id = match form.get("campaign_id").map(str::parse::<i64>) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            shown
                .errors
                .push(("campaign_id".into(), lang.t("error.number").into()));
            return render_enrol(&signed, &api, &shown, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let body = json!({
        "external_id": form.text("external_id"),
        "station": signed.caller.station,
        "birth_date": form.text("birth_date"),
        "sex": form.get("sex"),
        "abo": form.get("abo"),
        "rh": form.get("rh"),
        "cmv": form.get("cmv"),
        "population": form.text("population"),
        "identity": {
            "family_name": form.text("family_name"),
            "given_name": form.text("given_name"),
            "national_id": form.get("national_id"),
            "phone": form.get("phone"),
            "email": form.get("email"),
            "address": form.get("address"),
        },
        "consent_form_version": form.get("consent_form_version"),
        "typing": typing,
        "campaign_id": campaign_id,
    });
    match api
        .call(&signed.caller, Method::POST, "/v1/donors", Some(&body))
        .await
    {
        Ok(donor) => {
            Ok(Redirect::to(&format!("/donors/{}?done=enrolled", donor["id"])).into_response())
        }
        Err(failure)
            if failure.status.is_client_error() && failure.status != StatusCode::FORBIDDEN =>
        {
            shown.errors = failure
                .errors
                .iter()
                .map(|(f, r)| (form_field(f).to_string(), r.clone()))
                .collect();
            shown.general = Some(failure.detail.clone());
            render_enrol(&signed, &api, &shown, failure.status).await
        }
        Err(failure) => Err(PageError::from_api(lang, failure)),
    }
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

async fn show(
    signed: Signed,
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    donor_page(&signed, &api, id, q.done.as_deref(), None).await
}

async fn donor_page(
    signed: &Signed,
    api: &Api,
    id: i64,
    done: Option<&str>,
    failure: Option<&ApiFailure>,
) -> PageResult {
    let lang = signed.lang;
    let caller = &signed.caller;
    let donor = api
        .call(caller, Method::GET, &format!("/v1/donors/{id}"), None)
        .await
        .map_err(|e| PageError::from_api(lang, e))?;
    let is_station = signed.session.person.role == "station";
    // Consents, contacts and identity: the donor's station and case managers (the API's
    // rule); the forms are shown only to them.
    let records = is_station || signed.session.person.role == "case_manager";
    let get = |path: String| async move {
        api.call(caller, Method::GET, &path, None)
            .await
            .unwrap_or(Value::Null)
    };
    let typings = get(format!("/v1/donors/{id}/typings")).await;
    let consents = get(format!("/v1/donors/{id}/consents")).await;
    let samples = get(format!("/v1/donors/{id}/samples")).await;
    let contacts = get(format!("/v1/donors/{id}/contacts")).await;
    let list = |v: &Value, key: &str| {
        let mut items = v[key].as_array().cloned().unwrap_or_default();
        local_times(&signed.clock, &mut items);
        items
    };
    let today = signed.today.clone();
    let view = signed.view();
    let consent_scopes: Vec<&str> = if is_station {
        registry::CONSENT_SCOPES.to_vec()
    } else {
        registry::CASE_CONSENT_SCOPES.to_vec()
    };
    let body = html! {
        (notice(lang, done))
        @if let Some(f) = failure { p.error role="alert" id="form-error" { (f.detail) } }
        dl.facts {
            @for (field, key) in [("grid", "donor.grid"), ("external_id", "donor.external_id"), ("station", "donor.station"),
                ("status", "donor.status"), ("status_reason", "donor.status_reason"), ("listed", "donor.listed"),
                ("birth_date", "donor.birth_date"), ("sex", "donor.sex"), ("abo", "donor.abo"), ("cmv", "donor.cmv"),
                ("campaign_id", "donor.campaign"), ("last_contact_on", "donor.last_contact_on"), ("typing", "donor.typing")] {
                dt { (lang.t(key)) } dd { (super::layout::cell(&donor[field])) }
            }
        }
        section aria-labelledby="typings-h" {
            h2 id="typings-h" { (lang.t("donor.typings")) }
            (table(lang, "donor.typings", &list(&typings, "typings"), &[("typed_on", "typing.typed_on"), ("gl", "typing.gl"), ("lab", "typing.lab"), ("method", "typing.method")], None))
            @if is_station {
                form method="post" action={ "/donors/" (id) "/typings" } {
                    (csrf_field(&view))
                    (text_field(lang, "gl", "typing.gl", "", None, "text", true))
                    (text_field(lang, "lab", "typing.lab", "", None, "text", false))
                    (text_field(lang, "typed_on", "typing.typed_on", &today, None, "date", false))
                    button type="submit" { (lang.t("typing.submit")) }
                }
            }
        }
        section aria-labelledby="consents-h" {
            h2 id="consents-h" { (lang.t("donor.consents")) }
            (table(lang, "donor.consents", &list(&consents, "consents"), &[("scope", "consent.scope"), ("form_version", "consent.form_version"), ("given_at", "consent.given_at"), ("withdrawn_at", "consent.withdrawn_at")], None))
            @if records {
                form method="post" action={ "/donors/" (id) "/consents" } {
                    (csrf_field(&view))
                    (select_field(lang, "scope", "consent.scope", &coded_options(lang, "scope", &consent_scopes, false), "", None))
                    (text_field(lang, "form_version", "consent.form_version", "", None, "text", true))
                    button type="submit" { (lang.t("consent.submit")) }
                }
            }
        }
        section aria-labelledby="samples-h" {
            h2 id="samples-h" { (lang.t("donor.samples")) }
            (table(lang, "donor.samples", &list(&samples, "samples"), &[("barcode", "sample.barcode"), ("collected_on", "sample.collected_on"), ("state", "sample.state"), ("lab", "sample.lab")], None))
            @if is_station {
                form method="post" action={ "/donors/" (id) "/samples" } {
                    (csrf_field(&view))
                    (text_field(lang, "barcode", "sample.barcode", "", None, "text", true))
                    (text_field(lang, "collected_on", "sample.collected_on", &today, None, "date", true))
                    (text_field(lang, "volume_ml", "sample.volume_ml", "", None, "number", false))
                    button type="submit" { (lang.t("sample.submit")) }
                }
            }
        }
        section aria-labelledby="contacts-h" {
            h2 id="contacts-h" { (lang.t("donor.contacts")) }
            (table(lang, "donor.contacts", &list(&contacts, "attempts"), &[("attempted_on", "contact.attempted_on"), ("channel", "contact.channel"), ("outcome", "contact.outcome")], None))
            @if records {
                form method="post" action={ "/donors/" (id) "/contacts" } {
                    (csrf_field(&view))
                    (text_field(lang, "attempted_on", "contact.attempted_on", &today, None, "date", true))
                    (select_field(lang, "channel", "contact.channel", &coded_options(lang, "channel", &registry::CONTACT_CHANNELS, false), "", None))
                    (select_field(lang, "outcome", "contact.outcome", &coded_options(lang, "outcome", &registry::CONTACT_OUTCOMES, false), "", None))
                    button type="submit" { (lang.t("contact.submit")) }
                }
            }
        }
        @if records { (identity_form(lang, &view, id)) }
    };
    Ok(page(
        &view,
        &lang.tf(
            "donor.title",
            &[("grid", &super::layout::cell(&donor["grid"]))],
        ),
        body,
    ))
}

fn identity_form(lang: Lang, view: &View, id: i64) -> Markup {
    html! {
        section aria-labelledby="identity-h" {
            h2 id="identity-h" { (lang.t("identity.title")) }
            p { (lang.t("identity.hint")) }
            form method="post" action={ "/donors/" (id) "/identity" } {
                (csrf_field(view))
                (text_field(lang, "reason", "identity.reason", "", None, "text", true))
                button type="submit" { (lang.t("identity.submit")) }
            }
        }
    }
}

/// Post `body` to the donor's `what` and come back to the donor's page.
async fn donor_action(
    signed: Signed,
    api: Api,
    id: i64,
    what: &str,
    done: &str,
    body: Value,
) -> PageResult {
    match api
        .call(
            &signed.caller,
            Method::POST,
            &format!("/v1/donors/{id}/{what}"),
            Some(&body),
        )
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/donors/{id}?done={done}")).into_response()),
        Err(f)
            if f.status.is_client_error()
                && f.status != StatusCode::FORBIDDEN
                && f.status != StatusCode::NOT_FOUND =>
        {
            let mut response = donor_page(&signed, &api, id, None, Some(&f)).await?;
            *response.status_mut() = f.status;
            Ok(response)
        }
        Err(f) => Err(PageError::from_api(signed.lang, f)),
    }
}

fn number(lang: Lang, form: &FormData, name: &str) -> Result<Option<f64>, PageError> {
    form.get(name)
        .map(|v| v.parse::<f64>())
        .transpose()
        .map_err(|_| {
            PageError::new(
                lang,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{name}: {}", lang.t("error.number")),
            )
        })
}

async fn record_sample(
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let volume = number(signed.lang, &form, "volume_ml")?;
    let body = json!({"barcode": form.text("barcode"), "collected_on": form.text("collected_on"), "volume_ml": volume});
    donor_action(signed, api, id, "samples", "sample", body).await
}

async fn record_typing(
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let body =
        json!({"gl": form.text("gl"), "lab": form.get("lab"), "typed_on": form.get("typed_on")});
    donor_action(signed, api, id, "typings", "typing", body).await
}

async fn record_consent(
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let body = json!({"scope": form.text("scope"), "form_version": form.text("form_version")});
    donor_action(signed, api, id, "consents", "consent", body).await
}

async fn record_contact(
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let body = json!({"attempted_on": form.text("attempted_on"), "channel": form.text("channel"), "outcome": form.text("outcome"), "note": form.get("note")});
    donor_action(signed, api, id, "contacts", "contact", body).await
}

/// A donor's identity, shown once, after a reason (the API audits the read with it).
async fn read_identity(
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let lang = signed.lang;
    let reason = form.text("reason");
    let identity = api
        .call(
            &signed.caller,
            Method::GET,
            &format!("/v1/donors/{id}/identity?reason={}", encode(&reason)),
            None,
        )
        .await;
    let identity = match identity {
        Ok(i) => i,
        Err(f) if f.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let mut response = donor_page(&signed, &api, id, None, Some(&f)).await?;
            *response.status_mut() = f.status;
            return Ok(response);
        }
        Err(f) => return Err(PageError::from_api(lang, f)),
    };
    let view = signed.view();
    let body = html! {
        p.notice role="status" { (lang.t("identity.audited")) }
        dl.facts {
            @for (field, key) in [("family_name", "identity.family_name"), ("given_name", "identity.given_name"), ("national_id", "identity.national_id"), ("phone", "identity.phone"), ("email", "identity.email"), ("address", "identity.address")] {
                dt { (lang.t(key)) } dd { (super::layout::cell(&identity[field])) }
            }
        }
        p { a href={ "/donors/" (id) } { (lang.t("identity.back")) } }
    };
    Ok(page(&view, lang.t("identity.title"), body))
}

async fn samples(
    signed: Signed,
    axum::Extension(api): axum::Extension<Api>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let lang = signed.lang;
    let uri = format!(
        "/v1/samples{}",
        query_string(&[
            ("station", signed.caller.station.as_deref()),
            ("state", q.state.as_deref()),
            ("cursor", q.cursor.as_deref())
        ])
    );
    let found = api.read(&signed, &uri).await?;
    let items = found["items"].as_array().cloned().unwrap_or_default();
    let states = coded_options(
        lang,
        "sample_state",
        &registry::samples::SAMPLE_STATES,
        true,
    );
    let view = signed.view();
    let base = format!("/samples{}", query_string(&[("state", q.state.as_deref())]));
    let body = html! {
        (notice(lang, q.done.as_deref()))
        form.filters method="get" action="/samples" {
            (select_field(lang, "state", "sample.state", &states, q.state.as_deref().unwrap_or(""), None))
            button type="submit" { (lang.t("list.filter")) }
        }
        (table(lang, "samples.caption", &items, &[("barcode", "sample.barcode"), ("donor_id", "sample.donor"), ("collected_on", "sample.collected_on"), ("state", "sample.state"), ("lab", "sample.lab")], Some(&|s: &Value| format!("/donors/{}", s["donor_id"]))))
        @for s in &items {
            form.inline method="post" action={ "/samples/" (s["id"]) "/state" } {
                (csrf_field(&view))
                @let name = format!("state-{}", s["id"]);
                label for=(name) { (lang.tf("sample.move", &[("barcode", &super::layout::cell(&s["barcode"]))])) }
                select id=(name) name="state" {
                    @for st in registry::samples::SAMPLE_STATES { option value=(st) { (lang.t(&format!("sample_state.{st}"))) } }
                }
                button type="submit" { (lang.t("sample.move_submit")) }
            }
        }
        (next_link(lang, &base, &found["next_cursor"]))
    };
    Ok(page(&view, lang.t("samples.title"), body))
}

async fn sample_state(
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let body = json!({"state": form.text("state")});
    api.call(
        &signed.caller,
        Method::POST,
        &format!("/v1/samples/{id}/state"),
        Some(&body),
    )
    .await
    .map_err(|e| PageError::from_api(signed.lang, e))?;
    Ok(Redirect::to("/samples?done=sample_state").into_response())
}
