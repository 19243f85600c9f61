//! The HTTP dashboard a node serves to its staff and leaders, in Chinese: the subtree's overview,
//! suggestion handling, activities and opinions, quota compliance, delegates' duty records and
//! sync health, with drill-down from any region to its children and from a number to the
//! records behind it where this node holds them.
//!
//! Pages are HTML made on the server ([`maud`] escapes every value) with SVG charts drawn here
//! ([`charts`]); nothing is loaded from outside the node, so a dashboard on an office network
//! with no internet works the same. Every number carries a `data-metric` attribute naming what it
//! counts, which is how the browser tests read it back against the query API.
//!
//! - [`pages`]: one handler per page, each reading what it shows in one call to the store.
//! - [`charts`]: bar charts, stacked columns and shares as SVG.
//! - [`session`]: logging in with an account's name and password or a credential's token into
//!   a server-side session (rate-limited per address), and the role each page needs: viewer to
//!   read, clerk to work on the workbench, admin for accounts and the audit log.
//! - [`workbench`]: the forms of every office operation, 待办, imports; [`forms`] what they share
//!   (posted values kept, labelled inputs, the idempotency key and the version guard).
//! - [`exports`]: record lists, 履职档案 and the suggestion handling table as .xlsx.
//! - [`accounts`]: 账号管理, where admins create, reset and disable accounts.
//! - [`public`]: the pages a QR code opens on a phone, with no login: sign-in and 扫码反映.

mod accounts;
mod charts;
mod exports;
mod forms;
mod pages;
mod public;
mod session;
mod workbench;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use renda_node::region::RegionCode;
use renda_node::store::{StoreError, StoreHandle};
use tokio::net::TcpListener;

/// What every page handler shares.
#[derive(Clone)]
pub struct Dashboard {
    store: StoreHandle,
    /// The region this node serves: the root of every page's region chain.
    me: RegionCode,
    /// The node's name, shown in every page's header.
    name: String,
    /// Served over HTTPS: session cookies are then `Secure`.
    secure: bool,
    /// Failed logins per address.
    logins: std::sync::Arc<session::LoginLimiter>,
    /// The federation's routes, to count what waits to reach the parent.
    policy: renda_node::route::RoutePolicy,
    /// Uploaded rosters waiting for their confirmation.
    imports: std::sync::Arc<workbench::imports::Pending>,
    /// The key QR codes are signed with, read from the store on first use.
    qr_key: std::sync::Arc<tokio::sync::OnceCell<Vec<u8>>>,
    /// Attempts on the pages a QR code opens, per address and per delegate.
    attempts: std::sync::Arc<public::Attempts>,
}

impl Dashboard {
    pub fn new(store: StoreHandle, me: RegionCode, name: impl Into<String>) -> Dashboard {
        Dashboard {
            store,
            me,
            name: name.into(),
            secure: false,
            logins: Default::default(),
            policy: Default::default(),
            imports: Default::default(),
            qr_key: Default::default(),
            attempts: Default::default(),
        }
    }

    /// The routes the node's links use (`LinkConfig::policy`).
    pub fn with_policy(mut self, policy: renda_node::route::RoutePolicy) -> Dashboard {
        self.policy = policy;
        self
    }
}

