//! Search coordinators' patients: register, list, open (with the patient's searches and the
//! form that runs a new one).

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use matching::Locus;
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{Api, ApiFailure};
use super::layout::{
    cell, coded_options, csrf_field, local_times, next_link, notice, page, select_field, table,
    text_field,
};
use super::session::{Posted, Signed, encode};
use super::{PageError, PageResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/patients", get(list).post(register))
        .route("/patients/new", get(register_form))
        .route("/patients/{id}", get(show))
}

#[derive(Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    done: Option<String>,
}

async fn list(
    signed: Signed,
    axum::Extension(api): axum::Extension<Api>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let lang = signed.lang;
    let uri = match &q.cursor {
        Some(c) => format!("/v1/patients?limit=50&cursor={}", encode(c)),
        None => "/v1/patients?limit=50".into(),
    };
    let found = api.read(&signed, &uri).await?;
    let items = found["items"].as_array().cloned().unwrap_or_default();
    let view = signed.view();
    let body = html! {
        (notice(lang, q.done.as_deref()))
        p { a.button href="/patients/new" { (lang.t("nav.new_patient")) } }
        (table(lang, "patients.caption", &items, &[("external_id", "patient.external_id"), ("gl", "patient.gl"), ("birth_date", "patient.birth_date"), ("abo", "patient.abo"), ("diagnosis", "patient.diagnosis"), ("transplant_centre", "patient.transplant_centre")],
            Some(&|p: &Value| format!("/patients/{}", p["id"]))))
        (next_link(lang, "/patients", &found["next_cursor"]))
    };
    Ok(page(&view, lang.t("patients.title"), body))
}

async fn register_form(signed: Signed) -> PageResult {
    Ok(render_form(&signed, &[], None, StatusCode::OK))
}

