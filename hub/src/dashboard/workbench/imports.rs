//! 导入: a delegate roster or a venue list from .xlsx or .csv. The upload is read and planned on
//! a reader (`renda_node::import::plan`) and shown as a preview that names every bad cell by
//! row, column and rule and every row that would update a registered person; nothing is
//! written until the clerk confirms a preview with no problem, and then the whole file is
//! imported in one transaction (`import::apply`, which plans again against what the store holds
//! by then). The uploaded table waits for the confirmation in memory, for the clerk who
//! uploaded it, for [`PENDING_FOR`]; a node restarted meanwhile asks for the file again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use renda_node::access::Role;
use renda_node::import::{ImportKind, Outcome, Plan, Table};

use super::apply;
use crate::dashboard::forms::{Posted, Refusal, Shown, new_form_key};
use crate::dashboard::pages::Params;
use crate::dashboard::{Dashboard, PageError, session};

/// How long an uploaded file waits for its confirmation.
pub(crate) const PENDING_FOR: Duration = Duration::from_secs(30 * 60);

/// Most uploads waiting at once, over every clerk; the oldest go first.
const MAX_PENDING: usize = 64;

/// Uploaded tables waiting for their confirmation, by a random token.
#[derive(Default)]
pub(crate) struct Pending {
    tables: Mutex<HashMap<String, Upload>>,
}

struct Upload {
    at: Instant,
    by: String,
    kind: ImportKind,
    file: String,
    table: Table,
}

impl Pending {
    fn put(&self, upload: Upload) -> String {
        let token = new_form_key();
        if let Ok(mut tables) = self.tables.lock() {
            tables.retain(|_, u| u.at.elapsed() < PENDING_FOR);
            while tables.len() >= MAX_PENDING {
                let Some(oldest) = tables
                    .iter()
                    .min_by_key(|(_, u)| u.at)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                tables.remove(&oldest);
            }
            tables.insert(token.clone(), upload);
        }
        token
    }

    /// The upload `token` names, if it is the clerk's own and still waits.
    fn get(&self, token: &str, by: &str) -> Option<(ImportKind, String, Table)> {
        let tables = self.tables.lock().ok()?;
        let u = tables.get(token)?;
        (u.by == by && u.at.elapsed() < PENDING_FOR)
            .then(|| (u.kind, u.file.clone(), u.table.clone()))
    }

    fn forget(&self, token: &str) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.remove(token);
        }
    }
}

fn kinds() -> Vec<(String, String)> {
    ImportKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), k.label().to_string()))
        .collect()
}

fn upload_form(shown: &Shown<'_>) -> Markup {
    html! {
        form.work.upload method="post" action="/import" enctype="multipart/form-data" {
            (shown.refusal_markup())
            (shown.select("kind", "kind", "导入的内容", &kinds(), "roster"))
            div.field {
                label for="file" { "文件（.xlsx 或 .csv，第一行为表头）" }
                input #file type="file" name="file" accept=".xlsx,.csv" required;
            }
            button type="submit" data-action="preview" { "预览" }
        }
        h2 { "表头" }
        p.meta { "代表名册：姓名、性别、职业（必填），出生年月、民族、党派、手机号码、身份证号、届次、选区、联络站（可选）。届次留空则只登记人员；联络站填本节点已登记的阵地名称。" }
        p.meta { "阵地名单：名称、类型（必填；代表联络站、代表之家、代表工作室、全过程人民民主实践点），地区代码、地址（可选）。" }
        p.meta { "与已登记的记录按以下方式匹配：代表按身份证号（有则比对其摘要），否则按姓名和出生年份；阵地按名称。同一文件再导入一次不会作任何改动。" }
    }
}

/// GET `/import`.
pub(crate) async fn page(State(d): State<Dashboard>) -> Result<Html<String>, PageError> {
    session::require(Role::Clerk)?;
    let (shown, ()) = d.read(&Params::default(), |_, _, _| Ok(())).await?;
    Ok(d.page(
        "/todo",
        "导入名册",
        &shown,
        html! { h1 { "导入名册" } (upload_form(&Shown::default())) },
    ))
}

