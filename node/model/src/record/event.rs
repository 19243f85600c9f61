//! Workflow events: the append-only history inside an opinion or suggestion document.
//!
//! Events are ordered for folding by `(lamport, id)`. A new event's lamport is one more than the
//! largest lamport in the document it is appended to, so an event always sorts after every event
//! its author had seen (an evaluation after the answer it evaluates), whatever the node clocks
//! say; concurrent events sort by id, the same way on every replica.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::region::RegionCode;

/// Who wrote a change: the node that recorded it and the user at that node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub node: RegionCode,
    pub user: String,
}

impl Author {
    /// Parses the `user@region` form that [`Display`](fmt::Display) writes: the form headers
    /// take in SQLite columns and on the wire.
    pub fn parse(s: &str) -> Option<Author> {
        let (user, node) = s.rsplit_once('@')?;
        Some(Author {
            node: RegionCode::parse("created_by", node).ok()?,
            user: user.to_string(),
        })
    }
}

impl fmt::Display for Author {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.node)
    }
}

/// An event's identity; a ULID so ties in lamport order break the same way everywhere.
pub type EventId = super::RecordId;

/// One step of a workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event<A> {
    pub id: EventId,
    /// Causal order: greater than every lamport the author saw in the document.
    pub lamport: u64,
    /// When the step was recorded (wall clock of the recording node).
    pub recorded_at: DateTime<Utc>,
    /// The date the step took effect, which deadlines count from. A clerk entering yesterday's
    /// paper form records today but dates the step yesterday.
    pub date: NaiveDate,
    pub author: Author,
    #[serde(flatten)]
    pub action: A,
}

/// Why the fold refused an event. `rule` is a stable English identifier for programs and audit
/// logs; `reason` says it in Chinese for staff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub rule: String,
    pub reason: String,
}

impl Rejection {
    pub fn new(rule: &str, reason: impl Into<String>) -> Rejection {
        Rejection {
            rule: rule.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.reason, self.rule)
    }
}

impl std::error::Error for Rejection {}

/// An entry of a document's event list as read back: either a decodable event or the raw value
/// of one this version cannot read (written by a newer node, or damaged). Undecodable entries
/// stay visible in the history as rejected; they never change the status.
#[derive(Clone, Debug, PartialEq)]
pub enum EventEntry<A> {
    Event(Event<A>),
    Undecodable {
        raw: serde_json::Value,
        error: String,
    },
}

impl<A: DeserializeOwned> EventEntry<A> {
    /// Decodes an event stored as JSON text; text that is not JSON is kept as a string.
    pub(crate) fn decode_text(text: &str) -> EventEntry<A> {
        // Through the JSON tree, not straight from the text: serde skips a field it does not
        // know without checking it as the tree's parse does (a number past any float, a lone
        // surrogate), so an event this release read straight would be one an older release
        // reads as unreadable, and the two would judge the record's next step differently.
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(raw) => Self::decode(raw),
            Err(e) => EventEntry::Undecodable {
                raw: serde_json::Value::String(text.to_string()),
                error: e.to_string(),
            },
        }
    }

    pub(crate) fn decode(raw: serde_json::Value) -> EventEntry<A> {
        // Read from the tree in place: it is kept whole when the event does not decode, and
        // copying it for every event was about a tenth of a merge's time.
        match Event::<A>::deserialize(&raw) {
            Ok(event) => EventEntry::Event(event),
            Err(e) => EventEntry::Undecodable {
                raw,
                error: e.to_string(),
            },
        }
    }
}

/// The status a workflow record shows while it holds an event this version cannot read
/// ([`EventEntry::Undecodable`]): lists and counts show it as such instead of a guessed state.
pub const UNKNOWN_STATE: &str = "unknown";

/// [`UNKNOWN_STATE`] as staff read it.
pub const UNKNOWN_STATE_LABEL: &str = "状态未知（需升级）";

/// What every event carries whatever its step: enough to check who wrote an event this
/// version cannot read, and where it sorts.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Envelope {
    pub id: EventId,
    pub lamport: u64,
    pub recorded_at: DateTime<Utc>,
    pub date: NaiveDate,
    pub author: Author,
    pub action: String,
}

/// The envelope of an event a newer release wrote: it reads as an event, and its `action` names
/// no step of `A`. `None` for anything else this version cannot read (a known step with broken
/// fields, or no event at all), which is damage, not news.
pub fn newer_step<A: DeserializeOwned>(raw: &serde_json::Value) -> Option<Envelope> {
    let envelope: Envelope = serde_json::from_value(raw.clone()).ok()?;
    // Asking serde to read the bare tag tells a step `A` has (which then fails for its missing
    // fields, or reads) from one it lacks, which serde names an unknown variant.
    let probe = serde_json::json!({ "action": envelope.action });
    match serde_json::from_value::<A>(probe) {
        Err(e) if e.to_string().starts_with("unknown variant") => Some(envelope),
        _ => None,
    }
}

