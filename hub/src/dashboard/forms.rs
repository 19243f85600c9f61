//! What every workbench form shares: the values a browser posted (kept, so a refused form
//! comes back as it was typed), labelled inputs in keyboard order, the message shown beside a
//! refused form, and the two guards every form carries.
//!
//! The guards: an idempotency key drawn when the page is made (`form_key`), noted in the
//! transaction that applies the form, so a second submission of the same form applies nothing
//! and is sent where the first one went; and, for a step on a record, the version of the record
//! the form was rendered from (`seen`, the node's change sequence at the record's last change),
//! so a step on a record that moved since (a sync brought the county's 交办, say) is not applied
//! and the record is shown as it is now.

use chrono::NaiveDate;
use maud::{Markup, html};
use renda_node::store::StoreError;

use super::PageError;

/// The fields of a posted form, in the order the browser sent them. A name may repeat (the
/// units of a 交办, co-signers).
#[derive(Clone, Debug, Default)]
pub(crate) struct Posted(Vec<(String, String)>);

/// Longest form a browser may post: a suggestion's body with room to spare.
pub(crate) const MAX_FORM_BYTES: usize = 256 * 1024;

impl Posted {
    pub(crate) fn parse(body: &[u8]) -> Result<Posted, PageError> {
        if body.len() > MAX_FORM_BYTES {
            return Err(PageError::bad(
                "form",
                format!("表单超过 {} KiB", MAX_FORM_BYTES / 1024),
            ));
        }
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map(Posted)
            .map_err(|_| PageError::bad("form", "表单不是 application/x-www-form-urlencoded 格式"))
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every value of `name`, in order, trimmed.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .collect()
    }

    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        Some(self.get(name).to_string()).filter(|v| !v.is_empty())
    }

    /// A required text.
    pub(crate) fn text(&self, name: &str, what: &str) -> Result<String, Refusal> {
        match self.get(name) {
            "" => Err(Refusal::field(name, format!("{what}不能为空"))),
            v => Ok(v.to_string()),
        }
    }

    /// The day a step took effect: as typed, or today when left empty.
    pub(crate) fn date(&self, name: &str, today: NaiveDate) -> Result<NaiveDate, Refusal> {
        match self.get(name) {
            "" => Ok(today),
            v => NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                Refusal::field(
                    name,
                    format!(
                        "日期须为 YYYY-MM-DD，实际为“{}”",
                        renda_node::validate::quote(v)
                    ),
                )
            }),
        }
    }

    pub(crate) fn form_key(&self) -> &str {
        self.get("form_key")
    }

    /// The version of the record the form was rendered from.
    pub(crate) fn seen(&self) -> Result<i64, Refusal> {
        self.get("seen")
            .parse()
            .map_err(|_| Refusal::field("seen", "表单缺少它所依据的记录版本，请重新打开页面再办理"))
    }
}

/// Why a form was not applied, shown beside it: the field it concerns (when one does), the
/// rule's Chinese message, and the rule's English id when the workflow refused it.
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    pub field: Option<String>,
    pub message: String,
    pub rule: Option<String>,
}

impl Refusal {
    pub(crate) fn field(field: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            field: Some(field.to_string()),
            message: message.into(),
            rule: None,
        }
    }

    /// The refusal a store error is to a clerk, or the error itself when it is not one (the
    /// store failing is the operator's business, and the page says so).
    pub(crate) fn from_store(e: StoreError) -> Result<Refusal, PageError> {
        match e {
            StoreError::Invalid(v) => Ok(Refusal::field(&v.field, v.rule)),
            StoreError::Rejected { rejection, .. } => Ok(Refusal {
                field: None,
                message: rejection.reason,
                rule: Some(rejection.rule),
            }),
            StoreError::NotFound { kind, id } => Ok(Refusal {
                field: None,
                message: format!("本节点没有这条记录（{kind} {id}）"),
                rule: None,
            }),
            StoreError::Ambiguous { .. } => Ok(Refusal {
                field: None,
                message: e.to_string(),
                rule: None,
            }),
            StoreError::NewerKind { .. } => Ok(Refusal {
                field: None,
                message: e.to_string(),
                rule: Some("record.newer_kind".into()),
            }),
            other => Err(other.into()),
        }
    }
}

