//! `list_services`: what the business offers, with durations.

use super::spoken::join_spoken;
use super::{CallSession, Calls, ToolResult};

impl Calls {
    pub(super) async fn list_services(&self, s: &CallSession) -> ToolResult {
        let services = self.services_of(s).await?;
        if services.is_empty() {
            return Ok("There are no bookable services set up.".into());
        }
        let items: Vec<String> = services
            .iter()
            .map(|sv| format!("{} ({} minutes)", sv.name, sv.duration_minutes))
            .collect();
        Ok(format!("{} offers {}.", s.tenant.name, join_spoken(&items)))
    }
}
