//! 账号管理: an admin creates personal accounts (a name, a role, a password), resets their
//! passwords and disables or enables them, in the browser. Passwords are hashed with argon2 on
//! the blocking pool before the write (`access::hash_password`); a reset or a disable ends the
//! account's sessions at once. Credentials made for programs (`renda credential add`) are
//! listed beside the accounts; they are revoked from the command line.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use renda_node::access::{Credential, Role};

use super::forms::{Posted, Refusal, Shown, options};
use super::pages::Params;
use super::{Dashboard, PageError, session};

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&renda_node::calendar::china())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn state_label(c: &Credential) -> &'static str {
    match (c.revoked_at, c.disabled_at) {
        (Some(_), _) => "已吊销",
        (None, Some(_)) => "已停用",
        (None, None) => "有效",
    }
}

/// Which form came back refused, so the message shows beside it.
enum Form {
    Create,
    Reset(String),
    Disable(String),
}

fn page_body(
    all: &[Credential],
    refused: Option<(&Form, &Posted, &Refusal)>,
    done: Option<&str>,
) -> Markup {
    let shown_for = |which: &dyn Fn(&Form) -> bool| match refused {
        Some((form, posted, refusal)) if which(form) => Shown {
            posted: Some(posted),
            refusal: Some(refusal),
        },
        _ => Shown::default(),
    };
    let create = shown_for(&|f| matches!(f, Form::Create));
    let roles = options(&Role::ALL, Role::as_str, Role::label);
    html! {
        h1 { "账号管理" }
        @if let Some(done) = done { p.notice-ok role="status" { (done) } }
        h2 { "新建账号" }
        form.work method="post" action="/accounts" data-form="create-account" {
            (create.refusal_markup())
            (create.guards(None))
            (create.text("account-name", "name", "用户名（也是办理记录上的经办人，如 王店镇人大办 张敏）", true))
            (create.select("account-role", "role", "角色", &roles, "clerk"))
            (create.input("account-password", "password", "初始密码（至少 8 个字符）", "password", "", true))
            button type="submit" data-action="create-account" { "创建账号" }
        }
        h2 { "账号与凭据" }
        table.accounts {
            thead { tr { th { "名称" } th { "角色" } th { "类型" } th { "创建时间" } th { "状态" } th { "操作" } } }
            tbody {
                @for c in all {
                    tr data-account=(c.name) {
                        td { (c.name) }
                        td { (c.role.label()) }
                        td { @if c.has_password { "账号" } @else { "令牌" } }
                        td { (time(c.created_at)) }
                        td data-state=(state_label(c)) { (state_label(c)) }
                        td {
                            @if c.revoked_at.is_none() {
                                @let reset = shown_for(&|f| matches!(f, Form::Reset(n) if *n == c.name));
                                form.inline method="post" action="/accounts/password" {
                                    (reset.refusal_markup())
                                    input type="hidden" name="name" value=(c.name);
                                    @let id = format!("password-{}", c.name);
                                    label for=(id) { "新密码" }
                                    input id=(id) type="password" name="password" autocomplete="new-password" required;
                                    button type="submit" data-action="reset-password" { @if c.has_password { "重置密码" } @else { "设置密码" } }
                                }
                                @let toggle = shown_for(&|f| matches!(f, Form::Disable(n) if *n == c.name));
                                form.inline method="post" action="/accounts/disabled" {
                                    (toggle.refusal_markup())
                                    input type="hidden" name="name" value=(c.name);
                                    input type="hidden" name="disabled" value=(c.disabled_at.is_none());
                                    button type="submit" data-action=(if c.disabled_at.is_none() { "disable" } else { "enable" }) {
                                        @if c.disabled_at.is_none() { "停用" } @else { "启用" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn render(
    d: &Dashboard,
    refused: Option<(&Form, &Posted, &Refusal)>,
    done: Option<&str>,
) -> Result<Html<String>, PageError> {
    let (shown, all) = d
        .read(&Params::default(), |s, _, _| s.credentials())
        .await?;
    Ok(d.page(
        "/accounts",
        "账号管理",
        &shown,
        page_body(&all, refused, done),
    ))
}

/// GET `/accounts`. Admin only.
pub(crate) async fn page(State(d): State<Dashboard>) -> Result<Html<String>, PageError> {
    session::require(Role::Admin)?;
    render(&d, None, None).await
}

/// A password hashed on the blocking pool.
async fn hashed(password: String) -> Result<String, Refusal> {
    tokio::task::spawn_blocking(move || renda_node::access::hash_password(&password))
        .await
        .map_err(|_| Refusal::field("password", "无法计算密码摘要"))?
        .map_err(Refusal::from)
}

/// Answers a form: back to the page with what was done, or the form again with why not.
async fn answer(
    d: &Dashboard,
    form: Form,
    posted: &Posted,
    result: Result<String, Refusal>,
) -> Result<Response, PageError> {
    match result {
        Ok(done) => Ok((StatusCode::OK, render(d, None, Some(&done)).await?).into_response()),
        Err(refusal) => Ok((
            StatusCode::BAD_REQUEST,
            render(d, Some((&form, posted, &refusal)), None).await?,
        )
            .into_response()),
    }
}

/// POST `/accounts`: a new account.
pub(crate) async fn create(
    State(d): State<Dashboard>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let admin = session::require(Role::Admin)?;
    let posted = Posted::parse(&body)?;
    let result = async {
        let name = posted.text("name", "用户名")?;
        let role = Role::parse("role", posted.get("role"))?;
        let hash = hashed(posted.get("password").to_string()).await?;
        let key = posted.form_key().to_string();
        renda_node::store::check_form_key(&key)?;
        let account = name.clone();
        let by = admin.name.clone();
        let created = d
            .store
            .write(move |tx| {
                if tx.form_applied(&key)?.is_some() {
                    return Ok(false);
                }
                tx.add_account(&account, role, &hash)?;
                tx.note_form_applied(&key, &by, None)?;
                Ok(true)
            })
            .await;
        match created {
            Ok(true) => {
                tracing::info!(account = %name, %role, by = %admin.name, "account created on the dashboard");
                Ok(format!("已创建账号“{name}”（{}）。", role.label()))
            }
            Ok(false) => Ok(format!("账号“{name}”已经创建，没有重复创建。")),
            Err(e) => Err(Refusal::from_store(e)?),
        }
    };
    answer(&d, Form::Create, &posted, result.await).await
}

/// A store failure met while answering a form: shown beside the form like a refusal (the
/// store logged it as the operator's business when it became a `PageError`).
impl From<PageError> for Refusal {
    fn from(e: PageError) -> Refusal {
        Refusal {
            field: None,
            message: e.message,
            rule: None,
        }
    }
}

/// POST `/accounts/password`: an admin sets an account's password, which logs it out.
pub(crate) async fn reset(
    State(d): State<Dashboard>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let admin = session::require(Role::Admin)?;
    let posted = Posted::parse(&body)?;
    let name = posted.get("name").to_string();
    let result = async {
        let hash = hashed(posted.get("password").to_string()).await?;
        let account = name.clone();
        d.store
            .write(move |tx| tx.set_password(&account, &hash))
            .await
            .map_err(Refusal::from_store)
            .map_err(|r| r.unwrap_or_else(Refusal::from))?;
        tracing::info!(account = %name, by = %admin.name, "password set on the dashboard");
        Ok(format!("已设置“{name}”的密码，其已登录的会话全部退出。"))
    }
    .await;
    answer(&d, Form::Reset(name.clone()), &posted, result).await
}

/// POST `/accounts/disabled`: an admin disables an account or enables it again.
pub(crate) async fn disable(
    State(d): State<Dashboard>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let admin = session::require(Role::Admin)?;
    let posted = Posted::parse(&body)?;
    let name = posted.get("name").to_string();
    let result = async {
        let disabled = match posted.get("disabled") {
            "true" => true,
            "false" => false,
            _ => return Err(Refusal::field("disabled", "须为 true 或 false")),
        };
        if disabled && name == admin.name {
            return Err(Refusal::field("name", "不能停用自己正在使用的账号"));
        }
        let account = name.clone();
        d.store
            .write(move |tx| tx.set_disabled(&account, disabled))
            .await
            .map_err(Refusal::from_store)
            .map_err(|r| r.unwrap_or_else(Refusal::from))?;
        tracing::info!(account = %name, disabled, by = %admin.name, "account disabled or enabled on the dashboard");
        Ok(if disabled {
            format!("已停用“{name}”，其已登录的会话全部退出。")
        } else {
            format!("已启用“{name}”。")
        })
    }
    .await;
    answer(&d, Form::Disable(name.clone()), &posted, result).await
}