impl From<renda_node::validate::ValidationError> for Refusal {
    fn from(v: renda_node::validate::ValidationError) -> Refusal {
        Refusal::field(&v.field, v.rule)
    }
}

/// A new idempotency key: 32 random hex digits.
pub(crate) fn new_form_key() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a form shows: the values typed when it comes back refused, and the refusal.
#[derive(Clone, Copy, Default)]
pub(crate) struct Shown<'a> {
    pub posted: Option<&'a Posted>,
    pub refusal: Option<&'a Refusal>,
}

impl<'a> Shown<'a> {
    /// What was typed in `name`, or `default` when the form is new. A password is never sent
    /// back ([`Shown::input`]).
    pub(crate) fn value(&self, name: &str, default: &str) -> String {
        match self.posted {
            Some(p) => p.get(name).to_string(),
            None => default.to_string(),
        }
    }

    fn has_error(&self, name: &str) -> bool {
        self.refusal
            .and_then(|r| r.field.as_deref())
            .is_some_and(|f| f == name)
    }

    /// The message beside the form, with the rule for programs and tests.
    pub(crate) fn refusal_markup(&self) -> Markup {
        html! {
            @if let Some(r) = self.refusal {
                p.form-error role="alert" data-rule=[r.rule.as_deref()] data-field=[r.field.as_deref()] {
                    @if let Some(field) = &r.field { (field) "：" }
                    (r.message)
                    @if let Some(rule) = &r.rule { " " span.rule { "（规则 " code { (rule) } "）" } }
                }
            }
        }
    }

    /// The hidden guards: the idempotency key (a new one for a new page, the same one when a
    /// refused form comes back, since nothing was applied) and the version it was rendered from
    /// (a refused form keeps the version it was first rendered from, so a record that moved
    /// meanwhile is still caught when the corrected form comes back).
    pub(crate) fn guards(&self, seen: Option<i64>) -> Markup {
        let key = match self.posted.map(Posted::form_key) {
            Some(k) if !k.is_empty() => k.to_string(),
            _ => new_form_key(),
        };
        let seen = match self.posted.map(|p| p.get("seen").parse::<i64>()) {
            Some(Ok(posted)) if seen.is_some() => Some(posted),
            _ => seen,
        };
        html! {
            input type="hidden" name="form_key" value=(key);
            @if let Some(seen) = seen { input type="hidden" name="seen" value=(seen); }
        }
    }

    /// A labelled one-line input.
    pub(crate) fn input(
        &self,
        id: &str,
        name: &str,
        label: &str,
        kind: &str,
        default: &str,
        required: bool,
    ) -> Markup {
        html! {
            div.field.invalid[self.has_error(name)] {
                label for=(id) { (label) @if required { span.req { "*" } } }
                @if kind == "password" {
                    input id=(id) name=(name) type=(kind) autocomplete="new-password" required[required];
                } @else {
                    input id=(id) name=(name) type=(kind) value=(self.value(name, default)) required[required];
                }
            }
        }
    }

    pub(crate) fn text(&self, id: &str, name: &str, label: &str, required: bool) -> Markup {
        self.input(id, name, label, "text", "", required)
    }

    /// The day a step took effect, today unless changed.
    pub(crate) fn date(&self, id: &str, label: &str, today: NaiveDate) -> Markup {
        self.input(id, "date", label, "date", &today.to_string(), true)
    }

    pub(crate) fn textarea(&self, id: &str, name: &str, label: &str, required: bool) -> Markup {
        html! {
            div.field.invalid[self.has_error(name)] {
                label for=(id) { (label) @if required { span.req { "*" } } }
                textarea id=(id) name=(name) rows="4" required[required] { (self.value(name, "")) }
            }
        }
    }

