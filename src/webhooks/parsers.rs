//! Every parser of the edge, callable on raw bytes without a server: the
//! fuzz targets (`fuzz/`) and the property tests drive these. Each returns
//! what the handler would act on, or the 400 the platform would get; none
//! may panic, whatever the bytes.

use crate::domain::{CallId, InboundCall, PhoneNumber, ToolCall};
use crate::error::ApiError;

/// `POST /retell/inbound`.
pub fn retell_inbound(body: &[u8]) -> Result<InboundCall, ApiError> {
    super::retell::parse_inbound(body)
}

/// `POST /retell/inbound` carrying an SMS's `chat_inbound`: the customer's
/// and the business's numbers and the chat id, or `None` for another event.
#[allow(clippy::type_complexity)]
pub fn retell_chat_inbound(
    body: &[u8],
) -> Result<Option<(Option<PhoneNumber>, PhoneNumber, Option<CallId>)>, ApiError> {
    super::retell::parse_chat(body).map(|c| c.map(|c| (c.caller, c.called, c.chat_id)))
}

/// `POST /retell/functions[/{name}]`, with the request's query string.
pub fn retell_function(
    path_name: Option<&str>,
    query: &str,
    body: &[u8],
) -> Result<ToolCall, ApiError> {
    super::retell::parse_function_request(path_name, query, body)
}

/// `POST /retell/events`: the event's name, once parsed.
pub fn retell_event(body: &[u8]) -> Result<String, ApiError> {
    super::retell::parse_event(body).map(|d| d.name())
}

/// `POST /vapi`: the message's `type`, once parsed (a SIP line is not
/// resolved here: that needs the tenant directory).
pub fn vapi_message(body: &[u8]) -> Result<String, ApiError> {
    super::vapi::parse(body).map(|(kind, _)| kind)
}

/// `POST /elevenlabs/initiation`.
pub fn elevenlabs_initiation(body: &[u8]) -> Result<InboundCall, ApiError> {
    super::elevenlabs::parse_initiation(body)
}

/// `POST /elevenlabs/post-call`, checked against `now_s`: the event's name.
pub fn elevenlabs_post_call(body: &[u8], now_s: i64) -> Result<String, ApiError> {
    super::elevenlabs::parse_post_call(body, now_s).map(|(kind, _)| kind)
}
