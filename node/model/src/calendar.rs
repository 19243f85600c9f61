//! The calendar every rule reads: one day in China Standard Time, and which dates are plausible.
//!
//! Congress offices keep Beijing time, so "today" is the calendar day at UTC+08:00 on every node,
//! for deadlines, overdue lists, rollups, pages and the command line alike, whatever the
//! machine's own time zone. China has kept UTC+08:00 all year since 1991, so a fixed offset is
//! exact for every day a node records (dates before 1954 are refused anyway).

use chrono::{DateTime, Days, FixedOffset, NaiveDate, Utc};

use crate::validate::ValidationError;

/// The first session of the first National People's Congress opened on 1954-09-15: nothing a
/// congress office records happened before it.
pub const EARLIEST: NaiveDate = match NaiveDate::from_ymd_opt(1954, 9, 15) {
    Some(day) => day,
    None => panic!("1954-09-15 is a date"),
};

/// How far ahead a planned date may lie (an activity scheduled so that its sign-in page exists):
/// a congress plans its year, not its decade.
pub const PLAN_AHEAD_DAYS: u64 = 366;

/// China Standard Time.
pub fn china() -> FixedOffset {
    match FixedOffset::east_opt(8 * 3600) {
        Some(offset) => offset,
        None => unreachable!("eight hours is a valid offset"),
    }
}

/// The calendar day `at` falls on in China.
pub fn day_of(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&china()).date_naive()
}

/// Today in China.
pub fn today() -> NaiveDate {
    day_of(Utc::now())
}

/// What a date says, which decides how far ahead it may lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateUse {
    /// Something that happened: a sign-in, an opinion received, a step taken, a notice issued.
    /// It may be dated tomorrow at the latest (a clerk a few hours ahead of the node's clock),
    /// never later.
    Happened,
    /// Something planned: an activity scheduled ahead. At most [`PLAN_AHEAD_DAYS`] ahead.
    Planned,
}

/// Checks a date a user gave against the plausibility rules, naming `field` and the rule.
/// `earliest` is [`EARLIEST`] unless the node's setting raises it.
pub fn check_date(
    field: &str,
    date: NaiveDate,
    use_: DateUse,
    today: NaiveDate,
    earliest: NaiveDate,
) -> Result<(), ValidationError> {
    if date < earliest {
        let why = if earliest == EARLIEST {
            "第一届全国人民代表大会召开之日".to_string()
        } else {
            "本节点设定的最早日期".to_string()
        };
        return Err(ValidationError::new(
            field,
            format!("日期 {date} 早于 {earliest}（{why}），不可能是人大工作的记录"),
        ));
    }
    match use_ {
        DateUse::Happened => {
            let latest = today
                .checked_add_days(Days::new(1))
                .unwrap_or(NaiveDate::MAX);
            if date > latest {
                return Err(ValidationError::new(
                    field,
                    format!("日期 {date} 晚于明天（{latest}）：已发生的事不能记在将来的日期"),
                ));
            }
        }
        DateUse::Planned => {
            let latest = today
                .checked_add_days(Days::new(PLAN_AHEAD_DAYS))
                .unwrap_or(NaiveDate::MAX);
            if date > latest {
                return Err(ValidationError::new(
                    field,
                    format!("日期 {date} 晚于 {latest}：计划的日期最多提前 {PLAN_AHEAD_DAYS} 天"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn today_is_the_day_in_beijing_whatever_the_machines_zone() {
        // 2026-03-01 17:30 UTC is already 2026-03-02 01:30 in Beijing.
        let at = day("2026-03-01").and_hms_opt(17, 30, 0).unwrap().and_utc();
        assert_eq!(day_of(at), day("2026-03-02"));
        let at = day("2026-03-01").and_hms_opt(15, 59, 59).unwrap().and_utc();
        assert_eq!(day_of(at), day("2026-03-01"));
    }

    #[test]
    fn dates_are_checked_against_the_first_congress_and_tomorrow() {
        let today = day("2026-12-02");
        let ok = |d: &str, u| check_date("date", day(d), u, today, EARLIEST);
        assert!(ok("1954-09-15", DateUse::Happened).is_ok());
        assert!(ok("2026-12-03", DateUse::Happened).is_ok());
        let err = ok("1900-01-01", DateUse::Happened).unwrap_err();
        assert_eq!(err.field, "date");
        assert!(err.rule.contains("1954-09-15"), "{}", err.rule);
        let err = ok("2026-12-04", DateUse::Happened).unwrap_err();
        assert!(err.rule.contains("明天"), "{}", err.rule);
        assert!(ok("2027-06-01", DateUse::Planned).is_ok());
        assert!(ok("2028-01-01", DateUse::Planned).is_err());
        assert!(ok("1954-09-14", DateUse::Planned).is_err());
        // A node that raised its earliest date says so.
        let raised = check_date(
            "date",
            day("2000-01-01"),
            DateUse::Happened,
            today,
            day("2010-01-01"),
        )
        .unwrap_err();
        assert!(raised.rule.contains("本节点"), "{}", raised.rule);
        // The last day of the calendar does not overflow.
        assert!(
            check_date(
                "date",
                NaiveDate::MAX,
                DateUse::Happened,
                NaiveDate::MAX,
                EARLIEST
            )
            .is_ok()
        );
    }
}
