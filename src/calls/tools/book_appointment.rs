//! `book_appointment`: books the slot in the tenant's calendar, stops every
//! replica from offering it again, and logs the appointment durably.

use chrono::{Duration as ChronoDuration, TimeZone, Utc};

use super::spoken::{spoken_day, spoken_time};
use super::{CallSession, Calls, ToolResult};
use crate::cache::{FlushScope, Namespace, keys};
use crate::domain::{BookingArgs, ToolCall};
use crate::store::NewAppointment;
use crate::upstreams::{BookingRequest, UpstreamError};
use crate::writebehind::{Job, Outcome};

impl Calls {
    pub(super) async fn book_appointment(
        &self,
        tc: &ToolCall,
        s: &CallSession,
        args: &BookingArgs,
    ) -> ToolResult {
        let tz = s.tenant.time_zone;
        let day = args.day.resolve(super::today(s));
        let time = args.time;
        let service = self.service(s, args.service.as_deref()).await?;
        let phone = match (&s.caller, &args.phone) {
            (Some(p), _) | (None, Some(p)) => p.clone(),
            (None, None) => return Err("I need a phone number to book with.".into()),
        };
        let name = args
            .name
            .clone()
            .or_else(|| s.context.customer_name.clone())
            .unwrap_or_else(|| "Caller".into());
        let start = tz
            .from_local_datetime(&day.and_time(time))
            .earliest()
            .ok_or("That time doesn't exist on that day. Could you pick another?")?;
        if start.with_timezone(&Utc) <= Utc::now() {
            return Err("That time has already passed. Could you pick a later one?".into());
        }
        let up = self
            .upstreams
            .for_tenant(&s.tenant)
            .map_err(|_| "I can't reach the booking system right now.".to_owned())?;
        let calendar = up
            .calendar
            .clone()
            .ok_or("Booking isn't set up for this business.")?;
        let request = BookingRequest {
            service: service.clone(),
            start: start.fixed_offset(),
            contact_id: s.context.crm_contact_id.clone(),
            name,
            email: args.email.clone(),
            phone: phone.clone(),
            time_zone: tz,
            notes: args.notes.clone(),
        };
        let booking = match calendar.book(&request).await {
            Ok(b) => b,
            Err(UpstreamError::SlotTaken { .. }) => {
                return Err(format!(
                    "{} on {} at {} isn't available anymore. Shall I look for another time?",
                    service.name,
                    spoken_day(day),
                    spoken_time(&start)
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "booking failed");
                return Err(
                    "I couldn't reach the calendar to book that. Please try again in a moment."
                        .into(),
                );
            }
        };

        // The slot is gone: every replica must stop offering it.
        self.cache
            .flush(&FlushScope::Prefix {
                ns: Namespace::Slots,
                prefix: keys::slots_prefix(&s.tenant.id, &service.id),
            })
            .await;
        self.cache
            .flush(&FlushScope::Key {
                ns: Namespace::Context,
                key: keys::caller(&s.tenant.id, &phone),
            })
            .await;
        let end = booking.end.unwrap_or(
            booking.start + ChronoDuration::minutes(i64::from(service.duration_minutes)),
        );
        let job = Job::Appointment {
            appointment: NewAppointment {
                id: booking.id.clone(),
                tenant_id: s.tenant.id.clone(),
                provider: Some(tc.provider),
                call_id: tc.call_id.clone().or_else(|| s.call_id.clone()),
                contact_phone: phone,
                service: Some(service.name.clone()),
                starts_at_ms: booking.start.timestamp_millis(),
                ends_at_ms: end.timestamp_millis(),
            },
            time_zone: tz,
        };
        // The booking exists in the calendar whatever happens to our log of
        // it, so the answer is `Ok` either way (counted as
        // `warmline_tool_calls_total{outcome="ok"}`, a booking made, as the
        // dashboards count it): `at_most_once` remembers only successes, and
        // an `Err` would let a re-delivered request book a second time, or
        // tell the caller their own slot "isn't available anymore". What
        // failed is the record: the answer says so rather than claim plain
        // success, and the error is logged with the booking's id so an
        // operator can enter it.
        let logged = match self.writebehind.submit(job).await {
            Ok((_, Outcome::Rejected)) => {
                // Kept in the spill directory's rejected journal, not the log.
                tracing::error!(booking = %booking.id, "the database refused the appointment record");
                false
            }
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, booking = %booking.id, "could not log the appointment");
                false
            }
        };
        let local = booking.start.with_timezone(&tz);
        let booked = format!(
            "Booked: {} on {} at {}.",
            service.name,
            spoken_day(local.date_naive()),
            spoken_time(&local)
        );
        if logged {
            Ok(booked)
        } else {
            Ok(format!(
                "{booked} But I couldn't save it in our records, so the business will confirm it with you."
            ))
        }
    }
}
