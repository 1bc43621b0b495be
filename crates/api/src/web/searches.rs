//! The search workbench: run a patient's search, the ranked results as a table with a
//! per-locus grid (match, allele mismatch, antigen mismatch, potential match), paging,
//! re-runs with new and changed donors marked and gone ones listed, the CSV, and the
//! requests a coordinator opens from a result.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use matching::Locus;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::Api;
use super::i18n::Lang;
use super::layout::{View, cell, csrf_field, notice, page};
use super::session::{Posted, Signed};
use super::{PageError, PageResult};
use crate::AppState;

/// Page sizes offered.
pub const PAGE_SIZES: [usize; 3] = [20, 50, 100];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/searches", post(run))
        .route("/searches/{id}", get(show))
        .route("/searches/{id}/rerun", post(rerun))
        .route("/searches/{id}/results.csv", get(csv))
}

/// The search criteria of the patient page's form, as the API's `SearchIn`.
fn criteria(form: &super::FormData) -> Result<Value, (String, String)> {
    let bad = |f: &str| (f.to_string(), "error.number".to_string());
    let patient_id: i64 = form
        .get("patient_id")
        .ok_or_else(|| bad("patient_id"))?
        .parse()
        .map_err(|_| bad("patient_id"))?;
    let max: u8 = form
        .get("max_mismatches")
        .unwrap_or("0")
        .parse()
        .map_err(|_| bad("max_mismatches"))?;
    let loci = form.all("loci");
    let mut locus_max = BTreeMap::new();
    for locus in Locus::ALL {
        if let Some(v) = form.get(&format!("max_{}", locus.name())) {
            let n: u8 = v
                .parse()
                .map_err(|_| bad(&format!("max_{}", locus.name())))?;
            locus_max.insert(locus.name(), n);
        }
    }
    let probability = form.get("probability") == Some("true");
    Ok(json!({
        "patient_id": patient_id,
        "max_mismatches": max,
        "loci": if loci.is_empty() { Value::Null } else { json!(loci) },
        "locus_max": if locus_max.is_empty() { Value::Null } else { json!(locus_max) },
        "donor_type": form.get("donor_type"),
        "probability": probability,
        "policy": if probability { "probability-within-grade-v1" } else { "hla-first-v1" },
    }))
}

async fn run(
    axum::Extension(api): axum::Extension<Api>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let lang = signed.lang;
    let body = criteria(&form).map_err(|(field, key)| {
        PageError::new(
            lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field}: {}", lang.t(&key)),
        )
    })?;
    let created = api
        .call(&signed.caller, Method::POST, "/v1/searches", Some(&body))
        .await
        .map_err(|e| PageError::from_api(lang, e))?;
    Ok(Redirect::to(&format!("/searches/{}?done=search", created["id"])).into_response())
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<usize>,
    size: Option<usize>,
    done: Option<String>,
}

/// How a locus of a hit matched, for its grid cell: (CSS class, short mark, message key).
pub fn locus_class(detail: &Value) -> (&'static str, &'static str, &'static str) {
    let n = |k: &str| detail[k].as_u64().unwrap_or(0);
    let potential = !detail["typed"].as_bool().unwrap_or(true)
        || detail["grades"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "unknown"));
    if n("antigen_mismatches") > 0 {
        ("mm-antigen", "Ag", "grid.antigen")
    } else if n("allele_mismatches") > 0 || n("mismatches") > 0 {
        ("mm-allele", "Al", "grid.allele")
    } else if potential {
        ("potential", "?", "grid.potential")
    } else {
        ("match", "=", "grid.match")
    }
}

