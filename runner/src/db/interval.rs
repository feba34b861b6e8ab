//! PostgreSQL `interval` <-> Python `timedelta` the way asyncpg converts them.

use chrono::TimeDelta;
use sqlx::postgres::types::PgInterval;

const DAY_US: i64 = 86_400_000_000;
const SECOND_US: i128 = 1_000_000;

/// The largest day count (either sign) a Python timedelta holds.
pub const MAX_DAYS: i64 = 999_999_999;

/// asyncpg decodes an interval as `timedelta(days=days + 30 * months, microseconds=...)`.
pub fn to_timedelta(i: &PgInterval) -> TimeDelta {
    TimeDelta::microseconds(i.microseconds) + TimeDelta::days(i.days as i64 + 30 * i.months as i64)
}

/// asyncpg encodes a timedelta as (months 0, `td.days`, `td.seconds`·10⁶ + `td.microseconds`),
/// `td.days` being the floor of the day count as Python normalises it.
/// Computed in i128: 999999999 days do not fit i64 microseconds.
pub fn from_timedelta(td: TimeDelta) -> PgInterval {
    let total = total_microseconds(td);
    PgInterval {
        months: 0,
        days: total.div_euclid(DAY_US as i128) as i32,
        microseconds: total.rem_euclid(DAY_US as i128) as i64,
    }
}

/// Every microsecond of `td`, exactly.
fn total_microseconds(td: TimeDelta) -> i128 {
    td.num_seconds() as i128 * SECOND_US + (td.subsec_nanos() / 1000) as i128
}

/// `timedelta.total_seconds()`: Python divides the exact microsecond count
/// by 10⁶ with one correct rounding.
pub fn total_seconds(td: TimeDelta) -> f64 {
    let us = total_microseconds(td);
    if us.unsigned_abs() < 1 << 53 {
        // Both operands exact: one IEEE division rounds correctly.
        return us as f64 / 1e6;
    }
    // Beyond 2^53 µs `us as f64` would round before the division. Scale up
    // so the integer quotient has far more than 53 bits, fold a non-zero
    // remainder into its lowest bit (a sticky bit), and round once.
    let shift = us.unsigned_abs().leading_zeros();
    let n = us.unsigned_abs() << shift;
    let (q, r) = (n / SECOND_US as u128, n % SECOND_US as u128);
    let secs = (q | (r != 0) as u128) as f64 / 2f64.powi(shift as i32);
    if us < 0 {
        -secs
    } else {
        secs
    }
}

/// `timedelta(seconds=secs)` as CPython's `delta_new` computes it: the
/// whole seconds exactly, the fraction ×10⁶ split again with `modf`, and the
/// leftover below a microsecond rounded to nearest, a tie going to the even
/// microsecond total. Rounding `secs * 1e6` instead differs by 1 µs when the
/// product lands on a tie the exact value does not have (2604.3520005).
/// `None` where Python raises: NaN, infinite, or beyond ±999999999 days.
pub fn from_seconds(secs: f64) -> Option<TimeDelta> {
    if !secs.is_finite() || secs.abs() >= 1e17 {
        return None;
    }
    let (whole, frac) = (secs.trunc(), secs.fract());
    let mut us = whole as i128 * SECOND_US;
    let scaled = frac * 1e6;
    us += scaled.trunc() as i128;
    let leftover = scaled.fract();
    if leftover != 0.0 {
        // C `round`: half away from zero; then the tie goes to even.
        let mut whole_us = leftover.round();
        if (whole_us - leftover).abs() == 0.5 {
            let odd = (us & 1) as f64;
            whole_us = 2.0 * ((leftover + odd) * 0.5).round() - odd;
        }
        us += whole_us as i128;
    }
    from_microseconds(us)
}

/// `timedelta(microseconds=us)`; `None` beyond ±999999999 days.
pub fn from_microseconds(us: i128) -> Option<TimeDelta> {
    let days = us.div_euclid(DAY_US as i128);
    if days.unsigned_abs() > MAX_DAYS as u128 {
        return None;
    }
    let rest = us.rem_euclid(DAY_US as i128) as i64;
    Some(TimeDelta::days(days as i64) + TimeDelta::microseconds(rest))
}

/// The `microseconds` attribute of a timedelta (0..=999999).
pub fn microseconds_part(td: TimeDelta) -> i64 {
    total_microseconds(td).rem_euclid(SECOND_US) as i64
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
        assert_eq!(microseconds_part(from_seconds(2.000_25).unwrap()), 250);
    }

    /// µs of `timedelta(seconds=x)` per CPython 3.11 (`python3 -c` with
    /// `(td.days*86400 + td.seconds)*10**6 + td.microseconds`).
    const CPYTHON: [(f64, i128); 13] = [
        (2604.3520005, 2_604_352_001),
        (3600.0000005, 3_600_000_001),
        (5e-7, 0),
        (1.5e-6, 2),
        (-1.5e-6, -2),
        (-5e-7, 0),
        (2.5e-6, 2),
        (123456.7890125, 123_456_789_012),
        (4.9999995, 5_000_000),
        (-5.0, -5_000_000),
        (0.1, 100_000),
        (1e13, 10_000_000_000_000_000_000),
        (86399999999999.99, 86_399_999_999_999_984_375),
    ];

    #[test]
    fn seconds_round_to_the_microsecond_as_cpython_does() {
        for (secs, us) in CPYTHON {
            let td = from_seconds(secs).unwrap_or_else(|| panic!("{secs} refused"));
            assert_eq!(total_microseconds(td), us, "timedelta(seconds={secs})");
        }
        // The audit's average of two runs: 2604.3520005 s is 0:43:24.352001.
        let avg = (2602.510383 + 2606.193618) / 2.0;
        assert_eq!(total_seconds(from_seconds(avg).unwrap()), 2604.352001);
        assert_eq!(
            total_seconds(from_seconds(3600.0000005).unwrap()),
            3600.000001
        );
    }

    #[test]
    fn seconds_beyond_a_timedelta_are_refused() {
        assert_eq!(from_seconds(f64::NAN), None);
        assert_eq!(from_seconds(f64::INFINITY), None);
        // Floor days -1000000000 (OverflowError in Python).
        assert_eq!(from_seconds(-86399999999999.0), None);
        assert_eq!(from_seconds(8.64e13), None);
        assert_eq!(from_seconds(1e300), None);
    }

    #[test]
    fn large_durations_stay_exact() {
        // Python: 115740740 days, 17:46:40; total_seconds() 10000000000000.0.
        let td = from_seconds(1e13).unwrap();
        let i = from_timedelta(td);
        assert_eq!((i.days, i.microseconds), (115_740_740, 64_000_000_000));
        assert_eq!(to_timedelta(&i), td);
        assert_eq!(total_seconds(td), 1e13);
        // One rounding, as Python's int / int: `float(n) / 1e6` would give
        // 17446173797594.291.
        let td = from_microseconds(17_446_173_797_594_289_345).unwrap();
        assert_eq!(total_seconds(td), 17446173797594.29);
        assert_eq!(total_seconds(-td), -17446173797594.29);
        assert_eq!(microseconds_part(td), 289_345);
    }
}
