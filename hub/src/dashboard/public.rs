//! The two pages anyone may open without logging in, from a QR code on a phone: an activity's
//! sign-in (`/s/{token}`) and a venue's opinion form for constituents (`/o/{token}`, 扫码反映).
//!
//! A code carries a token this node signed (HMAC-SHA-256 with a key kept only in its own file,
//! `WriteTx::secret`): an activity's token holds the activity and its date and is honoured only
//! on that day (Beijing time, and until six the next morning for an evening meeting); a venue's
//! holds the venue. The sign-in page shows the delegates' names only in part (张*华), and a
//! delegate confirms with the last four digits of the mobile number registered for them;
//! failures are limited per delegate and per address, and a second sign-in is refused by the
//! office operation as any other. Both record their source: the sign-in is marked as scanned
//! (`SignInSource::QrCode`) and the opinion's source is 扫码反映.
//!
//! The network path: the phones reach the node that holds the activity, the township's, on the
//! station's own network, at the address the clerk's browser uses (the code is made from it).
//! `deploy/README.md` says how an office sets that up.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{Days, NaiveDate, Utc};
use hmac::{KeyInit, Mac};
use maud::{Markup, PreEscaped, html};
use renda_node::office::Contact;
use renda_node::record::activity::SignInSource;
use renda_node::record::opinion::{OpinionFields, OpinionSource};
use renda_node::record::{Body, Record, RecordId};
use renda_node::store::StoreError;

use super::forms::Posted;
use super::{Dashboard, PageError, page_html};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Bytes of the MAC a token carries: 128 bits.
const MAC_BYTES: usize = 16;

/// Hours after midnight following the activity's day during which its code still works.
const EVENING_GRACE_HOURS: i64 = 6;

/// What a token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// An activity's sign-in, for its day.
    SignIn { activity: RecordId, day: NaiveDate },
    /// A venue's opinion form.
    Opinion { venue: RecordId },
}

impl Token {
    fn body(&self) -> String {
        match self {
            Token::SignIn { activity, day } => format!("a.{activity}.{}", day.format("%Y%m%d")),
            Token::Opinion { venue } => format!("v.{venue}"),
        }
    }

    fn mac(key: &[u8], body: &str) -> Option<HmacSha256> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).ok()?;
        mac.update(body.as_bytes());
        Some(mac)
    }

    /// The token as it goes in a code: its body and its MAC.
    pub(crate) fn sign(&self, key: &[u8]) -> String {
        let body = self.body();
        let tag = Token::mac(key, &body)
            .map(|m| m.finalize().into_bytes()[..MAC_BYTES].to_vec())
            .unwrap_or_default();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("{body}.{hex}")
    }

    /// The token `text` names, if this node signed it.
    pub(crate) fn verify(key: &[u8], text: &str) -> Option<Token> {
        let (body, hex) = text.rsplit_once('.')?;
        if hex.len() != MAC_BYTES * 2 {
            return None;
        }
        let tag: Vec<u8> = (0..MAC_BYTES)
            .map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        Token::mac(key, body)?.verify_truncated_left(&tag).ok()?;
        let mut parts = body.split('.');
        let token = match (parts.next()?, parts.next()?, parts.next()) {
            ("a", id, Some(day)) => Token::SignIn {
                activity: RecordId::parse("token", id).ok()?,
                day: NaiveDate::parse_from_str(day, "%Y%m%d").ok()?,
            },
            ("v", id, None) => Token::Opinion {
                venue: RecordId::parse("token", id).ok()?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(token)
    }
}

/// Whether an activity's code works at `now`: on its day in Beijing, and the night after.
fn in_window(day: NaiveDate, now: chrono::DateTime<Utc>) -> bool {
    let china = now
        .with_timezone(&renda_node::calendar::china())
        .naive_local();
    let start = day.and_hms_opt(0, 0, 0);
    let end = day
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t + chrono::Duration::hours(EVENING_GRACE_HOURS));
    matches!((start, end), (Some(s), Some(e)) if china >= s && china < e)
}

