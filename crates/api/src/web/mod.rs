//! The web pages for the people who run the registry, served at `/` beside the JSON API
//! (`/v1`): server-rendered HTML (maud), a stylesheet and a small script compiled into the
//! binary, zh-CN and English from message catalogues.
//!
//! Pages act only through the API itself (`api::Api`, an in-process call as the signed-in
//! person), so they obey the same roles, ownership rules and validation, and are audited the
//! same way. One module per noun: `donors` (station clerks), `patients` and `searches`
//! (coordinators), `cases` (case managers), `reports` (registry staff), `audit` (auditors),
//! `people` (accounts, admins); `session` signs people in and checks every form's CSRF token.

pub mod api;
mod audit;
mod cases;
mod donors;
mod home;
pub mod i18n;
mod layout;
mod patients;
mod people;
mod reports;
mod searches;
pub mod session;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use registry::RegistryError;

use self::api::ApiFailure;
use self::i18n::{LANG_COOKIE, Lang};
use self::layout::{View, page};
use crate::AppState;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route(
            "/sign-in",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/sign-out", post(session::sign_out))
        .route("/lang/{code}", get(switch_language))
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .merge(donors::router())
        .merge(patients::router())
        .merge(searches::router())
        .merge(cases::router())
        .merge(reports::router())
        .merge(audit::router())
        .merge(people::router())
}

/// Every page's security headers: no framing, no sniffing, scripts and styles from this
/// server only, forms posted only here.
pub async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct BackQuery {
    back: Option<String>,
}

/// Choose a language (a cookie), and go back to the page it was chosen on.
async fn switch_language(
    axum::extract::Path(code): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<BackQuery>,
) -> Response {
    let Some(lang) = Lang::from_code(&code) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let back = session::local_path(q.back.as_deref());
    let mut response = Redirect::to(&back).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        header::HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; SameSite=Strict; Path=/; Max-Age=31536000",
            lang.code()
        ))
        .expect("language codes are ASCII"),
    );
    response
}

/// A posted form's fields, in order.
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    /// A field's value, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// A field's value as sent (passwords).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every non-blank value of a repeated field (checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
            .collect()
    }

    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").to_string()
    }
}

/// A page that could not be shown: its status and a sentence for the person.
#[derive(Debug)]
pub struct PageError {
    pub lang: Lang,
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(lang: Lang, status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            lang,
            status,
            message: message.into(),
        }
    }

    /// An API refusal: 403 and 404 in the person's words (they reveal nothing), the API's own
    /// detail otherwise.
    pub fn from_api(lang: Lang, failure: ApiFailure) -> PageError {
        let message = match failure.status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => lang.t("error.forbidden").into(),
            StatusCode::NOT_FOUND => lang.t("error.not_found").into(),
            _ => failure.detail,
        };
        let status = if failure.status == StatusCode::UNAUTHORIZED {
            StatusCode::FORBIDDEN
        } else {
            failure.status
        };
        PageError::new(lang, status, message)
    }

    pub fn from_registry(lang: Lang, e: RegistryError) -> PageError {
        tracing::error!(error = %e, "page failed in the registry");
        PageError::new(
            lang,
            StatusCode::SERVICE_UNAVAILABLE,
            lang.t("error.unavailable"),
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let lang = self.lang;
        let view = View {
            lang,
            person: None,
            csrf: None,
            here: "/",
        };
        let body = html! {
            p.error role="alert" { (self.message) }
            p { a href="/" { (lang.t("error.home")) } }
        };
        let title = match self.status {
            StatusCode::FORBIDDEN => lang.t("error.forbidden_title"),
            StatusCode::NOT_FOUND => lang.t("error.not_found_title"),
            _ => lang.t("error.title"),
        };
        let mut response = page(&view, title, body);
        *response.status_mut() = self.status;
        response
    }
}

pub type PageResult = Result<Response, PageError>;

impl api::Api {
    /// Read `uri` as the signed-in person; a refusal becomes their error page.
    pub async fn read(
        &self,
        signed: &session::Signed,
        uri: &str,
    ) -> Result<serde_json::Value, PageError> {
        self.call(&signed.caller, axum::http::Method::GET, uri, None)
            .await
            .map_err(|e| PageError::from_api(signed.lang, e))
    }
}