fn render_form(
    signed: &Signed,
    values: &[(String, String)],
    failure: Option<&ApiFailure>,
    status: StatusCode,
) -> axum::response::Response {
    let lang = signed.lang;
    let value = |n: &str| {
        values
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let error = |n: &str| failure.and_then(|f| f.reason_for(n));
    let f = |name: &str, key: &str, kind: &str, required: bool| {
        text_field(lang, name, key, value(name), error(name), kind, required)
    };
    let view = signed.view();
    let body = html! {
        @if let Some(fl) = failure { p.error role="alert" id="form-error" { (fl.detail) } }
        form.wide method="post" action="/patients" novalidate {
            (csrf_field(&view))
            (f("external_id", "patient.external_id", "text", true))
            (f("gl", "patient.gl", "text", true))
            p.hint { (lang.t("patient.gl_hint")) }
            (f("birth_date", "patient.birth_date", "date", false))
            (select_field(lang, "sex", "donor.sex", &coded_options(lang, "sex", &["M", "F", "U"], true), value("sex"), error("sex")))
            (select_field(lang, "abo", "donor.abo", &coded_options(lang, "abo", &["O", "A", "B", "AB"], true), value("abo"), error("abo")))
            (select_field(lang, "cmv", "donor.cmv", &coded_options(lang, "cmv", &["neg", "pos"], true), value("cmv"), error("cmv")))
            (f("weight_kg", "patient.weight_kg", "number", false))
            (f("diagnosis", "patient.diagnosis", "text", false))
            (f("transplant_centre", "patient.transplant_centre", "text", false))
            button type="submit" { (lang.t("patient.submit")) }
        }
    };
    let mut response = page(&view, lang.t("patient.new_title"), body);
    *response.status_mut() = status;
    response
}

async fn register(
    axum::Extension(api): axum::Extension<Api>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let lang = signed.lang;
    let values: Vec<(String, String)> = form
        .0
        .iter()
        .filter(|(k, _)| k != "csrf")
        .cloned()
        .collect();
    let weight = match form.get("weight_kg").map(str::parse::<f64>) {
        None => None,
        Some(Ok(w)) => Some(w),
        Some(Err(_)) => {
            let failure = ApiFailure {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                detail: lang.t("error.number").into(),
                errors: vec![("weight_kg".into(), lang.t("error.number").into())],
            };
            return Ok(render_form(
                &signed,
                &values,
                Some(&failure),
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
    };
    let body = json!({
        "external_id": form.text("external_id"), "gl": form.text("gl"), "birth_date": form.get("birth_date"),
        "sex": form.get("sex"), "abo": form.get("abo"), "cmv": form.get("cmv"), "weight_kg": weight,
        "diagnosis": form.get("diagnosis"), "transplant_centre": form.get("transplant_centre"),
    });
    match api
        .call(&signed.caller, Method::POST, "/v1/patients", Some(&body))
        .await
    {
        Ok(p) => Ok(Redirect::to(&format!("/patients/{}?done=patient", p["id"])).into_response()),
        Err(f)
            if f.status == StatusCode::UNPROCESSABLE_ENTITY || f.status == StatusCode::CONFLICT =>
        {
            Ok(render_form(&signed, &values, Some(&f), f.status))
        }
        Err(f) => Err(PageError::from_api(lang, f)),
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
    let lang = signed.lang;
    let patient = api.read(&signed, &format!("/v1/patients/{id}")).await?;
    let mut searches = if signed.session.person.role == "coordinator" {
        api.call(
            &signed.caller,
            Method::GET,
            &format!("/v1/patients/{id}/searches"),
            None,
        )
        .await
        .map(|v| v["items"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    local_times(&signed.clock, &mut searches);
    // Adults, cord units, or both.
    let mut donor_types = vec![(String::new(), lang.t("choice.any").to_string())];
    donor_types.extend(coded_options(lang, "donor_type", &["adult", "cord"], false));
    let view = signed.view();
    let body = html! {
        (notice(lang, q.done.as_deref()))
        dl.facts {
            @for (field, key) in [("external_id", "patient.external_id"), ("gl", "patient.gl"), ("birth_date", "patient.birth_date"), ("sex", "donor.sex"), ("abo", "donor.abo"), ("cmv", "donor.cmv"), ("weight_kg", "patient.weight_kg"), ("diagnosis", "patient.diagnosis"), ("transplant_centre", "patient.transplant_centre")] {
                dt { (lang.t(key)) } dd { (cell(&patient[field])) }
            }
        }
        @if signed.session.person.role == "coordinator" {
            section aria-labelledby="searches-h" {
                h2 id="searches-h" { (lang.t("patient.searches")) }
                (table(lang, "patient.searches", &searches, &[("id", "search.id"), ("state", "search.state"), ("created_at", "search.created_at"), ("last_run_at", "search.last_run_at"), ("has_new", "search.has_new")],
                    Some(&|s: &Value| format!("/searches/{}", s["id"]))))
            }
            section aria-labelledby="run-h" {
                h2 id="run-h" { (lang.t("search.run_title")) }
                form.wide method="post" action="/searches" {
                    (csrf_field(&view))
                    input type="hidden" name="patient_id" value=(id);
                    (select_field(lang, "max_mismatches", "search.max_mismatches", &(0..=5).map(|n| (n.to_string(), n.to_string())).collect::<Vec<_>>(), "1", None))
                    fieldset.loci {
                        legend { (lang.t("search.loci")) }
                        @for locus in Locus::ALL {
                            @let id = format!("locus-{}", locus.name());
                            @let default = matches!(locus.name(), "A" | "B" | "C" | "DRB1" | "DQB1");
                            div.check {
                                input type="checkbox" id=(id) name="loci" value=(locus.name()) checked[default];
                                label for=(id) { "HLA-" (locus.name()) }
                            }
                        }
                    }
                    fieldset.loci {
                        legend { (lang.t("search.locus_max")) }
                        @for locus in Locus::ALL {
                            @let name = format!("max_{}", locus.name());
                            div.field.small {
                                label for=(name) { "HLA-" (locus.name()) }
                                select id=(name) name=(name) {
                                    option value="" { (lang.t("choice.any")) }
                                    @for n in 0..=2 { option value=(n) { (n) } }
                                }
                            }
                        }
                    }
                    (select_field(lang, "donor_type", "search.donor_type", &donor_types, "", None))
                    div.check {
                        input type="checkbox" id="probability" name="probability" value="true";
                        label for="probability" { (lang.t("search.probability")) }
                    }
                    button type="submit" { (lang.t("search.submit")) }
                }
            }
        }
    };
    Ok(page(
        &view,
        &lang.tf("patient.title", &[("id", &cell(&patient["external_id"]))]),
        body,
    ))
}