/// A name as the sign-in page shows it: the first and last characters, the rest hidden.
pub(crate) fn masked(name: &str) -> String {
    let chars: Vec<char> = name.trim().chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => "*".to_string(),
        2 => format!("{}*", chars[0]),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    }
}

/// Failed attempts per key within a window: per address and per delegate.
#[derive(Default)]
pub(crate) struct Attempts {
    seen: std::sync::Mutex<std::collections::HashMap<String, (u32, Instant)>>,
}

impl Attempts {
    const WINDOW: Duration = Duration::from_secs(600);
    const MAX_KEYS: usize = 10_000;

    /// `Err` once `limit` attempts were counted under `key` within the window.
    fn check(&self, key: &str, limit: u32) -> Result<(), Duration> {
        let Ok(seen) = self.seen.lock() else {
            return Ok(());
        };
        match seen.get(key) {
            Some((n, at)) if *n >= limit && at.elapsed() < Self::WINDOW => {
                Err(Self::WINDOW - at.elapsed())
            }
            _ => Ok(()),
        }
    }

    /// Counts one attempt under `key`: a failure, or for the opinion form each submission.
    fn count(&self, key: &str) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        let now = Instant::now();
        if seen.len() >= Self::MAX_KEYS {
            seen.retain(|_, (_, at)| now.duration_since(*at) < Self::WINDOW);
        }
        let entry = seen.entry(key.to_string()).or_insert((0, now));
        if now.duration_since(entry.1) >= Self::WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

/// Failed sign-ins an address may make within ten minutes: a station's phones often share one
/// address behind its router, so only failures count.
const PER_ADDRESS: u32 = 20;
/// Wrong phone digits a delegate may be tried with within ten minutes.
const PER_DELEGATE: u32 = 5;
/// Opinions an address may send within ten minutes.
const OPINIONS_PER_ADDRESS: u32 = 30;

fn address_key(addr: IpAddr) -> String {
    // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d; it is its own address,
    // not part of one /64.
    match addr.to_canonical() {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            format!("ip:{}", std::net::Ipv6Addr::from(octets))
        }
        v4 => format!("ip:{v4}"),
    }
}

impl Dashboard {
    /// The key this node signs its codes with.
    pub(crate) async fn qr_key(&self) -> Result<Vec<u8>, PageError> {
        let store = self.store.clone();
        self.qr_key
            .get_or_try_init(|| async move { store.write(|tx| tx.secret("qr")).await })
            .await
            .cloned()
            .map_err(PageError::from)
    }
}

/// A phone page: no tabs, no login, one narrow column.
fn phone_page(title: &str, body: Markup) -> Html<String> {
    page_html("", title, None, html! { div.phone { (body) } })
}

fn refused_page(status: StatusCode, title: &str, message: &str) -> Response {
    (
        status,
        phone_page(
            title,
            html! { h1 { (title) } p.form-error role="alert" { (message) } },
        ),
    )
        .into_response()
}

/// The address a code leads to: this site as the browser reached it.
pub(crate) fn site(d: &Dashboard, headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then(|| format!("{}://{host}", if d.secure { "https" } else { "http" }))
}

/// A QR code as inline SVG.
pub(crate) fn qr_svg(url: &str) -> Markup {
    match qrcode::QrCode::new(url.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            // The SVG is made here from the URL's bits; it holds no text from anyone.
            let svg = svg
                .split_once("?>")
                .map_or(svg.as_str(), |(_, rest)| rest)
                .to_string();
            html! { div.qr data-url=(url) { (PreEscaped(svg)) } }
        }
        Err(_) => html! { p.meta { "地址过长，无法生成二维码：" (url) } },
    }
}

