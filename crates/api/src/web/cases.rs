//! Cases: the requests for a patient–donor pair (confirmatory typing, reservation, workup)
//! with their milestones as a timeline, the donor's consent per stage and the warnings;
//! opening requests (from a search result, or a workup from a case); follow-ups due and
//! overdue and donor care records.

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::Api;
use super::layout::{
    cell, coded_options, csrf_field, local_times, next_link, notice, page, select_field, table,
    text_field,
};
use super::session::{Posted, Signed, encode, local_path};
use super::{PageError, PageResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/requests", post(open_request))
        .route("/cases", get(list))
        .route("/cases/{id}", get(show))
        .route("/cases/{id}/milestones", post(record_milestone))
        .route("/cases/{id}/consents", post(record_consent))
        .route("/cases/{id}/close", post(close))
        .route("/followups", get(followups))
}

#[derive(Deserialize)]
pub struct ListQuery {
    kind: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
}

async fn list(
    signed: Signed,
    axum::Extension(api): axum::Extension<Api>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let lang = signed.lang;
    let state = q.state.clone().unwrap_or_else(|| "open".into());
    let mut uri = format!("/v1/requests?limit=50&state={}", encode(&state));
    if let Some(k) = q.kind.as_deref().filter(|k| !k.is_empty()) {
        uri.push_str(&format!("&kind={}", encode(k)));
    }
    if let Some(c) = &q.cursor {
        uri.push_str(&format!("&cursor={}", encode(c)));
    }
    let found = api.read(&signed, &uri).await?;
    let mut items = found["items"].as_array().cloned().unwrap_or_default();
    local_times(&signed.clock, &mut items);
    let view = signed.view();
    let base = format!(
        "/cases?state={}&kind={}",
        encode(&state),
        encode(q.kind.as_deref().unwrap_or(""))
    );
    let body = html! {
        (notice(lang, q.done.as_deref()))
        form.filters method="get" action="/cases" {
            (select_field(lang, "kind", "request.kind", &coded_options(lang, "kind", &registry::REQUEST_KINDS, true), q.kind.as_deref().unwrap_or(""), None))
            (select_field(lang, "state", "request.state", &coded_options(lang, "request_state", &registry::REQUEST_STATES, false), &state, None))
            button type="submit" { (lang.t("list.filter")) }
        }
        (table(lang, "cases.caption", &items, &[("id", "request.id"), ("kind", "request.kind"), ("state", "request.state"), ("patient_id", "request.patient"), ("donor_id", "request.donor"), ("opened_at", "request.opened_at"), ("expires_on", "request.expires_on")],
            Some(&|r: &Value| format!("/cases/{}", r["id"]))))
        (next_link(lang, &base, &found["next_cursor"]))
    };
    Ok(page(&view, lang.t("cases.title"), body))
}