async fn show(
    signed: Signed,
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> PageResult {
    let started = Instant::now();
    let lang = signed.lang;
    let size = q.size.filter(|s| PAGE_SIZES.contains(s)).unwrap_or(50);
    let page_no = q.page.unwrap_or(1).max(1);
    // A page past the end shows no rows (never an overflow).
    let offset = (page_no - 1).saturating_mul(size);
    let call = |uri: String| {
        let api = api.clone();
        let caller = signed.caller.clone();
        async move {
            api.call(&caller, Method::GET, &uri, None)
                .await
                .map_err(|e| PageError::from_api(lang, e))
        }
    };
    let search = call(format!("/v1/searches/{id}")).await?;
    let results = call(format!(
        "/v1/searches/{id}/results?offset={offset}&limit={size}"
    ))
    .await?;
    let runs = call(format!("/v1/searches/{id}/runs")).await?;
    let api_ms = started.elapsed().as_secs_f64() * 1e3;
    let last_run = runs
        .as_array()
        .and_then(|r| r.last())
        .cloned()
        .unwrap_or(Value::Null);
    let view = signed.view();
    let body = results_body(
        lang,
        &view,
        id,
        &search,
        &results,
        &last_run,
        page_no,
        size,
        q.done.as_deref(),
    );
    let title = lang.tf("search.title", &[("id", &id.to_string())]);
    let mut response = page(&view, &title, body);
    let total_ms = started.elapsed().as_secs_f64() * 1e3;
    // The page's own time on the server, for benchmarks and browsers' developer tools.
    if let Ok(v) = HeaderValue::from_str(&format!("api;dur={api_ms:.2}, total;dur={total_ms:.2}")) {
        response.headers_mut().insert("server-timing", v);
    }
    Ok(response)
}

/// A hit's typing resolution: the coarsest over the matched loci (what limits the match's
/// certainty), and each locus's for the cell's title.
fn resolution(loci: &[String], hit: &Value) -> (&'static str, String) {
    const ORDER: [&str; 4] = ["untyped", "serology", "group", "allele"];
    let mut coarsest = 3;
    let mut each = Vec::new();
    for l in loci {
        let r = hit["loci"][l.as_str()]["resolution"]
            .as_str()
            .unwrap_or("untyped");
        coarsest = coarsest.min(ORDER.iter().position(|o| *o == r).unwrap_or(0));
        each.push(format!("{l}: {r}"));
    }
    (ORDER[coarsest], each.join(", "))
}

fn ids(v: &Value) -> BTreeSet<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn probability(v: &Value) -> String {
    v.as_f64()
        .map(|p| format!("{:.0}%", p * 100.0))
        .unwrap_or_else(|| "—".into())
}

#[allow(clippy::too_many_arguments)]
fn results_body(
    lang: Lang,
    view: &View,
    id: i64,
    search: &Value,
    results: &Value,
    last_run: &Value,
    page_no: usize,
    size: usize,
    done: Option<&str>,
) -> Markup {
    let hits = results["hits"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let kept = results["kept"].as_u64().unwrap_or(0) as usize;
    let total = results["total"].as_u64().unwrap_or(0);
    let (new, changed) = (ids(&last_run["new"]), ids(&last_run["changed"]));
    let gone = ids(&last_run["gone"]);
    let loci: Vec<String> = search["criteria"]["loci"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_else(|| ["A", "B", "C", "DRB1", "DQB1"].map(String::from).to_vec());
    let with_probability = search["criteria"]["probability"].as_bool().unwrap_or(false);
    let pages = kept.div_ceil(size).max(1);
    let patient_id = search["patient_id"].as_i64().unwrap_or(0);
    html! {
        (notice(lang, done))
        p.summary {
            (lang.tf("search.summary", &[("total", &total.to_string()), ("kept", &kept.to_string()), ("patient", &patient_id.to_string())]))
            " " a href={ "/patients/" (patient_id) } { (lang.t("search.patient_link")) }
        }
        div.actions {
            form.inline method="post" action={ "/searches/" (id) "/rerun" } {
                (csrf_field(view))
                button type="submit" { (lang.t("search.rerun")) }
            }
            a.button href={ "/searches/" (id) "/results.csv" } download { (lang.t("search.csv")) }
        }
        ul.legend aria-label=(lang.t("grid.legend")) {
            @for (class, mark, key) in [("match", "=", "grid.match"), ("mm-allele", "Al", "grid.allele"), ("mm-antigen", "Ag", "grid.antigen"), ("potential", "?", "grid.potential")] {
                li { span class={ "cell " (class) } { (mark) } " " (lang.t(key)) }
            }
        }
        @if !last_run.is_null() {
            p.diff role="status" {
                (lang.tf("search.diff", &[("new", &new.len().to_string()), ("changed", &changed.len().to_string()), ("gone", &gone.len().to_string())]))
                @if !gone.is_empty() { " " (lang.t("search.gone_list")) " " (gone.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", ")) }
            }
        }
        div.scroll {
            table.results id="results" {
                caption { (lang.t("search.results")) }
                thead {
                    tr {
                        th scope="col" { (lang.t("hit.rank")) }
                        th scope="col" { (lang.t("hit.grid")) }
                        th scope="col" { (lang.t("hit.grade")) }
                        th scope="col" { (lang.t("hit.mismatches")) }
                        @for l in &loci { th scope="col" { "HLA-" (l) } }
                        @if with_probability { th scope="col" { "P0" } th scope="col" { "P1" } th scope="col" { "P2" } }
                        th scope="col" { (lang.t("hit.age")) }
                        th scope="col" { (lang.t("donor.sex")) }
                        th scope="col" { (lang.t("hit.abo_rh")) }
                        th scope="col" { (lang.t("donor.cmv")) }
                        th scope="col" { (lang.t("hit.resolution")) }
                        th scope="col" { (lang.t("donor.status")) }
                        th scope="col" { (lang.t("hit.request")) }
                    }
                }
                tbody {
                    @for h in hits {
                        @let donor = h["donor_id"].as_u64().unwrap_or(0);
                        @let mark = if new.contains(&donor) { Some(("new", "search.new")) } else if changed.contains(&donor) { Some(("changed", "search.changed")) } else { None };
                        tr class=[mark.map(|m| m.0)] data-donor=(donor) {
                            td { (cell(&h["rank"])) @if let Some((_, key)) = mark { " " span.badge { (lang.t(key)) } } }
                            td { (cell(&h["grid"])) }
                            td { (cell(&h["grade"])) }
                            td { (cell(&h["mismatches"])) }
                            @for l in &loci {
                                @let d = &h["loci"][l.as_str()];
                                @let (class, short, key) = locus_class(d);
                                td class={ "cell " (class) } title=(lang.t(key)) {
                                    (short)
                                    span.visually-hidden { " " (lang.t(key)) }
                                }
                            }
                            @if with_probability {
                                td { (probability(&h["probability"]["p0"])) }
                                td { (probability(&h["probability"]["p1"])) }
                                td { (probability(&h["probability"]["p2"])) }
                            }
                            td { (cell(&h["age"])) }
                            td { (cell(&h["sex"])) }
                            td { (cell(&h["abo"])) (cell(&h["rh"])) }
                            td { (cell(&h["cmv"])) }
                            @let (coarsest, per_locus) = resolution(&loci, h);
                            td title=(per_locus) { (lang.t(&format!("resolution.{coarsest}"))) }
                            td { (cell(&h["status"])) @if !h["available"].as_bool().unwrap_or(true) { " " span.badge.warn { (lang.t("hit.unavailable")) } } }
                            td {
                                form.inline method="post" action="/requests" {
                                    (csrf_field(view))
                                    input type="hidden" name="patient_id" value=(patient_id);
                                    input type="hidden" name="donor_id" value=(donor);
                                    input type="hidden" name="back" value={ "/searches/" (id) };
                                    @let select_id = format!("kind-{donor}");
                                    label.visually-hidden for=(select_id) { (lang.t("request.kind")) }
                                    select id=(select_id) name="kind" {
                                        @for kind in registry::REQUEST_KINDS { option value=(kind) selected[kind == "confirmatory_typing"] { (lang.t(&format!("kind.{kind}"))) } }
                                    }
                                    button type="submit" { (lang.t("request.open")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label=(lang.t("pager.label")) {
            @if page_no > 1 { a rel="prev" href={ "/searches/" (id) "?page=" (page_no.min(pages + 1) - 1) "&size=" (size) } { (lang.t("pager.prev")) } }
            span { (lang.tf("pager.position", &[("page", &page_no.to_string()), ("pages", &pages.to_string())])) }
            @if page_no < pages { a rel="next" href={ "/searches/" (id) "?page=" (page_no + 1) "&size=" (size) } { (lang.t("pager.next")) } }
            span.sizes {
                (lang.t("pager.size")) " "
                @for s in PAGE_SIZES { @if s == size { strong { (s) } } @else { a href={ "/searches/" (id) "?size=" (s) } { (s) } } " " }
            }
        }
    }
}

async fn rerun(
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Posted { signed, .. }: Posted,
) -> PageResult {
    api.call(
        &signed.caller,
        Method::POST,
        &format!("/v1/searches/{id}/runs"),
        None,
    )
    .await
    .map_err(|e| PageError::from_api(signed.lang, e))?;
    Ok(Redirect::to(&format!("/searches/{id}?done=rerun")).into_response())
}

async fn csv(
    signed: Signed,
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let (_, headers, bytes) = api
        .raw(
            &signed.caller,
            Method::GET,
            &format!("/v1/searches/{id}/results.csv"),
            None,
        )
        .await
        .map_err(|e| PageError::from_api(signed.lang, e))?;
    let mut response = bytes.into_response();
    for name in [header::CONTENT_TYPE, header::CONTENT_DISPOSITION] {
        if let Some(v) = headers.get(&name) {
            response.headers_mut().insert(name, v.clone());
        }
    }
    Ok(response)
}
