//! Logging in to the dashboard, and the role each page needs.
//!
//! Staff log in with a personal account's name and password (argon2-hashed; an admin creates,
//! resets and disables accounts on the 账号管理 page), or with a credential's token (`renda
//! credential add`), and get a server-side session: the cookie holds a random session id, never the token, in an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` under HTTPS), so scripts cannot read it and no other site
//! can make the browser send it with a form. A session ends after [`SESSION_TTL`] or at logout,
//! which deletes it in the store. A program may send `Authorization: Bearer` instead. Every
//! request but the login page's is checked against the store, so a revoked credential stops
//! working at once, sessions included. Failed logins are limited per address
//! ([`LoginLimiter`]). The credential of the request in hand is kept in a task local for the
//! page frame, which shows who is logged in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use renda_node::access::{Credential, Role};

use super::{Dashboard, PageError, page_html};
use crate::auth::{Denied, authorize, bearer};

const COOKIE: &str = "renda_session";

/// How long a dashboard session lasts: a working day and its evening.
pub const SESSION_TTL: chrono::Duration = chrono::Duration::hours(12);

/// Failed logins an address may make within [`LOGIN_WINDOW`] before it must wait.
const LOGIN_FAILURES: u32 = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(300);

/// Failed logins per address: a token is 256 random bits, so this is about keeping a guesser
/// from loading the node and the log, not about the odds of guessing.
#[derive(Default)]
pub(crate) struct LoginLimiter {
    failures: std::sync::Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginLimiter {
    /// Most addresses tracked at once; past it the oldest windows are dropped.
    const MAX_ADDRESSES: usize = 10_000;

    /// IPv6 hosts get a /64 each, so an address is counted by its /64.
    fn key(addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V6(v6) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
            v4 => v4,
        }
    }

    /// Counts a login attempt from `addr`, or says how long it must wait. Counting in the same
    /// lock as the check means parallel attempts cannot all slip through; a success forgets
    /// the count.
    fn attempt(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut failures) = self.failures.lock() else {
            return Ok(());
        };
        if failures.len() >= Self::MAX_ADDRESSES {
            failures.retain(|_, (_, since)| now.duration_since(*since) < LOGIN_WINDOW);
            if failures.len() >= Self::MAX_ADDRESSES {
                failures.clear();
            }
        }
        let entry = failures.entry(Self::key(addr)).or_insert((0, now));
        let over = now.duration_since(entry.1);
        if over >= LOGIN_WINDOW {
            *entry = (0, now);
        }
        if entry.0 >= LOGIN_FAILURES {
            return Err(LOGIN_WINDOW - now.duration_since(entry.1));
        }
        entry.0 += 1;
        Ok(())
    }

    fn succeeded(&self, addr: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&Self::key(addr));
        }
    }
}

tokio::task_local! {
    static CURRENT: Credential;
    /// How many things wait in 待办, for a clerk's page.
    static TODO: u64;
}