/// The code section of an activity's or a venue's record page, at the node that holds it.
pub(crate) async fn code_section(d: &Dashboard, record: &Record, site: Option<&str>) -> Markup {
    if record.header.home != d.me {
        return html! {};
    }
    let token = match &record.body {
        Body::Activity(a) => Token::SignIn {
            activity: record.header.id,
            day: a.date,
        },
        Body::Venue(_) => Token::Opinion {
            venue: record.header.id,
        },
        _ => return html! {},
    };
    let (Some(site), Ok(key)) = (site, d.qr_key().await) else {
        return html! {};
    };
    let (path, title, note) = match token {
        Token::SignIn { day, .. } => (
            "s",
            "扫码签到",
            format!("代表在 {day} 当天用手机扫码签到（至次日早 6 点），用登记的手机号后四位确认。"),
        ),
        Token::Opinion { .. } => (
            "o",
            "扫码反映",
            "群众用手机扫码反映意见，收到的民情登记在本节点。".to_string(),
        ),
    };
    let url = format!("{site}/{path}/{}", token.sign(&key));
    html! {
        section.code data-code=(path) {
            h2 { (title) }
            (qr_svg(&url))
            p.meta { (note) " " a href=(url) { "打开页面" } }
        }
    }
}

/// The delegates a sign-in page offers: persons held here with a serving seat.
fn signers(
    s: &renda_node::store::Store,
    me: renda_node::region::RegionCode,
) -> Result<Vec<(RecordId, String)>, StoreError> {
    let mut out = Vec::new();
    for (id, _) in super::workbench::suggestions::delegate_options(s, me)? {
        let Ok(id) = RecordId::parse("id", &id) else {
            continue;
        };
        let Body::Delegate(d) = s.get(&id)?.body else {
            continue;
        };
        let serving = s
            .mandates_of(&id)?
            .iter()
            .any(|(_, m)| m.status == renda_node::record::delegate::MandateStatus::Serving)
            || d.mandates
                .values()
                .any(|m| m.status == renda_node::record::delegate::MandateStatus::Serving);
        if serving {
            out.push((id, d.name));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

async fn activity_of(
    d: &Dashboard,
    token: &str,
) -> Result<
    (
        RecordId,
        renda_node::record::activity::Activity,
        Vec<(RecordId, String)>,
    ),
    Response,
> {
    let key = d.qr_key().await.map_err(IntoResponse::into_response)?;
    let Some(Token::SignIn { activity, day }) = Token::verify(&key, token) else {
        return Err(refused_page(
            StatusCode::NOT_FOUND,
            "无效的二维码",
            "这个二维码不是本节点的签到码，或已被改动。",
        ));
    };
    if !in_window(day, Utc::now()) {
        return Err(refused_page(
            StatusCode::GONE,
            "不在签到时间内",
            &format!("这个签到码只在活动当天（{day}）有效。"),
        ));
    }
    let me = d.me;
    let read = d
        .store
        .read(move |s| {
            let record = s.get(&activity)?;
            let signers = signers(s, me)?;
            Ok((record, signers))
        })
        .await;
    match read {
        Ok((record, signers)) => match record.body {
            Body::Activity(a) if a.date == day => Ok((activity, a, signers)),
            _ => Err(refused_page(
                StatusCode::GONE,
                "签到码已失效",
                "活动的日期已经改动，请向工作人员索取新的签到码。",
            )),
        },
        Err(e) => Err(PageError::from(e).into_response()),
    }
}

fn sign_in_form(
    token: &str,
    a: &renda_node::record::activity::Activity,
    signers: &[(RecordId, String)],
    message: Option<&str>,
) -> Markup {
    let signed: Vec<&RecordId> = a.participants.keys().collect();
    html! {
        h1 { "扫码签到" }
        p.activity { (a.topic) } p.meta { (a.date) " · " (a.kind.label()) " · " (a.organiser) }
        @if let Some(m) = message { p.form-error role="alert" { (m) } }
        form.work.phone-form method="post" action=(format!("/s/{token}")) {
            fieldset {
                legend { "请选择您的姓名" }
                @for (id, name) in signers {
                    @let done = signed.contains(&id);
                    div.field.check {
                        input id=(format!("d-{id}")) type="radio" name="delegate" value=(id) disabled[done] required;
                        label for=(format!("d-{id}")) { (masked(name)) @if done { "（已签到）" } }
                    }
                }
            }
            div.field {
                label for="phone4" { "登记的手机号码后四位" }
                input #phone4 name="phone4" type="text" inputmode="numeric" pattern="[0-9]{4}" maxlength="4" autocomplete="off" required;
            }
            button type="submit" data-action="sign-in" { "签到" }
        }
    }
}

/// GET `/s/{token}`.
pub(crate) async fn sign_in_page(
    State(d): State<Dashboard>,
    Path(token): Path<String>,
) -> Response {
    match activity_of(&d, &token).await {
        Ok((_, a, signers)) => {
            phone_page("扫码签到", sign_in_form(&token, &a, &signers, None)).into_response()
        }
        Err(r) => r,
    }
}

/// POST `/s/{token}`: a delegate signs in, confirmed by their phone's last four digits.
pub(crate) async fn sign_in(
    State(d): State<Dashboard>,
    Path(token): Path<String>,
    ConnectInfo(from): ConnectInfo<crate::https::ClientAddr>,
    body: axum::body::Bytes,
) -> Response {
    // Checked before anything is read, so a flood from one address costs the node nothing.
    let address = address_key(from.0.ip());
    if d.attempts.check(&address, PER_ADDRESS).is_err() {
        return refused_page(
            StatusCode::TOO_MANY_REQUESTS,
            "尝试次数过多",
            "尝试次数过多，请 10 分钟后再试，或请工作人员协助签到。",
        );
    }
    let (activity, a, signers) = match activity_of(&d, &token).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let again = |status: StatusCode, message: &str| {
        (
            status,
            phone_page(
                "扫码签到",
                sign_in_form(&token, &a, &signers, Some(message)),
            ),
        )
            .into_response()
    };
    let Ok(posted) = Posted::parse(&body) else {
        d.attempts.count(&address);
        return again(StatusCode::BAD_REQUEST, "表单格式有误");
    };
    let Some((delegate, name)) = RecordId::parse("delegate", posted.get("delegate"))
        .ok()
        .and_then(|id| signers.iter().find(|(s, _)| *s == id).cloned())
    else {
        d.attempts.count(&address);
        return again(StatusCode::BAD_REQUEST, "请选择您的姓名");
    };
    let digits = posted.get("phone4");
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return again(StatusCode::BAD_REQUEST, "请填写手机号码的后四位数字");
    }
    let delegate_key = format!("delegate:{delegate}");
    if d.attempts.check(&delegate_key, PER_DELEGATE).is_err() {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            "这位代表的尝试次数过多，请 10 分钟后再试，或请工作人员协助签到。",
        );
    }
    let phone = d
        .store
        .read(move |s| {
            Ok(match s.personal_for(&delegate)?.map(|r| r.body) {
                Some(Body::Personal(p)) => p.phone,
                _ => None,
            })
        })
        .await;
    let phone: String = match phone {
        Ok(Some(p)) => p.chars().filter(char::is_ascii_digit).collect(),
        Ok(None) => {
            return again(
                StatusCode::CONFLICT,
                "本节点没有登记您的手机号码，请由工作人员为您签到。",
            );
        }
        Err(e) => return PageError::from(e).into_response(),
    };
    if !phone.ends_with(digits) {
        tracing::warn!(%activity, addr = %from.0.ip(), "a QR sign-in with wrong phone digits");
        d.attempts.count(&address);
        d.attempts.count(&delegate_key);
        return again(StatusCode::UNAUTHORIZED, "手机号码后四位不对。");
    }
    let written = d
        .store
        .write(move |tx| {
            renda_node::office::sign_in_by(tx, &activity, &[delegate], Some(SignInSource::QrCode))
        })
        .await;
    match written {
        Ok(_) => {
            tracing::info!(%activity, %delegate, "a delegate signed in by QR code");
            phone_page(
                "签到成功",
                html! {
                    h1 { "签到成功" }
                    p.notice-ok role="status" data-signed=(delegate) { (masked(&name)) "，您已签到：" (a.topic) }
                },
            )
            .into_response()
        }
        // The office's own words name the delegate in full; a phone page says less.
        Err(StoreError::Invalid(v)) if v.rule.contains("已经签到") => {
            again(StatusCode::CONFLICT, "您已经签到过了。")
        }
        Err(StoreError::Invalid(_) | StoreError::Rejected { .. }) => again(
            StatusCode::CONFLICT,
            "无法为您签到（可能没有在任的代表资格），请由工作人员协助签到。",
        ),
        Err(e) => PageError::from(e).into_response(),
    }
}

async fn venue_of(
    d: &Dashboard,
    token: &str,
) -> Result<(RecordId, renda_node::record::group::Venue), Response> {
    let key = d.qr_key().await.map_err(IntoResponse::into_response)?;
    let Some(Token::Opinion { venue }) = Token::verify(&key, token) else {
        return Err(refused_page(
            StatusCode::NOT_FOUND,
            "无效的二维码",
            "这个二维码不是本节点的意见反映码，或已被改动。",
        ));
    };
    match d.store.read(move |s| s.get(&venue)).await {
        Ok(Record {
            body: Body::Venue(v),
            ..
        }) => Ok((venue, v)),
        Ok(_) => Err(refused_page(
            StatusCode::NOT_FOUND,
            "无效的二维码",
            "这个二维码对应的不是阵地。",
        )),
        Err(e) => Err(PageError::from(e).into_response()),
    }
}

fn opinion_form(
    token: &str,
    venue: &renda_node::record::group::Venue,
    posted: Option<&Posted>,
    message: Option<&str>,
) -> Markup {
    let typed = |name: &str| posted.map(|p| p.get(name).to_string()).unwrap_or_default();
    // A reload or a second tap sends the same key: the opinion is received once.
    let key = Some(typed("form_key"))
        .filter(|k| !k.is_empty())
        .unwrap_or_else(super::forms::new_form_key);
    html! {
        h1 { "扫码反映" }
        p.meta { (venue.name) " · 您反映的意见由本地人大代表和人大工作人员收集、转交和办理。" }
        @if let Some(m) = message { p.form-error role="alert" { (m) } }
        form.work.phone-form method="post" action=(format!("/o/{token}")) {
            input type="hidden" name="form_key" value=(key);
            div.field { label for="content" { "您要反映的意见" } textarea #content name="content" rows="5" required { (typed("content")) } }
            div.field { label for="place" { "地点（可不填）" } input #place name="place" type="text" value=(typed("place")); }
            div.field { label for="name" { "您的姓名（可不填）" } input #name name="name" type="text" value=(typed("name")); }
            div.field { label for="phone" { "联系电话（可不填，便于答复）" } input #phone name="phone" type="tel" value=(typed("phone")); }
            p.meta { "姓名和电话只保存在本地人大，不会公开。" }
            button type="submit" data-action="opinion" { "提交" }
        }
    }
}

/// GET `/o/{token}`.
pub(crate) async fn opinion_page(
    State(d): State<Dashboard>,
    Path(token): Path<String>,
) -> Response {
    match venue_of(&d, &token).await {
        Ok((_, v)) => phone_page("扫码反映", opinion_form(&token, &v, None, None)).into_response(),
        Err(r) => r,
    }
}

/// POST `/o/{token}`: a constituent's opinion, received at the venue's node.
pub(crate) async fn opinion(
    State(d): State<Dashboard>,
    Path(token): Path<String>,
    ConnectInfo(from): ConnectInfo<crate::https::ClientAddr>,
    body: axum::body::Bytes,
) -> Response {
    let (venue_id, venue) = match venue_of(&d, &token).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let posted = Posted::parse(&body).ok();
    let again = |status: StatusCode, message: &str| {
        (
            status,
            phone_page(
                "扫码反映",
                opinion_form(&token, &venue, posted.as_ref(), Some(message)),
            ),
        )
            .into_response()
    };
    let address = format!("opinion:{}", address_key(from.0.ip()));
    if d.attempts.check(&address, OPINIONS_PER_ADDRESS).is_err() {
        return again(StatusCode::TOO_MANY_REQUESTS, "提交过于频繁，请稍后再试。");
    }
    d.attempts.count(&address);
    let Some(p) = posted.as_ref() else {
        return again(StatusCode::BAD_REQUEST, "表单格式有误");
    };
    let key = p.form_key().to_string();
    if renda_node::store::check_form_key(&key).is_err() {
        return again(StatusCode::BAD_REQUEST, "表单已过期，请重新扫码。");
    }
    let fields = OpinionFields {
        source: OpinionSource::QrCode,
        content: p.get("content").to_string(),
        place: p.get("place").to_string(),
        region: venue.region,
        delegate: None,
        activity: None,
        category: None,
    };
    let contact = Contact {
        name: p.optional("name"),
        phone: p.optional("phone"),
        id_number: None,
    };
    let today = renda_node::calendar::today();
    let written = d
        .store
        .write(move |tx| {
            if let Some(Some(before)) = tx.form_applied(&key)?
                && let Ok(id) = RecordId::parse("record", &before)
            {
                return Ok(id);
            }
            let id = renda_node::office::add_opinion(tx, "扫码反映", fields, contact, today)?.id;
            tx.note_form_applied(&key, "扫码反映", Some(&id.to_string()))?;
            Ok(id)
        })
        .await;
    match written {
        Ok(id) => {
            tracing::info!(venue = %venue_id, opinion = %id, "an opinion received by QR code");
            phone_page(
                "提交成功",
                html! {
                    h1 { "提交成功" }
                    p.notice-ok role="status" data-opinion=(id) { "感谢您的反映，我们会尽快办理。" }
                },
            )
            .into_response()
        }
        Err(StoreError::Invalid(v)) => again(
            StatusCode::BAD_REQUEST,
            &format!("{}：{}", field_label(&v.field), v.rule),
        ),
        Err(e) => PageError::from(e).into_response(),
    }
}

fn field_label(field: &str) -> &str {
    match field {
        "content" => "意见",
        "place" => "地点",
        "constituent-name" => "姓名",
        "constituent-phone" => "联系电话",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_with_its_key_and_unchanged() {
        let key = [7u8; 32];
        let day = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        let t = Token::SignIn {
            activity: RecordId::new(),
            day,
        };
        let signed = t.sign(&key);
        assert_eq!(Token::verify(&key, &signed), Some(t));
        assert_eq!(
            Token::verify(&[8u8; 32], &signed),
            None,
            "another node's key"
        );
        let other_day = signed.replace("20261204", "20261205");
        assert_eq!(Token::verify(&key, &other_day), None, "the day changed");
        assert_eq!(Token::verify(&key, "v.x.00"), None);
        let v = Token::Opinion {
            venue: RecordId::new(),
        };
        assert_eq!(Token::verify(&key, &v.sign(&key)), Some(v));
    }

    #[test]
    fn an_activitys_code_works_on_its_day_and_the_night_after() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&Utc)
        };
        assert!(
            !in_window(day, at("2026-12-03T15:59:00Z")),
            "23:59 the day before in Beijing"
        );
        assert!(
            in_window(day, at("2026-12-03T16:00:00Z")),
            "midnight in Beijing"
        );
        assert!(
            in_window(day, at("2026-12-04T21:59:00Z")),
            "05:59 the next morning"
        );
        assert!(!in_window(day, at("2026-12-04T22:00:00Z")));
    }

    #[test]
    fn an_ipv4_phone_on_a_dual_stack_listener_is_its_own_address() {
        let a: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        assert_ne!(address_key(a), address_key(b));
        assert_eq!(address_key(a), address_key("192.0.2.1".parse().unwrap()));
        let (x, y): (IpAddr, IpAddr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        assert_eq!(address_key(x), address_key(y), "one IPv6 host is its /64");
    }

    #[test]
    fn only_counted_attempts_stop_a_key() {
        let attempts = Attempts::default();
        for _ in 0..3 {
            assert!(attempts.check("k", 3).is_ok(), "checking counts nothing");
        }
        for _ in 0..3 {
            attempts.count("k");
        }
        assert!(attempts.check("k", 3).is_err());
        assert!(attempts.check("other", 3).is_ok());
    }

    #[test]
    fn names_show_their_first_and_last_characters() {
        assert_eq!(masked("张建华"), "张*华");
        assert_eq!(masked("张华"), "张*");
        assert_eq!(masked("欧阳建华"), "欧**华");
        assert_eq!(masked(""), "");
    }
}