/// Every page of the dashboard.
pub fn router(dashboard: Dashboard) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/suggestions", get(pages::suggestions))
        .route("/activities", get(pages::activities))
        .route("/quotas", get(pages::quotas))
        .route("/sync", get(pages::sync_health))
        .route("/records", get(pages::records))
        .route("/records/{id}", get(pages::record))
        .route("/delegates/{id}", get(pages::duty_record))
        .route("/reports/suggestions", get(pages::reports::suggestions))
        .route("/reports/delegates/{id}", get(pages::reports::delegate))
        .route("/records/{id}/supervise", post(pages::supervise))
        .route("/records/{id}/steps/{step}", post(workbench::step))
        .route("/todo", get(workbench::todo::page))
        .merge(workbench::new_record_routes())
        .route(
            "/import",
            get(workbench::imports::page)
                .post(workbench::imports::upload)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::spreadsheet::MAX_FILE_BYTES + 64 * 1024,
                )),
        )
        .route("/import/apply", post(workbench::imports::confirm))
        .route("/accounts", get(accounts::page).post(accounts::create))
        .route("/accounts/password", post(accounts::reset))
        .route("/accounts/disabled", post(accounts::disable))
        .route("/audit", get(pages::audit))
        .route(
            "/s/{token}",
            get(public::sign_in_page).post(public::sign_in),
        )
        .route(
            "/o/{token}",
            get(public::opinion_page).post(public::opinion),
        )
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            dashboard.clone(),
            session::gate,
        ))
        .with_state(dashboard)
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the dashboard over plain HTTP on `listener` until `shutdown` completes. Callers keep
/// plain HTTP to loopback (`https::check_plain`).
pub async fn serve(
    listener: TcpListener,
    dashboard: Dashboard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(dashboard).into_make_service_with_connect_info::<crate::https::ClientAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves the dashboard over HTTPS with `tls` until `shutdown` completes; session cookies are
/// `Secure`.
pub async fn serve_tls(
    listener: TcpListener,
    mut dashboard: Dashboard,
    tls: std::sync::Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    dashboard.secure = true;
    let listener = crate::https::TlsListener::new(listener, tls)?;
    axum::serve(
        listener,
        router(dashboard).into_make_service_with_connect_info::<crate::https::ClientAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A page that could not be shown, with the status and the sentence staff read.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    /// A request naming something wrong: the message starts with the field and says the rule.
    fn bad(field: &str, rule: impl std::fmt::Display) -> PageError {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: format!("{field}：{rule}"),
        }
    }

    fn not_found(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    fn unauthorized(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    fn conflict(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    /// Something in the node failed, not the request: logged for the operator, and the page says
    /// so.
    fn internal(detail: String) -> PageError {
        tracing::warn!(error = %detail, "the dashboard could not answer");
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "本节点处理请求时出错，请联系运维人员查看日志".to_string(),
        }
    }

    fn forbidden(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> PageError {
        match e {
            StoreError::NotFound { kind, id } => {
                PageError::not_found(format!("本节点没有这条记录（{kind} {id}）"))
            }
            StoreError::Invalid(v) => PageError::bad(&v.field, v.rule),
            e @ StoreError::NewerKind { .. } => PageError {
                status: StatusCode::CONFLICT,
                message: e.to_string(),
            },
            other => {
                // The page fails, and the store failing is the operator's business.
                tracing::error!(error = %other, "the dashboard could not read the store");
                PageError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "读取本节点数据时出错，请联系运维人员查看日志".to_string(),
                }
            }
        }
    }
}

/// Longest message an error page shows: messages quote inputs clipped where they are made, and
/// this guards a page against one that was not.
const PAGE_MESSAGE_CHARS: usize = 500;

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let message = renda_node::validate::clip(&self.message, PAGE_MESSAGE_CHARS);
        let title = match self.status {
            StatusCode::BAD_REQUEST => "请求有误",
            StatusCode::NOT_FOUND => "未找到",
            StatusCode::FORBIDDEN => "无权操作",
            StatusCode::UNAUTHORIZED => "请先登录",
            StatusCode::CONFLICT => "未能办理",
            _ => "出错了",
        };
        let body = html! {
            section.error data-status=(self.status.as_u16()) {
                h1 { (title) }
                p.message { (message) }
                p { a href="/" { "返回概览" } }
            }
        };
        (self.status, page_html("", title, None, body)).into_response()
    }
}

/// The tabs of every page, with the path each opens.
const TABS: &[(&str, &str)] = &[
    ("/", "概览"),
    ("/suggestions", "建议办理"),
    ("/activities", "活动与民情"),
    ("/quotas", "履职达标"),
    ("/sync", "同步状况"),
];

/// Tabs as `(path, label)`.
type Tabs = &'static [(&'static str, &'static str)];

/// The tabs a clerk sees first (待办) and those only an admin sees.
fn role_tabs() -> (Tabs, Tabs) {
    use renda_node::access::Role;
    match session::current() {
        Some(c) if c.role.allows(Role::Admin) => (
            &[("/todo", "待办")],
            &[("/accounts", "账号管理"), ("/audit", "审计日志")],
        ),
        Some(c) if c.role.allows(Role::Clerk) => (&[("/todo", "待办")], &[]),
        _ => (&[], &[]),
    }
}

const STYLE: &str = include_str!("style.css");

/// Where a page is: the node, and the region chain from the node down to the region shown.
pub(crate) struct Place<'a> {
    /// The path of the current tab, to mark it.
    tab: &'a str,
    /// `(region, name)` from this node down to the region shown.
    crumbs: &'a [(RegionCode, String)],
}