/// Refuses a step on a record holding events this version cannot read: its state is unknown
/// here, and guessing it could take a step the newer release forbids.
pub fn refuse_if_unreadable<A>(entries: &[EventEntry<A>]) -> Result<(), Rejection> {
    if entries
        .iter()
        .any(|e| matches!(e, EventEntry::Undecodable { .. }))
    {
        return Err(Rejection::new(
            "record.newer_version",
            "该记录含有本版本无法识别的办理步骤（可能由更新版本的 Renda 写入），状态未知；请升级本节点的 Renda 后再办理",
        ));
    }
    Ok(())
}

/// The events of a list in fold order; undecodable entries are left out.
pub fn in_fold_order<A>(entries: &[EventEntry<A>]) -> Vec<&Event<A>> {
    let mut events: Vec<&Event<A>> = entries
        .iter()
        .filter_map(|e| match e {
            EventEntry::Event(ev) => Some(ev),
            EventEntry::Undecodable { .. } => None,
        })
        .collect();
    events.sort_by_key(|e| (e.lamport, e.id));
    events
}

/// Folds the readable entries in fold order with `step`, which applies one event to `status`
/// or says why it may not, leaving the status as it was: every event with its verdict, how many
/// were refused, and how many entries could not be read. Each workflow's `fold` is this with
/// its own status and step.
pub fn fold_entries<A: Clone, S>(
    status: &mut S,
    entries: &[EventEntry<A>],
    mut step: impl FnMut(&mut S, &Event<A>) -> Result<(), Rejection>,
) -> (Vec<HistoryLine<A>>, usize, usize) {
    let mut history = Vec::new();
    let mut refused = 0;
    for event in in_fold_order(entries) {
        let rejected = step(status, event).err();
        refused += usize::from(rejected.is_some());
        history.push(HistoryLine {
            event: event.clone(),
            rejected,
        });
    }
    let unreadable = entries.len() - history.len();
    (history, refused, unreadable)
}

/// A step its record's state does not allow: "议案处于“已转作建议”状态，不能列入会议议程".
pub fn wrong_state(record: &str, state: &str, step: &str) -> Rejection {
    Rejection::new(
        "transition.state",
        format!("{record}处于“{state}”状态，不能{step}"),
    )
}

/// The lamport a new event appended to `entries` must carry.
pub fn next_lamport<A>(entries: &[EventEntry<A>]) -> u64 {
    entries
        .iter()
        .filter_map(|e| match e {
            EventEntry::Event(ev) => Some(ev.lamport),
            EventEntry::Undecodable { raw, .. } => raw.get("lamport").and_then(|l| l.as_u64()),
        })
        .max()
        .map_or(1, |l| l.saturating_add(1))
}

/// One line of a folded history: the event and whether the fold applied it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryLine<A> {
    #[serde(flatten)]
    pub event: Event<A>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejection>,
}

/// The date rules every workflow step obeys: not dated before the previous applied step, and not
/// dated after the day after it was recorded, the day in China (one day of slack for a clerk's
/// clock ahead of the node's).
pub fn check_dates<A>(last_step_on: Option<NaiveDate>, event: &Event<A>) -> Result<(), Rejection> {
    if let Some(last) = last_step_on
        && event.date < last
    {
        return Err(Rejection::new(
            "date.before_previous_step",
            format!("日期 {} 早于上一步的日期 {last}", event.date),
        ));
    }
    // Checked: `+` panics on the calendar's last day, and `recorded_at` comes from peers. No
    // date can be later than a day that does not exist.
    let recorded_on = crate::calendar::day_of(event.recorded_at);
    if recorded_on
        .checked_add_days(chrono::Days::new(1))
        .is_some_and(|latest| event.date > latest)
    {
        return Err(Rejection::new(
            "date.in_future",
            format!("日期 {} 晚于录入时间 {}", event.date, recorded_on),
        ));
    }
    Ok(())
}

