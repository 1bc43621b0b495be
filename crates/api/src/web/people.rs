//! Admins: people's accounts (create, disable, enable), through the API's `/v1/people`.

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{Api, ApiFailure};
use super::layout::{cell, coded_options, csrf_field, notice, page, select_field, text_field};
use super::session::{Posted, Signed};
use super::{PageError, PageResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/people", get(list).post(create))
        .route("/people/{id}/disabled", post(set_disabled))
        .route("/people/{id}/password", post(set_password))
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

async fn list(
    signed: Signed,
    axum::Extension(api): axum::Extension<Api>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    render(&signed, &api, q.done.as_deref(), &[], None, StatusCode::OK).await
}

async fn render(
    signed: &Signed,
    api: &Api,
    done: Option<&str>,
    values: &[(String, String)],
    failure: Option<&ApiFailure>,
    status: StatusCode,
) -> PageResult {
    let lang = signed.lang;
    let people = api.read(signed, "/v1/people").await?;
    let stations = api.read(signed, "/v1/stations").await?;
    let mut station_options = vec![(String::new(), lang.t("choice.none").to_string())];
    station_options.extend(
        stations["stations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|s| (s.to_string(), s.to_string())),
    );
    let value = |n: &str| {
        values
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let error = |n: &str| failure.and_then(|f| f.reason_for(n));
    let view = signed.view();
    let body = html! {
        (notice(lang, done))
        div.scroll {
            table {
                caption { (lang.t("people.caption")) }
                thead { tr { th scope="col" { (lang.t("person.name")) } th scope="col" { (lang.t("person.role")) } th scope="col" { (lang.t("donor.station")) } th scope="col" { (lang.t("person.locked_until")) } th scope="col" { (lang.t("person.state")) } th scope="col" { (lang.t("person.password")) } } }
                tbody {
                    @for p in people.as_array().into_iter().flatten() {
                        @let disabled = p["disabled"].as_bool().unwrap_or(false);
                        tr {
                            td { (cell(&p["name"])) }
                            td { (lang.t(&format!("role.{}", cell(&p["role"])))) }
                            td { (cell(&p["station"])) }
                            td { (cell(&p["locked_until"])) }
                            td {
                                form.inline method="post" action={ "/people/" (p["id"]) "/disabled" } {
                                    (csrf_field(&view))
                                    input type="hidden" name="disabled" value=(if disabled { "false" } else { "true" });
                                    (if disabled { lang.t("person.disabled") } else { lang.t("person.enabled") }) " "
                                    button type="submit" { (if disabled { lang.t("person.enable") } else { lang.t("person.disable") }) }
                                }
                            }
                            td {
                                form.inline method="post" action={ "/people/" (p["id"]) "/password" } {
                                    (csrf_field(&view))
                                    @let field = format!("password-{}", p["id"]);
                                    label.visually-hidden for=(field) { (lang.tf("person.new_password_for", &[("name", &cell(&p["name"]))])) }
                                    input id=(field) name="password" type="password" autocomplete="new-password" minlength="10" required;
                                    button type="submit" { (lang.t("person.reset")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="new-person-h" {
            h2 id="new-person-h" { (lang.t("people.new")) }
            @if let Some(f) = failure { p.error role="alert" id="form-error" { (f.detail) } }
            form.wide method="post" action="/people" novalidate {
                (csrf_field(&view))
                (text_field(lang, "name", "person.name", value("name"), error("name"), "text", true))
                (select_field(lang, "role", "person.role", &coded_options(lang, "role", &registry::tokens::ROLES, false), value("role"), error("role")))
                (select_field(lang, "station", "donor.station", &station_options, value("station"), error("station")))
                (text_field(lang, "password", "person.password", "", error("password"), "password", true))
                button type="submit" { (lang.t("people.create")) }
            }
        }
    };
    let mut response = page(&view, lang.t("people.title"), body);
    *response.status_mut() = status;
    Ok(response)
}

async fn create(
    axum::Extension(api): axum::Extension<Api>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let body = json!({"name": form.text("name"), "role": form.text("role"), "station": form.get("station"), "password": form.raw("password").unwrap_or("")});
    match api
        .call(&signed.caller, Method::POST, "/v1/people", Some(&body))
        .await
    {
        Ok(_) => Ok(Redirect::to("/people?done=person").into_response()),
        Err(f)
            if f.status == StatusCode::UNPROCESSABLE_ENTITY || f.status == StatusCode::CONFLICT =>
        {
            // Everything but the password comes back filled in.
            let values: Vec<(String, String)> = form
                .0
                .iter()
                .filter(|(k, _)| k != "csrf" && k != "password")
                .cloned()
                .collect();
            render(&signed, &api, None, &values, Some(&f), f.status).await
        }
        Err(f) => Err(PageError::from_api(signed.lang, f)),
    }
}

async fn set_disabled(
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let body = json!({"disabled": form.get("disabled") == Some("true")});
    api.call(
        &signed.caller,
        Method::POST,
        &format!("/v1/people/{id}/disabled"),
        Some(&body),
    )
    .await
    .map_err(|e| PageError::from_api(signed.lang, e))?;
    Ok(Redirect::to("/people?done=person_state").into_response())
}

async fn set_password(
    axum::Extension(api): axum::Extension<Api>,
    Path(id): Path<i64>,
    Posted { signed, form }: Posted,
) -> PageResult {
    let body = json!({"password": form.raw("password").unwrap_or("")});
    match api
        .call(
            &signed.caller,
            Method::POST,
            &format!("/v1/people/{id}/password"),
            Some(&body),
        )
        .await
    {
        Ok(_) => Ok(Redirect::to("/people?done=password").into_response()),
        Err(f) if f.status == StatusCode::UNPROCESSABLE_ENTITY => {
            render(&signed, &api, None, &[], Some(&f), f.status).await
        }
        Err(f) => Err(PageError::from_api(signed.lang, f)),
    }
}
