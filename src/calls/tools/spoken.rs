//! Days, times and lists as an agent says them, in the tenant's time zone.

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

pub fn spoken_day(d: NaiveDate) -> String {
    d.format("%A, %B %-d").to_string()
}

pub fn spoken_time(t: &DateTime<Tz>) -> String {
    t.format("%-I:%M %p").to_string()
}

/// `a`, `a and b`, `a, b and c`.
pub fn join_spoken(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A local day's bounds in UTC.
pub struct Day {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

pub fn day_bounds(tz: Tz, day: NaiveDate) -> Day {
    let at = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight")))
    };
    Day {
        start: at(day),
        end: at(day + ChronoDuration::days(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_spoken_naturally() {
        assert_eq!(join_spoken(&["a".into()]), "a");
        assert_eq!(
            join_spoken(&["a".into(), "b".into(), "c".into()]),
            "a, b and c"
        );
    }
}
