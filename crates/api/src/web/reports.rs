//! Registry staff: the yearly report (its summary in the reader's language, the key figures,
//! its charts) and the stations with their targets.

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use base64::Engine;
use maud::html;
use registry::YearlyReport;
use serde::Deserialize;

use super::api::Api;
use super::i18n::Lang;
use super::layout::page;
use super::session::Signed;
use super::{PageError, PageResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reports/yearly", get(yearly))
        .route("/stations", get(stations))
}

#[derive(Deserialize)]
pub struct YearQuery {
    year: Option<String>,
}

/// The year asked for (this year by default), or why not.
fn year_of(signed: &Signed, q: &YearQuery) -> Result<i32, PageError> {
    let this_year: i32 = signed.today[..4].parse().unwrap_or(2026);
    match q.year.as_deref().map(str::trim).filter(|y| !y.is_empty()) {
        None => Ok(this_year),
        Some(y) => y.parse().map_err(|_| {
            PageError::new(
                signed.lang,
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                signed.lang.tf("report.bad_year", &[("year", y)]),
            )
        }),
    }
}

async fn report(signed: &Signed, api: &Api, year: i32) -> Result<YearlyReport, PageError> {
    let lang = signed.lang;
    let mut uri = format!("/v1/reports/yearly?year={year}");
    // A station clerk reads their own station's report only (the API's rule).
    if let Some(s) = &signed.caller.station {
        uri.push_str(&format!("&station={}", super::session::encode(s)));
    }
    let value = api.read(signed, &uri).await?;
    serde_json::from_value(value).map_err(|e| {
        PageError::new(
            lang,
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )
    })
}

fn figure(lang: Lang, key: &str, value: String) -> maud::Markup {
    html! { div.figure { dt { (lang.t(key)) } dd { (value) } } }
}

async fn yearly(
    signed: Signed,
    axum::Extension(api): axum::Extension<Api>,
    Query(q): Query<YearQuery>,
) -> PageResult {
    let lang = signed.lang;
    let year = year_of(&signed, &q)?;
    let r = report(&signed, &api, year).await?;
    let charts = registry::report::charts(&r)
        .map_err(|e| PageError::new(lang, axum::http::StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let summary = match lang {
        Lang::ZhCn => &r.summary.zh,
        Lang::En => &r.summary.en,
    };
    let view = signed.view();
    let body = html! {
        form.filters method="get" action="/reports/yearly" {
            div.field.small {
                label for="year" { (lang.t("report.year")) }
                input id="year" name="year" type="number" min="1990" max="2100" value=(year);
            }
            button type="submit" { (lang.t("report.show")) }
        }
        p.hint { (lang.tf("report.generated", &[("on", &r.generated_on)])) }
        p.summary id="summary" lang=(lang.code()) { (summary) }
        dl.figures {
            (figure(lang, "report.samples_collected", r.samples_collected.to_string()))
            (figure(lang, "report.donors_listed_new", r.donors_listed_new.to_string()))
            (figure(lang, "report.registry_size", r.registry_size.to_string()))
            (figure(lang, "report.utilisation", registry::report::percent(r.utilisation)))
            (figure(lang, "report.ct_requests", r.ct_requests.to_string()))
            (figure(lang, "report.workups", r.workups.to_string()))
            (figure(lang, "report.donations", r.donations.to_string()))
            (figure(lang, "report.organ_registrations", r.organ_registrations.new.to_string()))
        }
        section.charts aria-labelledby="charts-h" {
            h2 id="charts-h" { (lang.t("report.charts")) }
            @for c in &charts {
                figure id={ "chart-" (c.id) } {
                    // An image, not inline SVG: nothing in a chart can run as script.
                    img src={ "data:image/svg+xml;base64," (base64::engine::general_purpose::STANDARD.encode(&c.svg)) } alt=(c.title);
                    figcaption { (c.title) }
                }
            }
        }
    };
    Ok(page(
        &view,
        &lang.tf("report.title", &[("year", &year.to_string())]),
        body,
    ))
}

async fn stations(
    signed: Signed,
    axum::Extension(api): axum::Extension<Api>,
    Query(q): Query<YearQuery>,
) -> PageResult {
    let lang = signed.lang;
    let year = year_of(&signed, &q)?;
    let r = report(&signed, &api, year).await?;
    let view = signed.view();
    let body = html! {
        div.scroll {
            table id="stations" {
                caption { (lang.tf("stations.caption", &[("year", &year.to_string())])) }
                thead { tr {
                    th scope="col" { (lang.t("station.code")) } th scope="col" { (lang.t("station.name")) } th scope="col" { (lang.t("station.branch")) }
                    th scope="col" { (lang.t("station.target")) } th scope="col" { (lang.t("station.collected")) } th scope="col" { (lang.t("station.progress")) }
                } }
                tbody {
                    @for s in &r.samples_by_station {
                        @let share = (s.target > 0).then(|| s.collected as f64 / s.target as f64);
                        tr {
                            td { (s.station) } td { (s.name) } td { (s.branch) } td { (s.target) } td { (s.collected) }
                            td {
                                (registry::report::percent(share))
                                @if let Some(p) = share { " " meter min="0" max="1" value=(p.min(1.0)) aria-label=(lang.t("station.progress")) {} }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&view, lang.t("stations.title"), body))
}