/// Open a request for a patient–donor pair (from a search result, or a workup from a case).
async fn open_request(
    axum::Extension(api): axum::Extension<Api>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let lang = signed.lang;
    let number = |n: &str| form.get(n).and_then(|v| v.parse::<i64>().ok());
    let (Some(patient), Some(donor)) = (number("patient_id"), number("donor_id")) else {
        return Err(PageError::new(
            lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            lang.t("error.bad_form"),
        ));
    };
    let body = json!({"patient_id": patient, "donor_id": donor, "kind": form.text("kind")});
    match api
        .call(&signed.caller, Method::POST, "/v1/requests", Some(&body))
        .await
    {
        Ok(r) => Ok(Redirect::to(&format!("/cases/{}?done=request", r["id"])).into_response()),
        Err(f)
            if f.status == StatusCode::CONFLICT || f.status == StatusCode::UNPROCESSABLE_ENTITY =>
        {
            // Back where it was asked, saying why not.
            let back = local_path(form.get("back"));
            let view = signed.view();
            let body = html! {
                p.error role="alert" id="form-error" { (f.detail) }
                p { a href=(back) { (lang.t("error.back")) } }
            };
            let mut response = page(&view, lang.t("request.refused"), body);
            *response.status_mut() = f.status;
            Ok(response)
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
    case_page(&signed, &api, id, q.done.as_deref(), None).await
}

/// A case's page; `error` is the API's refusal of what was just posted.
async fn case_page(
    signed: &Signed,
    api: &Api,
    id: i64,
    done: Option<&str>,
    error: Option<&str>,
) -> PageResult {
    let lang = signed.lang;
    let mut case = api.read(signed, &format!("/v1/requests/{id}")).await?;
    local_times(&signed.clock, std::slice::from_mut(&mut case));
    let donor = case["donor_id"].as_i64().unwrap_or(0);
    let is_manager = signed.session.person.role == "case_manager";
    // Consents per stage (case managers read them; others are not shown them).
    let consents = if is_manager {
        api.call(
            &signed.caller,
            Method::GET,
            &format!("/v1/donors/{donor}/consents"),
            None,
        )
        .await
        .ok()
        .and_then(|v| v["consents"].as_array().cloned())
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    let in_force = |scope: &str| {
        consents
            .iter()
            .any(|c| c["scope"] == scope && c["withdrawn_at"].is_null())
    };
    let withdrawn = |scope: &str| {
        consents
            .iter()
            .any(|c| c["scope"] == scope && !c["withdrawn_at"].is_null())
    };
    let milestones = case["milestones"].as_array().cloned().unwrap_or_default();
    let warnings = case["warnings"].as_array().cloned().unwrap_or_default();
    let open = case["state"] == "open";
    let view = signed.view();
    let body = html! {
        (notice(lang, done))
        @if let Some(e) = error { p.error role="alert" id="form-error" { (e) } }
        @for w in &warnings {
            p.warning role="alert" { strong { (lang.t("case.warning")) } " " (cell(&w["at"])) " — " (cell(&w["warning"])) }
        }
        dl.facts {
            dt { (lang.t("request.kind")) } dd { (lang.t(&format!("kind.{}", cell(&case["kind"])))) }
            dt { (lang.t("request.state")) } dd { (lang.t(&format!("request_state.{}", cell(&case["state"])))) }
            @for (field, key) in [("patient_id", "request.patient"), ("donor_id", "request.donor"), ("opened_at", "request.opened_at"), ("closed_at", "request.closed_at"), ("expires_on", "request.expires_on")] {
                dt { (lang.t(key)) } dd { (cell(&case[field])) }
            }
        }
        p { a href={ "/donors/" (donor) } { (lang.t("case.donor_link")) } " · " a href={ "/patients/" (case["patient_id"]) } { (lang.t("search.patient_link")) } }
        @if is_manager {
            section aria-labelledby="consent-h" {
                h2 id="consent-h" { (lang.t("case.consents")) }
                table {
                    caption { (lang.t("case.consents")) }
                    thead { tr { th scope="col" { (lang.t("consent.scope")) } th scope="col" { (lang.t("case.consent_state")) } } }
                    tbody {
                        @for scope in ["recruitment", "confirmatory_typing", "workup", "follow_up_contact"] {
                            @let (class, key) = if in_force(scope) { ("ok", "case.in_force") } else if withdrawn(scope) { ("bad", "case.withdrawn") } else { ("none", "case.not_given") };
                            tr { td { (lang.t(&format!("scope.{scope}"))) } td class=(class) { (lang.t(key)) } }
                        }
                    }
                }
                @if open {
                    form method="post" action={ "/cases/" (id) "/consents" } {
                        (csrf_field(&view))
                        (select_field(lang, "scope", "consent.scope", &coded_options(lang, "scope", &registry::CASE_CONSENT_SCOPES, false), "", None))
                        (text_field(lang, "form_version", "consent.form_version", "", None, "text", true))
                        button type="submit" { (lang.t("consent.submit")) }
                    }
                }
            }
        }
        section aria-labelledby="timeline-h" {
            h2 id="timeline-h" { (lang.t("case.timeline")) }
            ol.timeline {
                @for m in registry::MILESTONES {
                    @let done = milestones.iter().find(|r| r["milestone"] == m);
                    li class=(if done.is_some() { "done" } else { "pending" }) {
                        span.step { (lang.t(&format!("milestone.{m}"))) }
                        " "
                        @match done {
                            Some(r) => span.when { (cell(&r["on_date"])) @if r["ok"] == false { " " span.badge.warn { (lang.t("case.not_ok")) } } },
                            None => span.when { (lang.t("case.pending")) },
                        }
                    }
                }
            }
            @if is_manager && open && case["kind"] == "workup" {
                form method="post" action={ "/cases/" (id) "/milestones" } {
                    (csrf_field(&view))
                    (select_field(lang, "milestone", "case.milestone", &coded_options(lang, "milestone", &registry::MILESTONES, false), "", None))
                    (text_field(lang, "on", "case.on", &signed.today, None, "date", true))
                    button type="submit" { (lang.t("case.record_milestone")) }
                }
            }
            @if is_manager && open && case["kind"] != "workup" {
                form method="post" action="/requests" {
                    (csrf_field(&view))
                    input type="hidden" name="patient_id" value=(case["patient_id"]);
                    input type="hidden" name="donor_id" value=(donor);
                    input type="hidden" name="kind" value="workup";
                    input type="hidden" name="back" value={ "/cases/" (id) };
                    button type="submit" { (lang.t("case.open_workup")) }
                }
            }
        }
        @if open {
            section aria-labelledby="close-h" {
                h2 id="close-h" { (lang.t("case.close")) }
                form method="post" action={ "/cases/" (id) "/close" } {
                    (csrf_field(&view))
                    (select_field(lang, "state", "request.state", &coded_options(lang, "request_state", &["done", "cancelled", "refused"], false), "", None))
                    (text_field(lang, "reason", "case.reason", "", None, "text", false))
                    button type="submit" { (lang.t("case.close_submit")) }
                }
            }
        }
    };
    Ok(page(
        &view,
        &lang.tf(
            "case.title",
            &[
                ("id", &id.to_string()),
                ("kind", lang.t(&format!("kind.{}", cell(&case["kind"])))),
            ],
        ),
        body,
    ))
}

/// Post to the API, then back to the case (with the API's words if it refused).
async fn case_action(
    signed: Signed,
    api: Api,
    id: i64,
    uri: &str,
    body: Value,
    done: &str,
) -> PageResult {
    match api
        .call(&signed.caller, Method::POST, uri, Some(&body))
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/cases/{id}?done={done}")).into_response()),
        Err(f)
            if f.status.is_client_error()
                && f.status != StatusCode::FORBIDDEN
                && f.status != StatusCode::NOT_FOUND =>
        {
            // The case again, with the reason beside the forms (never in the URL).
            let mut response = case_page(&signed, &api, id, None, Some(&f.detail)).await?;
            *response.status_mut() = f.status;
            Ok(response)
        }
        Err(f) => Err(PageError::from_api(signed.lang, f)),
    }
}

async fn record_milestone(
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let body = json!({"milestone": form.text("milestone"), "on": form.text("on"), "ok": true});
    case_action(
        signed,
        api,
        id,
        &format!("/v1/requests/{id}/milestones"),
        body,
        "milestone",
    )
    .await
}

async fn record_consent(
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let case = api.read(&signed, &format!("/v1/requests/{id}")).await?;
    let donor = case["donor_id"].as_i64().unwrap_or(0);
    let body = json!({"scope": form.text("scope"), "form_version": form.text("form_version")});
    case_action(
        signed,
        api,
        id,
        &format!("/v1/donors/{donor}/consents"),
        body,
        "consent",
    )
    .await
}

async fn close(
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let body = json!({"state": form.text("state"), "reason": form.get("reason")});
    case_action(
        signed,
        api,
        id,
        &format!("/v1/requests/{id}/close"),
        body,
        "closed",
    )
    .await
}

async fn followups(signed: Signed, axum::Extension(api): axum::Extension<Api>) -> PageResult {
    let lang = signed.lang;
    let get = |uri: &'static str| {
        let api = api.clone();
        let caller = signed.caller.clone();
        async move {
            api.call(&caller, Method::GET, uri, None)
                .await
                .map_err(|e| PageError::from_api(lang, e))
        }
    };
    let due = get("/v1/followups/due").await?;
    let overdue = get("/v1/followups/due?overdue=true").await?;
    let care = get("/v1/care?limit=50").await?;
    let list = |v: &Value, k: &str| v[k].as_array().cloned().unwrap_or_default();
    let view = signed.view();
    let columns = [
        ("label", "followup.label"),
        ("donor_id", "request.donor"),
        ("due_on", "followup.due_on"),
    ];
    let link = |f: &Value| format!("/donors/{}", f["donor_id"]);
    let body = html! {
        section.overdue aria-labelledby="overdue-h" {
            h2 id="overdue-h" { (lang.t("followups.overdue")) }
            (table(lang, "followups.overdue", &list(&overdue, "followups"), &columns, Some(&link)))
        }
        section aria-labelledby="due-h" {
            h2 id="due-h" { (lang.t("followups.due")) }
            (table(lang, "followups.due", &list(&due, "followups"), &columns, Some(&link)))
        }
        section aria-labelledby="care-h" {
            h2 id="care-h" { (lang.t("care.title")) }
            (table(lang, "care.title", &list(&care, "items"), &[("on_date", "care.on_date"), ("kind", "care.kind"), ("donor_id", "request.donor"), ("organ_case_id", "care.organ_case"), ("amount_fen", "care.amount_fen")], None))
        }
    };
    Ok(page(&view, lang.t("followups.title"), body))
}