/// What waits in 待办, counted for the request in hand when a clerk asked for a page.
pub(crate) fn todo_count() -> Option<u64> {
    TODO.try_with(|n| *n).ok()
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

/// What a request presents: a bearer token, or a session cookie.
#[derive(Debug, PartialEq, Eq)]
enum Presented {
    Token(String),
    Session(String),
}

fn presented(headers: &HeaderMap) -> Option<Presented> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(token) = bearer(auth) {
        return Some(Presented::Token(token.to_string()));
    }
    session_of(headers).map(Presented::Session)
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The live credential a request presents, with at least the viewer role.
async fn credential_of(d: &Dashboard, presented: Option<Presented>) -> Result<Credential, Denied> {
    match presented {
        Some(Presented::Session(id)) => d
            .store
            .read(move |s| s.session_credential(&id, chrono::Utc::now()))
            .await?
            .ok_or(Denied::Unauthenticated(
                "the session is unknown, expired or revoked",
            )),
        Some(Presented::Token(token)) => authorize(&d.store, Some(&token), Role::Viewer).await,
        None => authorize(&d.store, None, Role::Viewer).await,
    }
}

fn session_cookie(d: &Dashboard, value: &str, max_age: i64) -> String {
    let secure = if d.secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}")
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
    // The login page, and the pages a QR code opens on a phone, which check their own token.
    let path = request.uri().path();
    if path == "/login" || path.starts_with("/s/") || path.starts_with("/o/") {
        return next.run(request).await;
    }
    let presented = presented(request.headers());
    match credential_of(&d, presented).await {
        Ok(credential) => {
            // A clerk's pages show in the tab bar how much waits; counting is a handful of
            // indexed counts, read on a reader thread beside any write.
            let todo = if credential.role.allows(Role::Clerk) && request.method() == Method::GET {
                let (me, today) = (d.me, renda_node::calendar::today());
                d.store
                    .read(move |s| super::workbench::todo::total(s, me, today))
                    .await
                    .ok()
            } else {
                None
            };
            match todo {
                Some(n) => {
                    CURRENT
                        .scope(credential, TODO.scope(n, next.run(request)))
                        .await
                }
                None => CURRENT.scope(credential, next.run(request)).await,
            }
        }
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
    /// A personal account's name and password.
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// The hash a login for a name with no account is checked against, so that such a login takes
/// as long as one with a wrong password and the form does not tell which names exist.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        renda_node::access::hash_password("no account has this password").unwrap_or_default()
    })
}

/// The live account `name` and `password` log in to, checked on the blocking pool (argon2 is
/// slow on purpose).
async fn account_login(
    d: &Dashboard,
    name: String,
    password: String,
) -> Result<Option<Credential>, renda_node::store::StoreError> {
    let lookup = name.clone();
    let account = d.store.read(move |s| s.account(&lookup)).await?;
    // Each check takes argon2's 19 MiB and a core for a moment: a few at a time, whoever asks,
    // so a burst of logins from many addresses queues instead of exhausting the machine.
    static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let _permit = CHECKS.acquire().await;
    let checked = tokio::task::spawn_blocking(move || match account {
        Some((credential, hash)) => {
            renda_node::access::verify_password(&password, &hash).then_some(credential)
        }
        None => {
            renda_node::access::verify_password(&password, decoy_hash());
            None
        }
    })
    .await;
    Ok(checked.ok().flatten())
}

