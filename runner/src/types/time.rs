//! Python's datetime/timedelta renderings.

use chrono::{NaiveDateTime, Timelike};

/// `datetime.isoformat()` of a naive value: microseconds only when non-zero.
pub fn isoformat(t: &NaiveDateTime) -> String {
    if t.nanosecond() / 1000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

/// `isoformat(timespec="seconds")`.
pub fn isoformat_seconds(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// `datetime.fromisoformat` for the naive forms the runner writes itself.
pub fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    // The status document parses every keepalive at every publication.
    if let Some(t) = parse_isoformat(s) {
        return Some(t);
    }
    let s = s.replacen(' ', "T", 1);
    NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M"))
        .ok()
}

/// Exactly what [`isoformat`] writes (`YYYY-MM-DDTHH:MM:SS[.ffffff]`), read
/// without the format machinery; anything else is `None`.
fn parse_isoformat(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if !(b.len() == 19 || (b.len() == 26 && b[19] == b'.')) {
        return None;
    }
    if (b[4], b[7], b[10], b[13], b[16]) != (b'-', b'-', b'T', b':', b':') {
        return None;
    }
    let num = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    let micro = if b.len() == 26 { num(20, 26)? } else { 0 };
    let time =
        chrono::NaiveTime::from_hms_micro_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, micro)?;
    Some(NaiveDateTime::new(date, time))
}

/// `timedelta.total_seconds()` between two naive datetimes, microsecond precision.
pub fn seconds_between(later: &NaiveDateTime, earlier: &NaiveDateTime) -> f64 {
    let d = *later - *earlier;
    d.num_microseconds()
        .map(|us| us as f64 / 1e6)
        .unwrap_or(d.num_seconds() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_parse_agrees_with_the_format_parse() {
        let slow = |s: &str| {
            NaiveDateTime::parse_from_str(&s.replacen(' ', "T", 1), "%Y-%m-%dT%H:%M:%S%.f").ok()
        };
        for s in [
            "2020-02-02T10:00:00",
            "2020-02-02T10:00:00.123456",
            "2020-02-02T10:00:00.000001",
            "0001-01-01T00:00:00",
            "9999-12-31T23:59:59.999999",
            "2024-02-29T12:30:45.5",
            "2023-02-29T12:30:45",
            "2020-02-02T24:00:00",
            "2020-02-02T10:00:60",
            "2020-13-02T10:00:00",
            "2020-02-02 10:00:00",
            "2020-02-02T10:00:0a",
            "+2020-02-02T10:00:00",
        ] {
            if let Some(fast) = parse_isoformat(s) {
                assert_eq!(Some(fast), slow(s), "{s}");
            }
            assert_eq!(
                parse_naive(s),
                slow(s).or_else(|| {
                    NaiveDateTime::parse_from_str(&s.replacen(' ', "T", 1), "%Y-%m-%dT%H:%M").ok()
                }),
                "{s}"
            );
        }
        assert!(parse_isoformat("2020-02-02T10:00:00.123456").is_some());
        assert!(parse_isoformat("2020-02-02T10:00:00").is_some());
    }

    #[test]
    fn isoformat_drops_zero_microseconds_like_python() {
        let t = parse_naive("2020-02-02T10:00:00").unwrap();
        assert_eq!(isoformat(&t), "2020-02-02T10:00:00");
        let t = parse_naive("2020-02-02T10:00:00.000120").unwrap();
        assert_eq!(isoformat(&t), "2020-02-02T10:00:00.000120");
        assert_eq!(isoformat_seconds(&t), "2020-02-02T10:00:00");
    }

    #[test]
    fn seconds_between_keeps_microseconds() {
        let a = parse_naive("2020-02-02T10:00:00").unwrap();
        let b = parse_naive("2020-02-02T10:10:30.5").unwrap();
        assert_eq!(seconds_between(&b, &a), 630.5);
    }
}
