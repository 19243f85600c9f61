//! Exports to .xlsx with Chinese headers: a record list (`/records?…&format=xlsx`, every row the
//! filters match, not one page), a delegate's 履职档案 (`/delegates/{id}?format=xlsx`) and the
//! suggestion handling table of a region (`/suggestions?format=xlsx`). The cells are the ones the
//! pages show, made by the same functions, so a sheet and its page cannot disagree.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use renda_node::record::RecordKind;
use renda_node::record::suggestion::{AnswerClass, Satisfaction, UnitAssignment};
use renda_node::store::ListRow;

use super::PageError;

/// Most rows one export holds: a county's records of several years.
pub(crate) const MAX_ROWS: u32 = 50_000;

/// Whether a page was asked for as a spreadsheet (`format=xlsx`); anything else but HTML is
/// refused.
pub(crate) fn wanted(format: &Option<String>) -> Result<bool, PageError> {
    match format.as_deref().map(str::trim) {
        None | Some("") | Some("html") => Ok(false),
        Some("xlsx") => Ok(true),
        Some(other) => Err(PageError::bad(
            "format",
            format!(
                "只能是 xlsx（导出表格），实际为“{}”",
                renda_node::validate::quote(other)
            ),
        )),
    }
}

/// The sheet as a download named `name.xlsx`, written on the blocking pool (a county's list
/// is tens of thousands of rows).
pub(crate) async fn xlsx(
    name: &str,
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
) -> Result<Response, PageError> {
    let sheet = name.to_string();
    let written = tokio::task::spawn_blocking(move || {
        crate::spreadsheet::write_xlsx(&sheet, &headers, &rows)
    })
    .await;
    let bytes = match written {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            return Err(PageError::internal(format!(
                "an export could not be written: {e}"
            )));
        }
        Err(e) => return Err(PageError::internal(format!("an export stopped: {e}"))),
    };
    // RFC 6266 with RFC 5987 for the Chinese name, and an ASCII fallback.
    let encoded = percent_encoding::utf8_percent_encode(
        &format!("{name}.xlsx"),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"export.xlsx\"; filename*=UTF-8''{encoded}"),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The columns of a record list, as `record_table` shows them.
pub(crate) const RECORD_HEADERS: &[&str] =
    &["类型", "名称/标题", "所属区划", "状态", "日期", "答复期限"];

/// A record list's row as the page shows it.
pub(crate) fn record_cells(row: &ListRow) -> Vec<String> {
    vec![
        row.kind.label().to_string(),
        row.label.clone(),
        row.home.to_string(),
        row.status
            .as_deref()
            .map(|s| super::pages::status_label(row.kind, s))
            .unwrap_or_default(),
        row.occurred_on.map(|d| d.to_string()).unwrap_or_default(),
        row.due_on.map(|d| d.to_string()).unwrap_or_default(),
    ]
}

/// The columns of the suggestion handling table (建议办理情况表).
pub(crate) const SUGGESTION_HEADERS: &[&str] = &[
    "编号",
    "标题",
    "类别",
    "领衔代表",
    "提交给",
    "提出日期",
    "状态",
    "承办单位",
    "交办日期",
    "答复期限",
    "答复类别",
    "按期答复",
    "代表评价",
    "重点督办",
    "办结日期",
];

/// A suggestion's handling, from its list row.
pub(crate) fn suggestion_cells(row: &ListRow) -> Vec<String> {
    let s = &row.summary;
    let text = |key: &str| {
        s.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let units: Vec<UnitAssignment> = s
        .get("units")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let class = s
        .get("class")
        .and_then(|v| serde_json::from_value::<AnswerClass>(v.clone()).ok())
        .map(|c| c.label().to_string())
        .unwrap_or_default();
    let evaluation = s
        .get("evaluation")
        .and_then(|v| serde_json::from_value::<Satisfaction>(v.clone()).ok())
        .map(|e| e.label().to_string())
        .unwrap_or_default();
    let yes_no = |key: &str| match s.get(key).and_then(|v| v.as_bool()) {
        Some(true) => "是".to_string(),
        Some(false) => "否".to_string(),
        None => String::new(),
    };
    vec![
        s.get("number")
            .and_then(|v| v.as_u64())
            .map(|n| format!("第{n}号"))
            .unwrap_or_default(),
        row.label.clone(),
        text("category"),
        text("lead_name"),
        text("addressed_to"),
        row.occurred_on.map(|d| d.to_string()).unwrap_or_default(),
        row.status
            .as_deref()
            .map(|st| super::pages::status_label(RecordKind::Suggestion, st))
            .unwrap_or_default(),
        units
            .iter()
            .map(|u| format!("{}（{}）", u.unit, u.role.label()))
            .collect::<Vec<_>>()
            .join("、"),
        text("assigned_on"),
        row.due_on.map(|d| d.to_string()).unwrap_or_default(),
        class,
        yes_no("answered_on_time"),
        evaluation,
        if s.get("key_supervision").and_then(|v| v.as_bool()) == Some(true) {
            "是".to_string()
        } else {
            String::new()
        },
        text("closed_on"),
    ]
}