    /// A labelled choice of `(value, label)` options.
    pub(crate) fn select(
        &self,
        id: &str,
        name: &str,
        label: &str,
        options: &[(String, String)],
        default: &str,
    ) -> Markup {
        let chosen = self.value(name, default);
        html! {
            div.field.invalid[self.has_error(name)] {
                label for=(id) { (label) }
                select id=(id) name=(name) {
                    @for (value, text) in options {
                        option value=(value) selected[*value == chosen] { (text) }
                    }
                }
            }
        }
    }

    /// A labelled choice of any number of `(value, label)` options.
    pub(crate) fn multi_select(
        &self,
        id: &str,
        name: &str,
        label: &str,
        options: &[(String, String)],
    ) -> Markup {
        let chosen: Vec<String> = self
            .posted
            .map(|p| p.all(name).into_iter().map(str::to_string).collect())
            .unwrap_or_default();
        html! {
            div.field.invalid[self.has_error(name)] {
                label for=(id) { (label) }
                select id=(id) name=(name) multiple size=(options.len().clamp(2, 8)) {
                    @for (value, text) in options {
                        option value=(value) selected[chosen.contains(value)] { (text) }
                    }
                }
            }
        }
    }

    pub(crate) fn checkbox(&self, id: &str, name: &str, label: &str) -> Markup {
        let checked = self.posted.is_some_and(|p| p.get(name) == "true");
        html! {
            div.field.check {
                input id=(id) name=(name) type="checkbox" value="true" checked[checked];
                label for=(id) { (label) }
            }
        }
    }
}

/// `options` after a first choice of nothing (an empty value) labelled `none`.
pub(crate) fn with_none(none: &str, options: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = vec![(String::new(), none.to_string())];
    out.extend(options.iter().cloned());
    out
}

/// `(value, label)` options of a labelled enum, by its English ids.
pub(crate) fn options<T: Copy>(
    all: &[T],
    id: impl Fn(T) -> &'static str,
    label: impl Fn(T) -> &'static str,
) -> Vec<(String, String)> {
    all.iter()
        .map(|v| (id(*v).to_string(), label(*v).to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posted_form_keeps_repeated_names_in_order_and_dates_default_to_today() {
        let p =
            Posted::parse("unit=%E9%95%87%E5%8A%9E+&role=lead&unit=b&role=assist&date=".as_bytes())
                .unwrap();
        assert_eq!(p.all("unit"), ["镇办", "b"]);
        assert_eq!(p.get("role"), "lead");
        assert_eq!(p.get("missing"), "");
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        assert_eq!(p.date("date", today).unwrap(), today);
        let bad = Posted::parse(b"date=3%2F12")
            .unwrap()
            .date("date", today)
            .unwrap_err();
        assert_eq!(bad.field.as_deref(), Some("date"));
        assert!(Posted::parse(&vec![b'a'; MAX_FORM_BYTES + 1]).is_err());
    }

    #[test]
    fn a_refused_form_keeps_the_version_it_was_rendered_from_and_never_sends_a_password_back() {
        let posted = Posted::parse(b"seen=7&password=secret-password&name=x").unwrap();
        let shown = Shown {
            posted: Some(&posted),
            refusal: None,
        };
        let guards = shown.guards(Some(9)).into_string();
        assert!(guards.contains("name=\"seen\" value=\"7\""), "{guards}");
        let input = shown
            .input("p", "password", "密码", "password", "", true)
            .into_string();
        assert!(!input.contains("secret-password"), "{input}");
        assert!(
            shown
                .text("n", "name", "名", true)
                .into_string()
                .contains("value=\"x\"")
        );
    }

    #[test]
    fn a_refused_form_keeps_its_key_and_a_new_one_draws_a_fresh_key() {
        let fresh = Shown::default().guards(Some(7)).into_string();
        assert!(fresh.contains("name=\"seen\" value=\"7\""), "{fresh}");
        let key = new_form_key();
        assert_eq!(key.len(), 32);
        assert_ne!(key, new_form_key());
        let posted = Posted::parse(format!("form_key={key}").as_bytes()).unwrap();
        let again = Shown {
            posted: Some(&posted),
            refusal: None,
        }
        .guards(None)
        .into_string();
        assert!(again.contains(&key));
    }
}
