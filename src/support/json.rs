//! JSON read from a request, with errors that name the field that was wrong
//! and never echo its value: serde's own messages quote what they could not
//! read (`invalid type: string "+1 415 555 0123", expected i64`), and a
//! request's values are callers' numbers, names and transcripts.

use std::fmt;

use serde::de::DeserializeOwned;

/// Why a payload could not be read: where, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonProblem {
    /// What was being read, e.g. "call_inbound payload".
    what: String,
    /// The dotted path of the field, when the JSON was well formed.
    path: Option<String>,
    problem: String,
}

impl JsonProblem {
    /// The same problem, read from the value at `parent` of a larger payload.
    pub fn within(mut self, parent: &str) -> Self {
        self.path = Some(match self.path {
            Some(p) => format!("{parent}.{p}"),
            None => parent.to_owned(),
        });
        self
    }
}

impl fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "invalid {}: `{path}`: {}", self.what, self.problem),
            None => write!(f, "invalid {}: {}", self.what, self.problem),
        }
    }
}

impl std::error::Error for JsonProblem {}

/// Reads `T` from raw bytes; `what` names the payload in the error.
pub fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, JsonProblem> {
    // The common case, a good payload, pays for no path tracking; a bad one
    // is read again to say where it went wrong.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| problem(what, e))?;
    // Trailing characters after the value are a syntax error too.
    de.end().map_err(|e| JsonProblem {
        what: what.to_owned(),
        path: None,
        problem: describe(&e),
    })?;
    Ok(value)
}

/// Reads `T` from a JSON value already parsed.
pub fn from_value<T: DeserializeOwned>(
    value: serde_json::Value,
    what: &str,
) -> Result<T, JsonProblem> {
    serde_path_to_error::deserialize(value).map_err(|e| problem(what, e))
}

fn problem(what: &str, e: serde_path_to_error::Error<serde_json::Error>) -> JsonProblem {
    let path = e.path().to_string();
    let path = (path != "." && !path.is_empty()).then_some(path);
    JsonProblem {
        what: what.to_owned(),
        path,
        problem: describe(e.inner()),
    }
}

/// serde_json's message without the value it quotes.
pub fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "the body could not be read".into(),
        Category::Eof => "the JSON ends too early".into(),
        Category::Syntax => format!("not valid JSON (line {}, column {})", e.line(), e.column()),
        Category::Data => data_problem(&e.to_string()),
    }
}

/// Serde's data errors are `invalid type: <what was found>, expected <what
/// the type wants>` and the like; only the parts that come from warmline's
/// own types are kept.
fn data_problem(message: &str) -> String {
    let message = message
        .rfind(" at line ")
        .map_or(message, |at| &message[..at]);
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("missing field {field}");
    }
    if let Some(field) = message.strip_prefix("duplicate field ") {
        return format!("duplicate field {field}");
    }
    // A field's name (not a value): the sender's own key, named back.
    if message.starts_with("unknown field `") {
        return message.to_owned();
    }
    let kind = [
        ("invalid type", "wrong type"),
        ("invalid value", "invalid value"),
        ("invalid length", "wrong number of elements"),
        ("unknown variant", "unknown value"),
    ]
    .into_iter()
    .find_map(|(prefix, kind)| message.starts_with(prefix).then_some(kind));
    match (kind, message.rfind(", expected ")) {
        (Some(kind), Some(at)) => format!("{kind}, {}", &message[at + 2..]),
        (Some(kind), None) => kind.to_owned(),
        // A message of warmline's own types (a phone number, an id): they
        // are written not to quote the value, but nothing here relies on it.
        (None, _) => "not a valid value".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Call {
        call: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        call_id: String,
        start_timestamp: Option<i64>,
        kind: Option<Kind>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Inbound,
    }

    #[test]
    fn a_wrong_type_names_the_field_and_not_the_value() {
        let e = parse::<Call>(
            br#"{"call":{"call_id":"c","start_timestamp":"+1 (415) 555-0123"}}"#,
            "event payload",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`call.start_timestamp`"), "{e}");
        assert!(e.contains("expected i64"), "{e}");
        assert!(!e.contains("555"), "{e}");
    }

    #[test]
    fn unknown_variants_and_missing_fields_are_named_without_values() {
        let e = parse::<Call>(
            br#"{"call":{"call_id":"c","kind":"+14155550123"}}"#,
            "event payload",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`call.kind`: unknown value, expected"), "{e}");
        assert!(!e.contains("4155550123"), "{e}");
        let e = parse::<Call>(br#"{"call":{}}"#, "event payload")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `call_id`"), "{e}");
    }

    #[test]
    fn syntax_errors_give_a_position_and_trailing_bytes_are_refused() {
        let e = parse::<serde_json::Value>(b"{\"a\": +1415}", "payload")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid JSON (line 1"), "{e}");
        assert!(parse::<serde_json::Value>(b"{} {}", "payload").is_err());
        assert!(parse::<serde_json::Value>(b"{", "payload").is_err());
    }
}