fn page_html(
    node_name: &str,
    title: &str,
    place: Option<&Place<'_>>,
    body: Markup,
) -> Html<String> {
    let shown = place.and_then(|p| p.crumbs.last()).map(|(r, _)| *r);
    let markup = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) @if !node_name.is_empty() { " · " (node_name) } }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    @if let Some(who) = session::current() {
                        div.who data-user=(who.name) data-role=(who.role.as_str()) {
                            (who.name) "（" (who.role.label()) "）"
                            form method="post" action="/logout" { button type="submit" { "退出" } }
                        }
                    }
                    div.brand { "人大代表履职数据平台" @if !node_name.is_empty() { span.node { (node_name) } } }
                    @if let Some(place) = place {
                        nav.tabs {
                            @let (first, last) = role_tabs();
                            @for (path, label) in first.iter().chain(TABS).chain(last) {
                                @let href = if TABS.iter().any(|(p, _)| p == path) {
                                    link(path, &[("region", shown.map(|r| r.to_string()))])
                                } else {
                                    path.to_string()
                                };
                                a.active[*path == place.tab] href=(href) data-tab=(path) {
                                    (label)
                                    @if let (true, Some(n)) = (*path == "/todo", session::todo_count()) {
                                        " " span.badge data-metric="todo.total" { (n) }
                                    }
                                }
                            }
                        }
                        nav.crumbs aria-label="地区" {
                            @for (i, (region, name)) in place.crumbs.iter().enumerate() {
                                @if i > 0 { span.sep { "›" } }
                                a href=(link(place.tab, &[("region", Some(region.to_string()))])) data-region=(region) {
                                    (display_name(name, region))
                                }
                            }
                        }
                    }
                }
                main { (body) }
                footer { "本页由本节点生成，不加载任何外部资源。" }
            }
        }
    };
    Html(markup.into_string())
}

/// A region's name as its node calls itself, or its code when no name has arrived.
fn display_name(name: &str, region: &RegionCode) -> String {
    if name.is_empty() {
        region.to_string()
    } else {
        name.to_string()
    }
}

/// A path with its query, leaving out empty parameters.
fn link(path: &str, params: &[(&str, Option<String>)]) -> String {
    let present: Vec<(&str, &str)> = params
        .iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    if present.is_empty() {
        return path.to_string();
    }
    // Encoding plain pairs of strings cannot fail.
    let query = serde_urlencoded::to_string(&present).unwrap_or_default();
    format!("{path}?{query}")
}

/// A share as staff read it: `87.5%`, or a dash when there is nothing to count yet.
fn percent(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "—".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_their_parameters_and_drop_empty_ones() {
        assert_eq!(link("/records", &[("kind", None)]), "/records");
        assert_eq!(
            link(
                "/records",
                &[
                    ("kind", Some("opinion".into())),
                    ("status", Some(String::new())),
                    ("q", Some("a&b=c 中".into())),
                ]
            ),
            "/records?kind=opinion&q=a%26b%3Dc+%E4%B8%AD"
        );
    }

    #[test]
    fn percentages_show_a_dash_when_nothing_is_counted() {
        assert_eq!(percent(None), "—");
        assert_eq!(percent(Some(0.875)), "87.5%");
    }
}
