//! `get_alternatives`: the free times closest to the one asked for. Several
//! searches run concurrently, each isolated (one failing does not sink the
//! others); it stops waiting once enough alternatives are found.

use chrono::{Datelike, Duration as ChronoDuration, NaiveTime, TimeZone, Utc, Weekday};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::spoken::{join_spoken, spoken_day, spoken_time};
use super::{CallSession, Calls, ToolResult, day_or_today};
use crate::domain::DaySpec;
use crate::upstreams::Slot;

/// `get_alternatives` stops once it has this many.
const ENOUGH_ALTERNATIVES: usize = 3;
const SEARCH_DAYS: i64 = 14;

impl Calls {
    pub(super) async fn get_alternatives(
        &self,
        s: &CallSession,
        day: Option<DaySpec>,
        time: Option<NaiveTime>,
        service: Option<&str>,
    ) -> ToolResult {
        let tz = s.tenant.time_zone;
        let day = day_or_today(s, day);
        let time = time.unwrap_or(NaiveTime::from_hms_opt(9, 0, 0).expect("valid"));
        let service = self.service(s, service).await?;
        let wanted = tz
            .from_local_datetime(&day.and_time(time))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        let next_workday = {
            let mut d = day + ChronoDuration::days(1);
            while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                d += ChronoDuration::days(1);
            }
            d
        };

        let strategies = [
            ("same_day_other_time", day, 1, None),
            (
                "next_workday_same_time",
                next_workday,
                1,
                Some(ChronoDuration::minutes(90)),
            ),
            ("next_available", day, SEARCH_DAYS, None),
        ];
        let mut searches: FuturesUnordered<_> = strategies
            .into_iter()
            .map(|(name, from, days, window)| {
                let service = service.clone();
                async move {
                    let result = self.slots(s, &service, from, days).await;
                    (name, result, window, from)
                }
            })
            .collect();

        let mut found: Vec<Slot> = Vec::new();
        while let Some((name, result, window, from)) = searches.next().await {
            match result {
                Ok(slots) => {
                    let candidates = slots.iter().filter(|sl| {
                        let t = sl.start.with_timezone(&Utc);
                        t != wanted
                            && match window {
                                Some(w) => {
                                    let same_time = tz
                                        .from_local_datetime(&from.and_time(time))
                                        .earliest()
                                        .map(|x| x.with_timezone(&Utc));
                                    same_time.is_some_and(|st| (t - st).abs() <= w)
                                }
                                None => true,
                            }
                    });
                    for sl in candidates.take(ENOUGH_ALTERNATIVES * 2) {
                        if !found.contains(sl) {
                            found.push(sl.clone());
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(strategy = name, error = %e, "alternative search failed; others go on")
                }
            }
            if found.len() >= ENOUGH_ALTERNATIVES * 2 {
                break; // enough: the other searches finish in the background
            }
        }
        if found.is_empty() {
            return Ok(format!(
                "I couldn't find another time for {} in the next two weeks.",
                service.name
            ));
        }
        found.sort_by_key(|sl| (sl.start.with_timezone(&Utc) - wanted).num_seconds().abs());
        found.truncate(ENOUGH_ALTERNATIVES);
        let items: Vec<String> = found
            .iter()
            .map(|sl| {
                let t = sl.start.with_timezone(&tz);
                format!("{} at {}", spoken_day(t.date_naive()), spoken_time(&t))
            })
            .collect();
        Ok(format!(
            "The closest times for {} are {}.",
            service.name,
            join_spoken(&items)
        ))
    }
}
