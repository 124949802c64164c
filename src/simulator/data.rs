//! The simulator's world: the demo business's contacts, memories and
//! calendars, kept coherent — a booked slot disappears from free slots, a
//! contact upserted by phone is found by phone, messages added to memory
//! show up in its context.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde_json::{Value, json};

/// Credentials the simulator accepts, per upstream.
pub const GHL_TOKEN: &str = "sim-ghl-token";
pub const ZEP_KEY: &str = "sim-zep-key";
pub const MEM0_KEY: &str = "sim-mem0-key";
pub const CALCOM_KEY: &str = "cal_sim_key";

pub const DEMO_LOCATION: &str = "loc_demo";
/// Callers the demo knows: (number, first name, last name, memories).
pub const DEMO_CALLERS: [(&str, &str, &str, &[&str]); 3] = [
    (
        "+15550100001",
        "Ana",
        "Souza",
        &[
            "Prefers morning appointments",
            "Had a cleaning in March; due for the next one",
            "Asked about teeth whitening prices",
        ],
    ),
    (
        "+15550100002",
        "Ben",
        "Carter",
        &["Nervous about drills; likes to be talked through each step"],
    ),
    ("+15550100003", "Chloe", "Park", &[]),
];
pub const DEMO_TENANT_ID: &str = "demo-dental";

/// Business hours of every simulated calendar, in the requested time zone.
const OPEN: u32 = 9;
const CLOSE: u32 = 17;
const SLOT_MINUTES: i64 = 30;
/// The simulated businesses keep New York hours, whatever zone a request
/// asks its answer in.
const BUSINESS_TZ: Tz = chrono_tz::America::New_York;

#[derive(Debug, Clone)]
pub struct GhlContact {
    pub id: String,
    pub location_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub tags: Vec<String>,
}

impl GhlContact {
    pub fn to_json(&self) -> Value {
        let name = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        json!({
            "id": self.id, "locationId": self.location_id,
            "firstName": self.first_name, "lastName": self.last_name,
            "name": name,
            "email": self.email, "phone": self.phone, "tags": self.tags,
            "dateAdded": "2026-01-05T15:00:00.000Z",
        })
    }
}

#[derive(Debug, Default)]
pub struct ZepThread {
    pub user_id: String,
    pub messages: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct SimData {
    pub contacts: Vec<GhlContact>,
    pub zep_users: HashSet<String>,
    pub zep_threads: HashMap<String, ZepThread>,
    /// Facts the memory services know per user id (Zep and mem0 alike).
    pub facts: HashMap<String, Vec<String>>,
    /// Booked starts (epoch ms) per calendar id or event type id.
    pub booked: HashMap<String, HashSet<i64>>,
    next_id: u64,
}

impl SimData {
    pub fn seeded() -> Self {
        let mut data = SimData::default();
        for (number, first, last, facts) in DEMO_CALLERS {
            let id = data.id("ct");
            data.contacts.push(GhlContact {
                id,
                location_id: DEMO_LOCATION.into(),
                first_name: Some(first.into()),
                last_name: Some(last.into()),
                email: Some(format!("{}@example.com", first.to_lowercase())),
                phone: Some(number.into()),
                tags: vec!["patient".into()],
            });
            if !facts.is_empty() {
                let user = format!("{DEMO_TENANT_ID}-{}", number.trim_start_matches('+'));
                data.zep_users.insert(user.clone());
                data.zep_threads.insert(
                    format!("wl-{user}"),
                    ZepThread {
                        user_id: user.clone(),
                        messages: Vec::new(),
                    },
                );
                data.facts
                    .insert(user, facts.iter().map(|f| f.to_string()).collect());
            }
        }
        data
    }

    pub fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{:06}", self.next_id)
    }

