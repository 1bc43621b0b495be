//! Signing in and out, the session cookie, and the CSRF check of every form.
//!
//! The session cookie (`boai_session`) is HttpOnly and SameSite=Strict, and holds a random
//! secret whose SHA-256 the store keeps with the session (so every server of a deployment
//! knows it). Every form carries the session's CSRF token in a hidden field, checked before
//! the form is read; the sign-in form, which has no session yet, carries a token that must
//! equal its own SameSite=Strict cookie's (double submit).

use axum::extract::{Form, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use registry::people::{SignInRefused, WebSession};
use serde::Deserialize;

use super::i18n::{Lang, cookie};
use super::layout::{View, page, text_field};
use super::{FormData, PageError};
use crate::AppState;
use crate::auth::Caller;

pub const SESSION_COOKIE: &str = "boai_session";
const SIGN_IN_COOKIE: &str = "boai_sign_in";

/// A signed-in person: their session, their caller (for the API), their language.
pub struct Signed {
    pub session: WebSession,
    pub caller: Caller,
    pub lang: Lang,
    /// The path and query of this request (the language switch comes back to it).
    pub here: String,
    /// The registry's local date (`YYYY-MM-DD`), for the forms' defaults.
    pub today: String,
    /// The registry's clock: stored instants are shown in its time zone.
    pub clock: registry::Clock,
}

impl Signed {
    pub fn view(&self) -> View<'_> {
        View {
            lang: self.lang,
            person: Some(&self.session.person),
            csrf: Some(&self.session.csrf_token),
            here: &self.here,
        }
    }
}

fn request_id(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn here(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into())
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let lang = Lang::from_request_parts(parts, state)
            .await
            .unwrap_or(Lang::ZhCn);
        let here = here(parts);
        let session = match cookie(parts, SESSION_COOKIE) {
            Some(secret) => state
                .registry
                .web_session(secret)
                .await
                .map_err(|e| PageError::from_registry(lang, e).into_response())?,
            None => None,
        };
        let Some(session) = session else {
            let next = if parts.method == axum::http::Method::GET {
                here.clone()
            } else {
                "/".to_string()
            };
            return Err(Redirect::to(&format!("/sign-in?next={}", encode(&next))).into_response());
        };
        let caller = Caller::person(&session.person, request_id(parts)).ok_or_else(|| {
            PageError::new(lang, StatusCode::FORBIDDEN, lang.t("error.forbidden")).into_response()
        })?;
        Ok(Signed {
            session,
            caller,
            lang,
            here,
            today: state.registry.config.clock.local_now().0.to_string(),
            clock: state.registry.config.clock.clone(),
        })
    }
}

/// A form posted by a signed-in person, its CSRF token checked before anything is read.
pub struct Posted {
    pub signed: Signed,
    pub form: FormData,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let lang = signed.lang;
        let Form(pairs) =
            Form::<Vec<(String, String)>>::from_request(Request::from_parts(parts, body), state)
                .await
                .map_err(|e| {
                    PageError::new(lang, StatusCode::BAD_REQUEST, e.body_text()).into_response()
                })?;
        let form = FormData(pairs);
        let sent = form.get("csrf").unwrap_or("");
        if !same_secret(sent, &signed.session.csrf_token) {
            return Err(
                PageError::new(lang, StatusCode::FORBIDDEN, lang.t("error.csrf")).into_response(),
            );
        }
        Ok(Posted { signed, form })
    }
}

/// Equal strings, compared in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Percent-encode a path for a query parameter.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A local path to go back to: never another site (`//host`, `https://…`).
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.into(),
        _ => "/".into(),
    }
}

fn cookie_header(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are ASCII")
}

/// Behind a TLS-terminating proxy the cookies are marked Secure.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn sign_in_page(
    lang: Lang,
    next: &str,
    token: &str,
    name: &str,
    error: Option<&str>,
    status: StatusCode,
    headers: &HeaderMap,
) -> Response {
    let view = View {
        lang,
        person: None,
        csrf: None,
        here: "/sign-in",
    };
    let body = html! {
        form.narrow method="post" action="/sign-in" {
            input type="hidden" name="sign_in_token" value=(token);
            input type="hidden" name="next" value=(next);
            @if let Some(e) = error { p.error role="alert" id="sign-in-error" { (e) } }
            (text_field(lang, "name", "person.name", name, None, "text", true))
            (text_field(lang, "password", "person.password", "", None, "password", true))
            button type="submit" { (lang.t("sign_in.submit")) }
        }
    };
    let mut response = page(&view, lang.t("sign_in.title"), body);
    *response.status_mut() = status;
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(SIGN_IN_COOKIE, token, 3600, over_tls(headers)),
    );
    response
}

pub async fn sign_in_form(lang: Lang, headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    let token = hex::encode(rand_token());
    sign_in_page(
        lang,
        &local_path(q.next.as_deref()),
        &token,
        "",
        None,
        StatusCode::OK,
        &headers,
    )
}

/// The sign-in form's token: it ties the form to this browser (not a session secret).
fn rand_token() -> [u8; 24] {
    rand::random()
}

pub async fn sign_in(State(state): State<AppState>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let lang = Lang::from_request_parts(&mut parts, &state)
        .await
        .unwrap_or(Lang::ZhCn);
    let cookie_token = cookie(&parts, SIGN_IN_COOKIE).map(str::to_string);
    let headers = parts.headers.clone();
    let rid = request_id(&parts);
    let Ok(Form(pairs)) =
        Form::<Vec<(String, String)>>::from_request(Request::from_parts(parts, body), &state).await
    else {
        return PageError::new(lang, StatusCode::BAD_REQUEST, lang.t("error.bad_form"))
            .into_response();
    };
    let form = FormData(pairs);
    let sent = form.get("sign_in_token").unwrap_or("");
    if cookie_token
        .as_deref()
        .is_none_or(|c| !same_secret(c, sent))
    {
        return PageError::new(lang, StatusCode::FORBIDDEN, lang.t("error.csrf")).into_response();
    }
    let next = local_path(form.get("next"));
    let name = form.get("name").unwrap_or("");
    let password = form.raw("password").unwrap_or("");
    let again = |key: &str, status| {
        let token = hex::encode(rand_token());
        sign_in_page(
            lang,
            &next,
            &token,
            name,
            Some(lang.t(key)),
            status,
            &headers,
        )
    };
    match state.registry.sign_in(name, password, rid.as_deref()).await {
        Ok(Ok((secret, _session))) => {
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                cookie_header(
                    SESSION_COOKIE,
                    &secret,
                    registry::people::SESSION_LENGTH.as_secs(),
                    over_tls(&headers),
                ),
            );
            response
        }
        Ok(Err(SignInRefused::WrongNameOrPassword)) => {
            again("sign_in.wrong", StatusCode::UNAUTHORIZED)
        }
        Ok(Err(SignInRefused::Locked { .. })) => {
            again("sign_in.locked", StatusCode::TOO_MANY_REQUESTS)
        }
        Err(e) => PageError::from_registry(lang, e).into_response(),
    }
}

pub async fn sign_out(State(state): State<AppState>, posted: Posted) -> Response {
    let signed = posted.signed;
    if let Err(e) = state
        .registry
        .sign_out(&signed.session, signed.caller.request_id.as_deref())
        .await
    {
        return PageError::from_registry(signed.lang, e).into_response();
    }
    let mut response = Redirect::to("/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(SESSION_COOKIE, "", 0, false),
    );
    response
}
