//! `check_availability`: the free times of a service on one day.

use super::spoken::{join_spoken, spoken_day, spoken_time};
use super::{CallSession, Calls, ToolResult, day_or_today};
use crate::domain::DaySpec;

impl Calls {
    pub(super) async fn check_availability(
        &self,
        s: &CallSession,
        day: Option<DaySpec>,
        service: Option<&str>,
    ) -> ToolResult {
        let day = day_or_today(s, day);
        let service = self.service(s, service).await?;
        let slots = self.slots(s, &service, day, 1).await?;
        if slots.is_empty() {
            return Ok(format!(
                "Nothing is free on {} for {}. Would another day work?",
                spoken_day(day),
                service.name
            ));
        }
        let times: Vec<String> = slots
            .iter()
            .map(|sl| spoken_time(&sl.start.with_timezone(&s.tenant.time_zone)))
            .collect();
        Ok(format!(
            "On {} these times are free for {}: {}.",
            spoken_day(day),
            service.name,
            join_spoken(&times)
        ))
    }
}