    /// Free starts in `[from, to)` on `calendar`: weekdays, 9:00 to 17:00
    /// every 30 minutes in the business's time zone, minus a fixed pattern of
    /// busy slots and whatever was booked, never in the past.
    pub fn free_starts(
        &self,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let tz = BUSINESS_TZ;
        let now = Utc::now();
        let booked = self.booked.get(calendar);
        let mut out = Vec::new();
        let mut day = from.with_timezone(&tz).date_naive();
        let last = to.with_timezone(&tz).date_naive();
        while day <= last {
            if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
                let mut t = NaiveTime::from_hms_opt(OPEN, 0, 0).expect("valid time");
                while t < NaiveTime::from_hms_opt(CLOSE, 0, 0).expect("valid time") {
                    if let Some(start) = tz.from_local_datetime(&day.and_time(t)).single() {
                        let utc = start.with_timezone(&Utc);
                        let taken = booked.is_some_and(|b| b.contains(&utc.timestamp_millis()));
                        if utc >= from
                            && utc < to
                            && utc > now
                            && !busy_pattern(calendar, day, t)
                            && !taken
                        {
                            out.push(utc);
                        }
                    }
                    t += Duration::minutes(SLOT_MINUTES);
                }
            }
            day = day.succ_opt().expect("date in range");
        }
        out
    }

    /// [`free_starts`](Self::free_starts) grouped by day as seen in `tz`,
    /// with every day of the range present (empty when fully booked).
    pub fn free_slots(
        &self,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        tz: Tz,
    ) -> BTreeMap<NaiveDate, Vec<DateTime<Tz>>> {
        let mut out: BTreeMap<NaiveDate, Vec<DateTime<Tz>>> = BTreeMap::new();
        let mut day = from.with_timezone(&tz).date_naive();
        let last = (to - Duration::milliseconds(1))
            .with_timezone(&tz)
            .date_naive();
        while day <= last {
            out.insert(day, Vec::new());
            day = day.succ_opt().expect("date in range");
        }
        for s in self.free_starts(calendar, from, to) {
            let local = s.with_timezone(&tz);
            out.entry(local.date_naive()).or_default().push(local);
        }
        out
    }

    /// Books `start` on `calendar` if it is a free slot.
    pub fn book(&mut self, calendar: &str, start: DateTime<Utc>) -> bool {
        let free = self
            .free_starts(calendar, start, start + Duration::minutes(1))
            .contains(&start);
        if free {
            self.booked
                .entry(calendar.to_owned())
                .or_default()
                .insert(start.timestamp_millis());
        }
        free
    }

    /// What Zep's context block says of a user: known facts and the latest
    /// messages of their thread.
    pub fn zep_context(&self, thread_id: &str) -> Option<String> {
        let thread = self.zep_threads.get(thread_id)?;
        let mut lines = Vec::new();
        if let Some(facts) = self.facts.get(&thread.user_id) {
            lines.extend(facts.iter().map(|f| format!("- {f}")));
        }
        lines.extend(
            thread
                .messages
                .iter()
                .rev()
                .take(4)
                .rev()
                .map(|(role, content)| format!("- ({role}) {content}")),
        );
        Some(if lines.is_empty() {
            String::new()
        } else {
            format!("FACTS and ENTITIES about the user:\n{}", lines.join("\n"))
        })
    }
}

/// About a quarter of the week is already taken, the same way every run.
fn busy_pattern(calendar: &str, day: NaiveDate, t: NaiveTime) -> bool {
    let mut h: u64 = 1469598103934665603;
    for b in calendar
        .bytes()
        .chain(day.to_string().bytes())
        .chain(t.to_string().bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(1099511628211);
    }
    h.is_multiple_of(4)
}

/// The demo tenant's configuration, wired to a simulator at `base_url`.
pub fn demo_tenant_config(base_url: &str) -> Value {
    json!({
        "crm": { "kind": "gohighlevel", "location_id": DEMO_LOCATION, "base_url": base_url, "token": GHL_TOKEN },
        "memory": { "kind": "zep", "base_url": base_url, "token": ZEP_KEY },
        "calendar": { "kind": "gohighlevel", "location_id": DEMO_LOCATION, "base_url": base_url, "token": GHL_TOKEN },
        "vapi_assistant": {
            "name": "Demo Dental receptionist",
            "firstMessage": "Thanks for calling {{business_name}}, how can I help?",
            "model": { "provider": "openai", "model": "gpt-4o-mini", "messages": [{
                "role": "system",
                "content": "You are the receptionist of {{business_name}}. The caller is {{customer_name}} ({{total_calls}} calls before). Notes: {{memory_summary}}. Free times: {{next_available_slots}}."
            }] }
        },
        "services": [
            { "id": "cleaning", "name": "Teeth cleaning", "duration_minutes": 30, "calendar_id": "cal_demo_cleaning" },
            { "id": "checkup", "name": "Check-up", "duration_minutes": 30, "calendar_id": "cal_demo_checkup" },
            { "id": "whitening", "name": "Whitening consultation", "duration_minutes": 30, "calendar_id": "cal_demo_whitening" }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_slots_are_weekday_business_hours_and_a_booking_removes_one() {
        let mut data = SimData::seeded();
        // A Monday two weeks ahead, so no slot is in the past.
        let mut day = Utc::now().date_naive() + Duration::days(14);
        while day.weekday() != Weekday::Mon {
            day = day.succ_opt().unwrap();
        }
        let tz: Tz = "America/New_York".parse().unwrap();
        let from = tz
            .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
            .unwrap()
            .with_timezone(&Utc);
        let to = from + Duration::days(7);
        let slots = data.free_slots("cal_x", from, to, tz);
        let monday = &slots[&day];
        assert!(
            !monday.is_empty() && monday.len() < 16,
            "{} slots",
            monday.len()
        );
        assert!(monday.iter().all(|s| (9..17).contains(&s.hour_of(tz))));
        let saturday = day + Duration::days(5);
        assert!(slots[&saturday].is_empty());

        let first = monday[0].with_timezone(&Utc);
        assert!(data.book("cal_x", first));
        assert!(!data.book("cal_x", first), "a slot books once");
        let after = data.free_slots("cal_x", from, to, tz);
        assert_eq!(after[&day].len(), monday.len() - 1);
    }

    trait HourOf {
        fn hour_of(&self, tz: Tz) -> u32;
    }
    impl HourOf for DateTime<Tz> {
        fn hour_of(&self, tz: Tz) -> u32 {
            use chrono::Timelike;
            self.with_timezone(&tz).hour()
        }
    }
}
