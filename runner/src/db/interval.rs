//! PostgreSQL `interval` <-> Python `timedelta` the way asyncpg converts them.

use chrono::TimeDelta;
use sqlx::postgres::types::PgInterval;

const DAY_US: i64 = 86_400_000_000;

/// asyncpg decodes an interval as `timedelta(days=days + 30 * months, microseconds=...)`.
pub fn to_timedelta(i: &PgInterval) -> TimeDelta {
    TimeDelta::microseconds(i.microseconds) + TimeDelta::days(i.days as i64 + 30 * i.months as i64)
}

/// asyncpg encodes a timedelta as (months 0, `td.days`, `td.seconds`·10⁶ + `td.microseconds`),
/// `td.days` being the floor of the day count as Python normalises it.
pub fn from_timedelta(td: TimeDelta) -> PgInterval {
    let total = td.num_microseconds().unwrap_or(i64::MAX);
    PgInterval {
        months: 0,
        days: total.div_euclid(DAY_US) as i32,
        microseconds: total.rem_euclid(DAY_US),
    }
}

/// `timedelta.total_seconds()`.
pub fn total_seconds(td: TimeDelta) -> f64 {
    match td.num_microseconds() {
        Some(us) => us as f64 / 1e6,
        None => td.num_seconds() as f64,
    }
}

/// `timedelta(seconds=secs)`: rounded to the microsecond, ties to even.
pub fn from_seconds(secs: f64) -> TimeDelta {
    TimeDelta::microseconds((secs * 1e6).round_ties_even() as i64)
}

/// The `microseconds` attribute of a timedelta (0..=999999).
pub fn microseconds_part(td: TimeDelta) -> i64 {
    td.num_microseconds().unwrap_or(0).rem_euclid(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_like_asyncpg() {
        let td = TimeDelta::hours(25) + TimeDelta::microseconds(7);
        let i = from_timedelta(td);
        assert_eq!((i.months, i.days, i.microseconds), (0, 1, 3_600_000_007));
        assert_eq!(to_timedelta(&i), td);
        let neg = from_timedelta(TimeDelta::seconds(-1));
        assert_eq!((neg.days, neg.microseconds), (-1, DAY_US - 1_000_000));
        assert_eq!(total_seconds(TimeDelta::milliseconds(1500)), 1.5);
        assert_eq!(microseconds_part(from_seconds(2.000_25)), 250);
    }
}
