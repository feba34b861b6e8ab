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
    let s = s.replacen(' ', "T", 1);
    NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M"))
        .ok()
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
