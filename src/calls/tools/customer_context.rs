//! `get_customer_context`: what warmline knows of the caller, in sentences.

use super::CallSession;

/// The caller's context as the agent may read it out.
pub fn describe(s: &CallSession) -> String {
    let c = &s.context;
    let mut parts = Vec::new();
    match &c.customer_name {
        Some(n) => parts.push(format!("The caller is {n}.")),
        None => parts.push("The caller's name is not known.".into()),
    }
    if c.returning_caller {
        parts.push(match c.total_calls {
            // Known to the CRM or the memory, but no call logged here yet.
            0 => "They are a known customer.".into(),
            1 => "They have called once before.".into(),
            n => format!("They have called {n} times before."),
        });
    } else {
        parts.push("This is their first call.".into());
    }
    if let Some(m) = &c.memory_summary {
        parts.push(format!("Notes: {m}"));
    }
    let slots = c.slots_spoken();
    if !slots.is_empty() {
        parts.push(format!("Next free times: {}.", slots.join("; ")));
    }
    parts.join(" ")
}