/// A sample event by a node `here`, dated `date` and recorded that day, for asking a workflow's
/// own `check` whether a kind of step is open (`suggestion::offered_steps`): the workbench then
/// offers exactly the steps the fold would accept, with no second copy of its rules.
pub fn probe<A>(here: RegionCode, date: NaiveDate, action: A) -> Event<A> {
    // Noon in Beijing, so the day it was recorded is `date` in China Standard Time.
    let recorded_at = date
        .and_hms_opt(4, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_default();
    Event {
        id: EventId::nil(),
        lamport: u64::MAX,
        recorded_at,
        date,
        author: Author {
            node: here,
            user: String::new(),
        },
        action,
    }
}

/// What the office layer needs of a workflow record to append a checked event.
pub trait Workflow {
    type Action: Serialize + DeserializeOwned + Clone;
    type Status;

    fn entries(&self) -> &[EventEntry<Self::Action>];
    fn status(&self, header: &super::Header) -> Self::Status;
    /// Whether `event` may follow the current status; nothing is changed.
    fn check(
        &self,
        status: &Self::Status,
        header: &super::Header,
        event: &Event<Self::Action>,
    ) -> Result<(), Rejection>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::opinion::OpinionAction;

    fn envelope(action: serde_json::Value) -> serde_json::Value {
        let mut event = serde_json::json!({
            "id": "01M910018Y1AQXJBTEWMZMBF4S",
            "lamport": 3,
            "recorded_at": "2026-10-01T08:00:00Z",
            "date": "2026-10-01",
            "author": { "node": "330411101000", "user": "clerk" },
        });
        if let (Some(event), Some(action)) = (event.as_object_mut(), action.as_object()) {
            event.extend(action.clone());
        }
        event
    }

    /// Only a step this version lacks, in a readable envelope, is a newer release's: a known
    /// step with broken fields, or an envelope that does not read, is damage.
    #[test]
    fn a_newer_step_is_told_from_a_damaged_one() {
        let newer = envelope(serde_json::json!({ "action": "future_step", "x": 1 }));
        let found = newer_step::<OpinionAction>(&newer).expect("a newer step");
        assert_eq!(found.action, "future_step");
        assert_eq!(found.author.node.as_str(), "330411101000");
        // `pass_on` is a step this version has; without its fields it is damaged.
        let broken = envelope(serde_json::json!({ "action": "pass_on" }));
        assert!(newer_step::<OpinionAction>(&broken).is_none());
        let mut no_author = newer.clone();
        no_author.as_object_mut().unwrap().remove("author");
        assert!(newer_step::<OpinionAction>(&no_author).is_none());
        assert!(newer_step::<OpinionAction>(&serde_json::json!("text")).is_none());
        // And a record holding one refuses this version's steps.
        let entries: Vec<EventEntry<OpinionAction>> = vec![EventEntry::decode(newer)];
        assert_eq!(
            refuse_if_unreadable(&entries).unwrap_err().rule,
            "record.newer_version"
        );
        assert!(refuse_if_unreadable::<OpinionAction>(&[]).is_ok());
    }

    /// An event decodes as it did when its tree was copied before decoding, for every text: a
    /// step this version has, one with a field written twice (the tree keeps the last), unknown
    /// fields (beside the step's, and inside its author, where a number past any float or a
    /// lone surrogate makes the text unreadable), a newer release's step, a step missing its
    /// fields, and text that is not JSON.
    #[test]
    fn an_event_text_decodes_as_it_did() {
        let start = envelope(serde_json::json!({ "action": "start", "note": "已派人查看" }));
        let text = start.to_string();
        let author = r#""author":{"node":"330411101000","user":"clerk"}"#;
        assert!(text.contains(author), "{text}");
        let texts = vec![
            text.clone(),
            text.replacen("\"lamport\":3", "\"lamport\":3,\"lamport\":9", 1),
            envelope(serde_json::json!({ "action": "start", "note": "x", "extra": [1, 2] }))
                .to_string(),
            text.replace(
                author,
                r#""author":{"node":"330411101000","user":"clerk","x":1e400}"#,
            ),
            text.replace(
                author,
                r#""author":{"node":"330411101000","user":"clerk","x":"\ud800"}"#,
            ),
            text.replace(
                author,
                r#""author":{"node":"330411101000","user":"clerk","x":[1]}"#,
            ),
            envelope(serde_json::json!({ "action": "future_step", "x": 1 })).to_string(),
            envelope(serde_json::json!({ "action": "pass_on" })).to_string(),
            "不是 JSON".to_string(),
            "[]".to_string(),
        ];
        // How 0.6.0 decoded an event: the text's tree, copied, then decoded.
        let as_it_did = |text: &str| match serde_json::from_str::<serde_json::Value>(text) {
            Ok(raw) => match serde_json::from_value::<Event<OpinionAction>>(raw.clone()) {
                Ok(event) => EventEntry::Event(event),
                Err(e) => EventEntry::Undecodable {
                    raw,
                    error: e.to_string(),
                },
            },
            Err(e) => EventEntry::Undecodable {
                raw: serde_json::Value::String(text.to_string()),
                error: e.to_string(),
            },
        };
        for text in &texts {
            assert_eq!(
                EventEntry::<OpinionAction>::decode_text(text),
                as_it_did(text),
                "{text}"
            );
        }
        match EventEntry::<OpinionAction>::decode_text(&texts[1]) {
            EventEntry::Event(event) => assert_eq!(event.lamport, 9),
            other => panic!("a field written twice reads as the last: {other:?}"),
        }
        assert!(matches!(
            EventEntry::<OpinionAction>::decode_text(&texts[0]),
            EventEntry::Event(_)
        ));
        for unreadable in [3, 4, 8, 9] {
            assert!(matches!(
                EventEntry::<OpinionAction>::decode_text(&texts[unreadable]),
                EventEntry::Undecodable { .. }
            ));
        }
    }
}
