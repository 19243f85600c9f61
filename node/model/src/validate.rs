//! Field validation shared by every record kind: one error type that names the field and the
//! rule it broke, and the small checks most fields need.

use std::fmt;

use chrono::NaiveDate;

/// A value that broke a rule. `field` is the name the user typed (a CLI flag or JSON key), so the
/// message points at what to fix; `rule` is the rule in the staff's language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub field: String,
    pub rule: String,
}

impl ValidationError {
    /// The rule is kept to [`MAX_RULE_CHARS`]: rules quote the input they refuse, clipped where
    /// they quote it, and this is the guard for a quote that was not.
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        ValidationError {
            field: clip(&field.into(), QUOTE_CHARS),
            rule: clip(&rule.into(), MAX_RULE_CHARS),
        }
    }
}

/// Longest rule text an error carries.
pub const MAX_RULE_CHARS: usize = 400;

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "字段 {}: {}", self.field, self.rule)
    }
}

impl std::error::Error for ValidationError {}

/// Longest text a single field may hold. Long enough for a suggestion's body, short enough that
/// a pasted file or a hostile peer cannot bloat a document.
pub const MAX_TEXT: usize = 20_000;

/// A required, trimmed, bounded piece of text.
pub fn required_text(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "不能为空"));
    }
    bounded_text(field, value)
}

/// Optional text still has a length limit.
pub fn bounded_text(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.chars().count() > MAX_TEXT {
        return Err(ValidationError::new(
            field,
            format!("长度不能超过 {MAX_TEXT} 个字符"),
        ));
    }
    Ok(())
}

/// How many characters of an input an error message quotes.
pub const QUOTE_CHARS: usize = 64;

/// At most `max` characters of `text`, marked with "…" and the full length when cut. Errors
/// quote what was typed or sent so the user can find it, but never all of it: a pasted file or a
/// hostile peer's megabyte must not come back inside a gRPC status or a page.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…（共 {} 个字符）", &text[..cut], text.chars().count()),
    }
}

/// An input quoted in an error message: [`clip`] to [`QUOTE_CHARS`].
pub fn quote(text: &str) -> String {
    clip(text, QUOTE_CHARS)
}

/// Parses a calendar date written as `YYYY-MM-DD`.
pub fn parse_date(field: &str, value: &str) -> Result<NaiveDate, ValidationError> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").map_err(|_| {
        ValidationError::new(
            field,
            format!("日期格式必须是 YYYY-MM-DD，实际为“{}”", quote(value)),
        )
    })
}

/// A peer's address as `host:port`: a DNS name, an IPv4 address or a bracketed IPv6 address,
/// and a port from 1 to 65535; no scheme, path or user. Links dial exactly this, so anything
/// else would fail at every attempt instead of once, here.
pub fn host_port(field: &str, value: &str) -> Result<(), ValidationError> {
    let value = value.trim();
    let bad = |why: &str| {
        ValidationError::new(
            field,
            format!(
                "地址须为“主机:端口”（如 renda-county.internal:7700），{why}：“{}”",
                quote(value)
            ),
        )
    };
    if value.contains("://") || value.contains('/') || value.contains('@') {
        return Err(bad("不能带协议、路径或用户名"));
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(bad("缺少端口"));
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
        _ => return Err(bad("端口须是 1 到 65535 之间的整数")),
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| bad("方括号中须是 IPv6 地址"));
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() || is_dns_name(host) {
        Ok(())
    } else {
        Err(bad("主机名无效"))
    }
}

/// Whether `name` is a DNS host name: dot-separated labels of letters, digits and inner
/// hyphens, at most 63 characters each and 253 in all, and not all digits (that would be an
/// IPv4 address, or a malformed one).
pub fn is_dns_name(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let all_digits = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    !name.is_empty() && name.len() <= 253 && !all_digits && name.split('.').all(label_ok)
}

/// A list whose entries must be distinct (members, units, co-signers).
pub fn distinct<T: PartialEq + fmt::Display>(
    field: &str,
    items: &[T],
) -> Result<(), ValidationError> {
    for (i, item) in items.iter().enumerate() {
        if items[..i].contains(item) {
            return Err(ValidationError::new(field, format!("“{item}”重复出现")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_field_and_rule() {
        let err = required_text("title", "  ").unwrap_err();
        assert_eq!(err.to_string(), "字段 title: 不能为空");
        assert!(
            parse_date("date", "2026-13-01")
                .unwrap_err()
                .rule
                .contains("YYYY-MM-DD")
        );
        assert!(distinct("member", &["a", "b", "a"]).is_err());
        assert!(bounded_text("body", &"字".repeat(MAX_TEXT + 1)).is_err());
    }

    #[test]
    fn a_peer_address_is_host_and_port_only() {
        for ok in [
            "renda-county.internal:7700",
            "127.0.0.1:7700",
            "[::1]:7700",
            "localhost:1",
        ] {
            assert!(host_port("parent", ok).is_ok(), "{ok}");
        }
        for bad in [
            "not-a-host",
            "host:",
            "host:0",
            "host:70000",
            "host:+80",
            "http://host:7700",
            "host:7700/path",
            "user@host:7700",
            ":7700",
            "-host:7700",
            "ho st:7700",
            "999.1.1.1:7700",
            "[not-v6]:7700",
            "::1:7700",
            "主机:7700",
        ] {
            let err = host_port("parent", bad).unwrap_err();
            assert_eq!(err.field, "parent");
            assert!(err.rule.contains("主机:端口"), "{bad}: {}", err.rule);
        }
    }

    #[test]
    fn quotes_are_clipped_on_a_character_boundary() {
        assert_eq!(clip("短文本", 10), "短文本");
        let long = "民".repeat(1_000_000);
        let quoted = quote(&long);
        assert!(quoted.chars().count() < QUOTE_CHARS + 20, "{quoted}");
        assert!(quoted.ends_with("…（共 1000000 个字符）"), "{quoted}");
        let err = parse_date("date", &"9".repeat(1_000_000)).unwrap_err();
        assert!(err.rule.len() < 400, "{}", err.rule.len());
    }
}