fn outcome_cell(outcome: &Outcome) -> Markup {
    match outcome {
        Outcome::Create => html! { td data-outcome="create" { "新建" } },
        Outcome::Update { changes, .. } => html! {
            td data-outcome="update" { "更新：" (changes.join("；")) }
        },
        Outcome::Same { .. } => html! { td data-outcome="same" { "无变化" } },
    }
}

fn preview(plan: &Plan, file: &str, token: Option<&str>) -> Markup {
    let created = plan.count(|o| matches!(o, Outcome::Create));
    let updated = plan.count(|o| matches!(o, Outcome::Update { .. }));
    let same = plan.count(|o| matches!(o, Outcome::Same { .. }));
    html! {
        h1 { "导入预览：" (plan.kind.label()) }
        p.meta { "文件：" (file) "。匹配方式：" (plan.key) "。" }
        @if plan.problems.is_empty() {
            p.notice-ok data-preview="ok" {
                "没有发现问题。确认后将新建 " span data-metric="import.create" { (created) }
                " 条、更新 " span data-metric="import.update" { (updated) }
                " 条，" span data-metric="import.same" { (same) } " 条无变化。"
            }
            @if let Some(token) = token {
                form.work method="post" action="/import/apply" {
                    input type="hidden" name="form_key" value=(new_form_key());
                    input type="hidden" name="upload" value=(token);
                    button type="submit" data-action="import" { "确认导入" }
                }
            }
        } @else {
            p.form-error role="alert" data-preview="problems" {
                "发现 " span data-metric="import.problems" { (plan.problems.len()) }
                " 处问题，未导入任何一行。请在文件中改正后重新上传。"
            }
            table.problems {
                thead { tr { th { "行" } th { "列" } th { "问题" } } }
                tbody {
                    @for p in &plan.problems {
                        tr data-row=(p.row) data-column=(p.column) { td.n { (p.row) } td { (p.column) } td { (p.rule) } }
                    }
                }
            }
        }
        @if !plan.rows.is_empty() {
            h2 { "逐行结果" }
            table.plan {
                thead { tr { th { "行" } th { "名称" } th { "结果" } } }
                tbody {
                    @for r in &plan.rows {
                        tr data-row=(r.row) { td.n { (r.row) } td { (r.label) } (outcome_cell(&r.outcome)) }
                    }
                }
            }
        }
        p { a href="/import" { "重新上传" } }
    }
}

/// POST `/import` (multipart): the file read and planned, and the preview.
pub(crate) async fn upload(
    State(d): State<Dashboard>,
    mut form: Multipart,
) -> Result<Response, PageError> {
    let credential = session::require(Role::Clerk)?;
    let mut kind = ImportKind::Roster;
    let mut file: Option<(String, Vec<u8>)> = None;
    let refused = |d: &Dashboard, refusal: Refusal| {
        let d = d.clone();
        async move {
            let (shown, ()) = d.read(&Params::default(), |_, _, _| Ok(())).await?;
            let shown_form = Shown {
                posted: None,
                refusal: Some(&refusal),
            };
            let body = html! { h1 { "导入名册" } (upload_form(&shown_form)) };
            Ok::<_, PageError>(
                (
                    StatusCode::BAD_REQUEST,
                    d.page("/todo", "导入名册", &shown, body),
                )
                    .into_response(),
            )
        }
    };
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                return refused(
                    &d,
                    Refusal::field("file", format!("上传的表单无法读取：{e}")),
                )
                .await;
            }
        };
        match field.name() {
            Some("kind") => {
                let text = field.text().await.unwrap_or_default();
                kind = match ImportKind::parse("kind", &text) {
                    Ok(k) => k,
                    Err(e) => return refused(&d, e.into()).await,
                };
            }
            Some("file") => {
                let name = field.file_name().unwrap_or("").to_string();
                match field.bytes().await {
                    Ok(bytes) => file = Some((name, bytes.to_vec())),
                    Err(e) => {
                        return refused(
                            &d,
                            Refusal::field("file", format!("文件未能完整上传：{e}")),
                        )
                        .await;
                    }
                }
            }
            _ => {}
        }
    }
    let Some((name, bytes)) = file else {
        return refused(&d, Refusal::field("file", "请选择要导入的文件")).await;
    };
    let table =
        match tokio::task::spawn_blocking(move || crate::spreadsheet::read_table(&bytes)).await {
            Ok(Ok(table)) => table,
            Ok(Err(e)) => return refused(&d, e.into()).await,
            Err(_) => return refused(&d, Refusal::field("file", "文件无法读取")).await,
        };
    let planned = table.clone();
    let (shown, plan) = d
        .read(&Params::default(), move |s, _, _| {
            renda_node::import::plan(s, kind, &planned)
        })
        .await?;
    let token = plan.problems.is_empty().then(|| {
        d.imports.put(Upload {
            at: Instant::now(),
            by: credential.name.clone(),
            kind,
            file: name.clone(),
            table,
        })
    });
    let status = if plan.problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((
        status,
        d.page(
            "/todo",
            "导入预览",
            &shown,
            preview(&plan, &name, token.as_deref()),
        ),
    )
        .into_response())
}

