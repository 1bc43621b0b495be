//! Auditors: the audit log, newest first, filterable by entity and id, paged backwards.

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use maud::html;
use serde::Deserialize;

use super::PageResult;
use super::api::Api;
use super::layout::{local_times, page, table, text_field};
use super::session::{Signed, encode};
use crate::AppState;

const PAGE: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(audit_log))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    entity: Option<String>,
    entity_id: Option<String>,
    before_id: Option<String>,
}

async fn audit_log(
    signed: Signed,
    axum::Extension(api): axum::Extension<Api>,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let lang = signed.lang;
    let entity = q.entity.as_deref().map(str::trim).filter(|v| !v.is_empty());
    let entity_id = q
        .entity_id
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let mut uri = format!("/v1/audit?limit={PAGE}");
    let mut filters = String::new();
    for (k, v) in [("entity", entity), ("entity_id", entity_id)] {
        if let Some(v) = v {
            filters.push_str(&format!("&{k}={}", encode(v)));
        }
    }
    uri.push_str(&filters);
    if let Some(b) = q.before_id.as_deref().filter(|v| !v.is_empty()) {
        uri.push_str(&format!("&before_id={}", encode(b)));
    }
    let found = api.read(&signed, &uri).await?;
    let mut entries = found["entries"].as_array().cloned().unwrap_or_default();
    local_times(&signed.clock, &mut entries);
    let oldest = entries.last().and_then(|e| e["id"].as_i64());
    let view = signed.view();
    let body = html! {
        form.filters method="get" action="/audit" {
            (text_field(lang, "entity", "audit.entity", entity.unwrap_or(""), None, "text", false))
            (text_field(lang, "entity_id", "audit.entity_id", entity_id.unwrap_or(""), None, "text", false))
            button type="submit" { (lang.t("list.filter")) }
        }
        (table(lang, "audit.caption", &entries, &[("id", "audit.id"), ("at", "audit.at"), ("actor", "audit.actor"), ("role", "audit.role"), ("action", "audit.action"), ("entity", "audit.entity"), ("entity_id", "audit.entity_id"), ("reason", "audit.reason"), ("request_id", "audit.request_id")], None))
        @if let (Some(oldest), true) = (oldest, entries.len() == PAGE) {
            p { a href={ "/audit?before_id=" (oldest) (filters) } { (lang.t("list.older")) } }
        }
    };
    Ok(page(&view, lang.t("audit.title"), body))
}