fn login_page(node_name: &str, next: &str, failed: Option<&str>) -> Html<String> {
    let body = html! {
        h1 { "登录" }
        @if let Some(message) = failed {
            p.notice-error data-error="login" { (message) }
        }
        form.login.account method="post" action="/login" {
            label for="name" { "用户名" }
            input #name type="text" name="name" autocomplete="username" required autofocus;
            label for="password" { "密码" }
            input #password type="password" name="password" autocomplete="current-password" required;
            input type="hidden" name="next" value=(safe_next(next));
            button type="submit" { "登录" }
        }
        p.meta { "账号由本节点管理员在“账号管理”页创建；忘记密码请找管理员重置。" }
        form.login.token method="post" action="/login" {
            label for="token" { "或用访问令牌登录（运维人员用 renda credential add 创建）" }
            input #token type="password" name="token" autocomplete="off" required;
            input type="hidden" name="next" value=(safe_next(next));
            button type="submit" { "用令牌登录" }
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

pub(crate) async fn login(
    State(d): State<Dashboard>,
    ConnectInfo(from): ConnectInfo<crate::https::ClientAddr>,
    body: Bytes,
) -> Response {
    let addr = from.0.ip();
    if let Err(wait) = d.logins.attempt(addr, Instant::now()) {
        tracing::warn!(%addr, "dashboard logins from this address are paused after repeated failures");
        let minutes = wait.as_secs().div_ceil(60);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())],
            login_page(
                &d.name,
                "/",
                Some(&format!("登录失败次数过多，请 {minutes} 分钟后再试")),
            ),
        )
            .into_response();
    }
    let form: LoginQuery = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(_) => {
            return PageError::bad("token", "登录表单格式有误").into_response();
        }
    };
    let proven = if form.token.trim().is_empty() {
        match account_login(&d, form.name.trim().to_string(), form.password.clone()).await {
            Ok(Some(credential)) => Ok(credential),
            Ok(None) => Err(Denied::Unauthenticated("unknown account or wrong password")),
            Err(e) => Err(Denied::Store(e)),
        }
    } else {
        authorize(&d.store, Some(form.token.trim()), Role::Viewer).await
    };
    let by_password = form.token.trim().is_empty();
    match proven {
        Ok(credential) => {
            d.logins.succeeded(addr);
            let name = credential.name.clone();
            let opened = d
                .store
                .write(move |tx| tx.open_session(&name, chrono::Utc::now(), SESSION_TTL))
                .await;
            let id = match opened {
                Ok(id) => id,
                Err(e) => return PageError::from(e).into_response(),
            };
            tracing::info!(name = %credential.name, role = %credential.role, %addr, "dashboard login");
            let cookie = session_cookie(&d, &id, SESSION_TTL.num_seconds());
            (
                [(header::SET_COOKIE, cookie)],
                Redirect::to(safe_next(&form.next)),
            )
                .into_response()
        }
        Err(Denied::Store(e)) => PageError::from(e).into_response(),
        Err(_) if by_password => {
            tracing::warn!(%addr, "dashboard login with an unknown account or a wrong password");
            (
                StatusCode::UNAUTHORIZED,
                login_page(&d.name, &form.next, Some("用户名或密码不对，或账号已停用")),
            )
                .into_response()
        }
        Err(_) => {
            tracing::warn!(%addr, "dashboard login with an unknown or revoked token");
            (
                StatusCode::UNAUTHORIZED,
                login_page(&d.name, &form.next, Some("令牌无效或已被吊销")),
            )
                .into_response()
        }
    }
}

/// Ends the session in the store, so the cookie is worthless even if it was copied.
pub(crate) async fn logout(State(d): State<Dashboard>, request: Request) -> Response {
    if let Some(id) = session_of(request.headers())
        && let Err(e) = d.store.write(move |tx| tx.close_session(&id)).await
    {
        return PageError::from(e).into_response();
    }
    (
        [(header::SET_COOKIE, session_cookie(&d, "", 0))],
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
    fn a_request_presents_a_bearer_token_or_a_session_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; renda_session=session_ff".parse().unwrap(),
        );
        assert_eq!(presented(&h), Some(Presented::Session("session_ff".into())));
        h.insert(header::AUTHORIZATION, "Bearer renda_ee".parse().unwrap());
        assert_eq!(presented(&h), Some(Presented::Token("renda_ee".into())));
        assert_eq!(presented(&HeaderMap::new()), None);
        // The old cookie held the token itself; it is no longer read.
        let mut old = HeaderMap::new();
        old.insert(header::COOKIE, "renda_token=renda_ff".parse().unwrap());
        assert_eq!(presented(&old), None);
    }

    #[test]
    fn failed_logins_pause_an_address_for_the_window() {
        let limiter = LoginLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let start = Instant::now();
        for _ in 0..LOGIN_FAILURES {
            assert_eq!(limiter.attempt(a, start), Ok(()));
        }
        assert!(limiter.attempt(a, start).is_err());
        assert_eq!(
            limiter.attempt(b, start),
            Ok(()),
            "another address is not paused"
        );
        assert_eq!(
            limiter.attempt(a, start + LOGIN_WINDOW),
            Ok(()),
            "the pause ends"
        );
        limiter.succeeded(a);
        assert_eq!(limiter.attempt(a, start), Ok(()));
        // One IPv6 host is its /64.
        let (x, y): (IpAddr, IpAddr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::ffff".parse().unwrap(),
        );
        for _ in 0..LOGIN_FAILURES {
            limiter.attempt(x, start).unwrap();
        }
        assert!(limiter.attempt(y, start).is_err());
    }
}