/// POST `/import/apply`: the confirmed upload imported in one transaction, once.
pub(crate) async fn confirm(
    State(d): State<Dashboard>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let credential = session::require(Role::Clerk)?;
    let posted = Posted::parse(&body)?;
    let token = posted.get("upload").to_string();
    let Some((kind, file, table)) = d.imports.get(&token, &credential.name) else {
        return Err(PageError::bad(
            "upload",
            "这次上传已经过期或已导入（上传后 30 分钟内有效，节点重启后失效），请重新上传文件",
        ));
    };
    let counted = std::sync::Arc::new(Mutex::new(None));
    let count = counted.clone();
    let outcome = apply(&d, &credential.name, &posted, None, move |tx, user| {
        let done = renda_node::import::apply(tx, user, kind, &table)?;
        if let Ok(mut c) = count.lock() {
            *c = Some(done);
        }
        // The form is noted with no record of its own: an import writes many.
        Ok(renda_node::record::RecordId::nil())
    })
    .await?;
    let counted = counted.lock().ok().and_then(|c| c.clone());
    let (shown, ()) = d.read(&Params::default(), |_, _, _| Ok(())).await?;
    match outcome {
        Ok(super::Applied::Done(_)) | Ok(super::Applied::Again(_)) | Ok(super::Applied::Moved) => {
            d.imports.forget(&token);
            tracing::info!(file, kind = kind.as_str(), by = %credential.name, "imported on the workbench");
            let body = html! {
                h1 { "导入完成" }
                p.notice-ok role="status" data-imported=(kind.as_str()) {
                    "“" (file) "”已导入"
                    @if let Some(c) = &counted {
                        "：新建 " span data-metric="import.created" { (c.created) }
                        " 条，更新 " span data-metric="import.updated" { (c.updated) }
                        " 条，" span data-metric="import.unchanged" { (c.unchanged) } " 条无变化"
                    } @else {
                        "（这张确认表单已经提交过，没有重复导入）"
                    }
                    "。" a href="/todo" { "返回待办" }
                }
            };
            Ok(d.page("/todo", "导入完成", &shown, body).into_response())
        }
        Err(refusal) => {
            // Something changed since the preview (a record registered meanwhile): the file is
            // planned again and the new problems shown.
            let body = html! {
                h1 { "未能导入" }
                (Shown { posted: None, refusal: Some(&refusal) }.refusal_markup())
                p { a href="/import" { "重新上传" } }
            };
            Ok((
                StatusCode::CONFLICT,
                d.page("/todo", "未能导入", &shown, body),
            )
                .into_response())
        }
    }
}
