//! Logging in to the dashboard, and the role each page needs.
//!
//! A browser logs in once with its credential's token (`renda credential add`); the token is
//! then kept in an `HttpOnly`, `SameSite=Strict` cookie, so scripts cannot read it and no other
//! site can make the browser send it with a form. A program may send `Authorization: Bearer`
//! instead. Every request but the login page's is checked against the store, so a revoked
//! credential stops working at once. The credential of the request in hand is kept in a task
//! local for the page frame, which shows who is logged in.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use renda_node::access::{Credential, Role};

use super::{Dashboard, PageError, page_html};
use crate::auth::{Denied, authorize, bearer};

const COOKIE: &str = "renda_token";

tokio::task_local! {
    static CURRENT: Credential;
}

/// The credential of the request being answered, if it logged in.
pub(crate) fn current() -> Option<Credential> {
    CURRENT.try_with(Credential::clone).ok()
}

/// Fails unless the request's credential allows `needs`.
pub(crate) fn require(needs: Role) -> Result<Credential, PageError> {
    let credential = current().ok_or_else(|| PageError::unauthorized("请先登录"))?;
    if credential.role.allows(needs) {
        Ok(credential)
    } else {
        Err(PageError::forbidden(format!(
            "role：凭据“{}”的角色是“{}”，此操作需要“{}”角色",
            credential.name,
            credential.role.label(),
            needs.label()
        )))
    }
}

fn token_of(headers: &HeaderMap) -> Option<String> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(token) = bearer(auth) {
        return Some(token.to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Only a path of this site may follow a login, never another host. Browsers strip tabs and
/// newlines anywhere in a URL and treat a backslash as a slash, so `/\t/host/` or `/\host` in a
/// `Location` header leads off-site although it starts with one slash; a value that is not plain
/// printable ASCII could not even be sent as a header. So `next` must be a path that starts with
/// exactly one slash, holds only printable ASCII and no backslash, and still does once its
/// percent-escapes are decoded; anything else goes to the overview.
fn safe_next(next: &str) -> &str {
    const MAX: usize = 2048;
    fn local(path: &str) -> bool {
        path.starts_with('/')
            && !path.starts_with("//")
            && !path.contains('\\')
            && path.bytes().all(|b| b.is_ascii_graphic())
    }
    let decoded = percent_encoding::percent_decode_str(next).decode_utf8_lossy();
    let decoded_local = decoded.starts_with('/')
        && !decoded.starts_with("//")
        && !decoded.contains('\\')
        && !decoded.chars().any(|c| c.is_control());
    if next.len() <= MAX && local(next) && decoded_local {
        next
    } else {
        "/"
    }
}

/// Lets a request in if it carries a live credential; otherwise a page asks to log in.
pub(crate) async fn gate(State(d): State<Dashboard>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/login" {
        return next.run(request).await;
    }
    let token = token_of(request.headers());
    match authorize(&d.store, token.as_deref(), Role::Viewer).await {
        Ok(credential) => CURRENT.scope(credential, next.run(request)).await,
        Err(Denied::Store(e)) => PageError::from(e).into_response(),
        Err(_) if request.method() == Method::GET => {
            let wanted = request
                .uri()
                .path_and_query()
                .map_or("/".to_string(), |p| p.to_string());
            Redirect::to(&super::link("/login", &[("next", Some(wanted))])).into_response()
        }
        Err(_) => PageError::unauthorized("请先登录").into_response(),
    }
}

#[derive(serde::Deserialize, Default)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    token: String,
}

fn login_page(node_name: &str, next: &str, failed: Option<&str>) -> Html<String> {
    let body = html! {
        h1 { "登录" }
        @if let Some(message) = failed {
            p.notice-error data-error="login" { (message) }
        }
        form.login method="post" action="/login" {
            label for="token" { "访问令牌（由本节点运维人员用 renda credential add 创建）" }
            input #token type="password" name="token" autocomplete="off" required;
            input type="hidden" name="next" value=(safe_next(next));
            button type="submit" { "登录" }
        }
    };
    page_html(node_name, "登录", None, body)
}

pub(crate) async fn login_form(
    State(d): State<Dashboard>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Html<String> {
    login_page(&d.name, &q.next, None)
}

pub(crate) async fn login(State(d): State<Dashboard>, body: Bytes) -> Response {
    let form: LoginQuery = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(_) => {
            return PageError::bad("token", "登录表单格式有误").into_response();
        }
    };
    match authorize(&d.store, Some(form.token.trim()), Role::Viewer).await {
        Ok(credential) => {
            tracing::info!(name = %credential.name, role = %credential.role, "dashboard login");
            let cookie = format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                form.token.trim()
            );
            (
                [(header::SET_COOKIE, cookie)],
                Redirect::to(safe_next(&form.next)),
            )
                .into_response()
        }
        Err(Denied::Store(e)) => PageError::from(e).into_response(),
        Err(_) => {
            tracing::warn!("dashboard login with an unknown or revoked token");
            (
                StatusCode::UNAUTHORIZED,
                login_page(&d.name, &form.next, Some("令牌无效或已被吊销")),
            )
                .into_response()
        }
    }
}

pub(crate) async fn logout() -> Response {
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_follow_a_login() {
        for kept in [
            "/suggestions?region=330411000000",
            "/records?kind=opinion&status=%E5%8A%9E%E7%90%86%E4%B8%AD",
            "/",
        ] {
            assert_eq!(safe_next(kept), kept);
        }
        // What a browser would follow to another host, as `next` arrives once the query string
        // is decoded: a tab (the fault reported: `/%09/host/`), newlines, backslashes, two
        // slashes, absolute URLs, and the same behind percent-escapes.
        for refused in [
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/\r/evil.example/",
            "\t//evil.example/",
            " //evil.example/",
            "//evil.example/",
            "///evil.example/",
            "/\\evil.example/",
            "\\/evil.example/",
            "/x\\..\\..\\evil",
            "https://evil.example/",
            "http:evil.example",
            "javascript:alert(1)",
            "evil.example/",
            "/%09/evil.example/",
            "/%2F/evil.example/",
            "/%2f%2fevil.example/",
            "/%5Cevil.example/",
            "%2F%2Fevil.example/",
            "/记录",
            "",
        ] {
            assert_eq!(safe_next(refused), "/", "{refused:?}");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(5000))), "/");
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; renda_token=renda_ff".parse().unwrap());
        assert_eq!(token_of(&h).as_deref(), Some("renda_ff"));
        h.insert(header::AUTHORIZATION, "Bearer renda_ee".parse().unwrap());
        assert_eq!(token_of(&h).as_deref(), Some("renda_ee"));
        assert_eq!(token_of(&HeaderMap::new()), None);
    }
}
