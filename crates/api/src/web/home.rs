//! The first page after signing in: the role's work, with today's lists where the role has
//! them.

use axum::http::Method;
use axum::response::Response;
use maud::html;
use serde_json::Value;

use super::PageResult;
use super::api::Api;
use super::layout::{local_times, page, table};
use super::session::Signed;

pub async fn home(signed: Signed, axum::Extension(api): axum::Extension<Api>) -> PageResult {
    let lang = signed.lang;
    let role = signed.session.person.role.clone();
    let get = |uri: &'static str| {
        let api = api.clone();
        let caller = signed.caller.clone();
        async move {
            api.call(&caller, Method::GET, uri, None)
                .await
                .unwrap_or(Value::Null)
        }
    };
    let list = |v: &Value, k: &str| {
        let mut items = v[k].as_array().cloned().unwrap_or_default();
        local_times(&signed.clock, &mut items);
        items
    };
    let work = match role.as_str() {
        "case_manager" => {
            let overdue = get("/v1/followups/due?overdue=true").await;
            let workups = get("/v1/requests?kind=workup&state=open&limit=20").await;
            html! {
                h2 { (lang.t("home.open_workups")) }
                (table(lang, "home.open_workups", &list(&workups, "items"), &[("id", "request.id"), ("patient_id", "request.patient"), ("donor_id", "request.donor"), ("opened_at", "request.opened_at")], Some(&|r: &Value| format!("/cases/{}", r["id"]))))
                h2 { (lang.t("followups.overdue")) }
                (table(lang, "followups.overdue", &list(&overdue, "followups"), &[("label", "followup.label"), ("donor_id", "request.donor"), ("due_on", "followup.due_on")], None))
            }
        }
        "coordinator" => {
            let searches = get("/v1/searches?has_new=true&limit=20").await;
            html! {
                h2 { (lang.t("home.searches_with_new")) }
                (table(lang, "home.searches_with_new", &list(&searches, "items"), &[("id", "search.id"), ("patient_id", "request.patient"), ("state", "search.state"), ("last_run_at", "search.last_run_at")], Some(&|s: &Value| format!("/searches/{}", s["id"]))))
            }
        }
        _ => html! {},
    };
    let view = signed.view();
    let body = html! {
        p { (lang.tf("home.welcome", &[("name", &signed.session.person.name), ("role", lang.t(&format!("role.{role}")))])) }
        (work)
    };
    let response: Response = page(&view, lang.t("home.title"), body);
    Ok(response)
}
