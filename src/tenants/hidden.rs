//! Secrets in the admin's tenant form: which values of a tenant's document
//! are secret; hiding them as `***` — in the stored configuration and in the
//! operator's own text shown back — refusing new ones, and putting the
//! stored ones back where `***` is sent.
//!
//! A value is secret when its key names one ([`is_secret_key`]) or when it
//! sits, at any depth, under such a key — `headers` among them: an inline
//! Vapi assistant's server headers carry credentials under any name.
//!
//! A stored secret goes back only where it went before: `***` is restored
//! only when the objects around it still name the same destination — the
//! same `kind` and `provider` and the same URLs and hosts — so changing an
//! adapter's `base_url` or a server's `url` cannot send the stored secret to
//! a new place.

use serde_json::{Map, Value};

/// What stands for a stored secret, shown and sent back.
pub const HIDDEN: &str = "***";

/// A key as compared: ASCII letters and digits, lower case.
fn normal(key: &str) -> String {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Whether a key names a secret, or an object of them: `token`, `secret`,
/// `serverUrlSecret`, `password`, `authorization`, `cookie`, `bearer`,
/// `credential(s)`, anything ending in `key` (`apiKey`, `privateKey`,
/// `secretAccessKey`) and `headers` — but not `token_env`, which names a
/// variable.
pub(super) fn is_secret_key(key: &str) -> bool {
    let k = normal(key);
    [
        "token",
        "secret",
        "password",
        "key",
        "authorization",
        "credential",
        "credentials",
        "cookie",
        "bearer",
        "headers",
    ]
    .iter()
    .any(|end| k.ends_with(end))
}

/// Whether a key says where a secret beside it goes: `kind`, `provider`,
/// a URL, URI, host or endpoint.
fn is_destination_key(key: &str) -> bool {
    let k = normal(key);
    k == "kind"
        || k == "provider"
        || ["url", "uri", "host", "endpoint"]
            .iter()
            .any(|end| k.ends_with(end))
}

/// Replaces every string of `value` that is secret — `secret` says whether
/// it sits under a secret key already — by `***`.
pub(super) fn hide_values(value: &mut Value, secret: bool) {
    match value {
        Value::String(s) if secret && !s.is_empty() => *s = HIDDEN.into(),
        Value::Object(map) => map
            .iter_mut()
            .for_each(|(k, v)| hide_values(v, secret || is_secret_key(k))),
        Value::Array(items) => items.iter_mut().for_each(|v| hide_values(v, secret)),
        _ => {}
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A secret typed into the document (anything but `***` where a secret
/// goes) is refused, named by its path, never quoted.
pub(super) fn refuse_new_secrets(value: &Value, path: &str, secret: bool) -> Result<(), String> {
    match value {
        Value::String(s) if secret && !s.is_empty() && s != HIDDEN => Err(format!(
            "`{path}` holds a secret: secrets are not entered here. Put it in an environment \
             variable and give the variable's name in `token_env` (or import the tenant \
             from a file with `warmline tenants import`)"
        )),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            refuse_new_secrets(v, &child(path, k), secret || is_secret_key(k))
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| refuse_new_secrets(v, &format!("{path}[{i}]"), secret)),
        _ => Ok(()),
    }
}

/// The first key of `new` naming a destination that differs from
/// `stored`'s (added, changed or removed). A hidden one (a `provider` among
/// `credentials`) is restored as stored, so unchanged; `secret` says
/// whether `new` sits under a secret key.
fn moved_key(new: &Map<String, Value>, stored: &Value, secret: bool) -> Option<String> {
    let old = stored.as_object();
    new.keys()
        .chain(old.into_iter().flat_map(|o| o.keys()))
        .filter(|k| is_destination_key(k))
        .find(|k| {
            let (now, was) = (new.get(*k), old.and_then(|o| o.get(*k)));
            let kept = (secret || is_secret_key(k))
                && now.and_then(Value::as_str) == Some(HIDDEN)
                && was.is_some_and(Value::is_string);
            now != was && !kept
        })
        .cloned()
}

/// Puts the stored secret back wherever `***` stands where a secret goes.
/// `***` where nothing is stored is a mistake, and so is `***` whose
/// destination changed (`moved` is the first changed key above it).
pub(super) fn restore_secrets(
    value: &mut Value,
    stored: &Value,
    path: &str,
    secret: bool,
    moved: Option<&str>,
) -> Result<(), String> {
    match value {
        Value::String(s) if secret && s == HIDDEN => match (stored, moved) {
            (Value::String(_), Some(moved)) => Err(format!(
                "`{path}`: `{HIDDEN}` keeps the secret stored for where `{moved}` pointed, and \
                 `{moved}` changed, so it is not sent there: give the credential again — name \
                 the environment variable holding it in `token_env` (or import the tenant with \
                 `warmline tenants import`)"
            )),
            (Value::String(kept), None) => {
                *s = kept.clone();
                Ok(())
            }
            _ => Err(format!(
                "`{path}`: `{HIDDEN}` stands for the secret stored here, and none is; \
                 name an environment variable in `token_env` instead"
            )),
        },
        Value::Object(map) => {
            let here_moved = moved_key(map, stored, secret).map(|k| child(path, &k));
            let moved = moved.or(here_moved.as_deref());
            map.iter_mut().try_for_each(|(k, v)| {
                let old = stored.get(k.as_str()).unwrap_or(&Value::Null);
                restore_secrets(v, old, &child(path, k), secret || is_secret_key(k), moved)
            })
        }
        Value::Array(items) => items.iter_mut().enumerate().try_for_each(|(i, v)| {
            let old = stored.get(i).unwrap_or(&Value::Null);
            restore_secrets(v, old, &format!("{path}[{i}]"), secret, moved)
        }),
        _ => Ok(()),
    }
}

/// The operator's text with every secret value replaced by `***`, keeping
/// everything else as typed — also when the text does not parse. Values
/// are TOML or JSON strings (`"…"`, `'…'`, triple-quoted) or, mistyped,
/// bare words; under a secret key holding a table or an array (`headers =
/// { … }`, `[vapi_assistant.server.headers]`), every value is hidden.
pub(super) fn hide_in_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut run, mut secret_table) = (0, false);
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if let Some(name) = table_name(line) {
            out.push_str(&hide_run(&text[run..at], secret_table));
            run = at;
            secret_table = name
                .split('.')
                .any(|part| is_secret_key(part.trim().trim_matches(|c| c == '"' || c == '\'')));
        }
        at += line.len();
    }
    out.push_str(&hide_run(&text[run..], secret_table));
    out
}

/// The name inside a TOML table header line (`[a.b]`, `[[a.b]]`).
fn table_name(line: &str) -> Option<&str> {
    let l = line.trim();
    let inner = l.strip_prefix("[[").and_then(|r| r.split("]]").next());
    let inner = inner.or_else(|| l.strip_prefix('[').and_then(|r| r.split(']').next()))?;
    (!inner.trim().is_empty() && !inner.contains(['"', '=', ',', '{'])).then_some(inner)
}

fn hide_run(text: &str, all: bool) -> String {
    if all {
        hide_all(text)
    } else {
        hide_secrets(text)
    }
}

/// `text` with the values of secret keys hidden.
fn hide_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['=', ':']) {
        let (head, tail) = rest.split_at(at + 1);
        out.push_str(head);
        let key = key_before(&head[..at]);
        let value = tail.trim_start_matches([' ', '\t']);
        // A dotted key (`server.headers.X-Api`) is secret when any part is.
        let secret = key.split('.').any(is_secret_key);
        // A variable's name is shown, unless it is a secret in its place.
        let hide: fn(&str) -> bool = if secret {
            |_| true
        } else if key.to_ascii_lowercase().ends_with("token_env") {
            |content| !super::is_variable_name(content)
        } else {
            rest = tail;
            continue;
        };
        out.push_str(&tail[..tail.len() - value.len()]);
        if secret && value.starts_with(['{', '[']) {
            let end = closing_bracket(value).map_or(value.len(), |e| e + 1);
            out.push_str(&hide_all(&value[..end]));
            rest = &value[end..];
            continue;
        }
        let (shown, after) = hide_value(value, hide);
        out.push_str(&shown);
        rest = after;
    }
    out.push_str(rest);
    out
}

/// `text` with every value hidden: each string that is not a key (one
/// followed by `=` or `:`), and each bare value after `=` or `:`.
fn hide_all(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['"', '\'', '=', ':']) {
        let (head, tail) = rest.split_at(at);
        out.push_str(head);
        if let Some(after) = tail.strip_prefix(['=', ':']) {
            out.push_str(&tail[..1]);
            let value = after.trim_start_matches([' ', '\t']);
            out.push_str(&after[..after.len() - value.len()]);
            rest = value;
            if !value.is_empty() && !value.starts_with(['"', '\'', '{', '[', '\n', '\r']) {
                let (shown, after) = hide_value(value, |_| true);
                out.push_str(&shown);
                rest = after;
            }
            continue;
        }
        let (literal, after) = hide_value(tail, |_| false);
        if after
            .trim_start_matches([' ', '\t'])
            .starts_with(['=', ':'])
        {
            out.push_str(&literal);
        } else {
            out.push_str(&hide_value(tail, |_| true).0);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Where the bracket opening `text` closes, strings skipped.
fn closing_bracket(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some('"'), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The key just before a `=` or `:`: a bare or dotted word, or a quoted
/// name.
fn key_before(head: &str) -> &str {
    let h = head.trim_end_matches([' ', '\t']);
    let h = h
        .strip_suffix('"')
        .or_else(|| h.strip_suffix('\''))
        .unwrap_or(h);
    let start = h
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &h[start..]
}

/// The value at the start of `value` as it may be shown — `***` when
/// `hide` says so of its content — and the text after it.
fn hide_value(value: &str, hide: fn(&str) -> bool) -> (String, &str) {
    for quote in ["\"\"\"", "'''", "\"", "'"] {
        let Some(inner) = value.strip_prefix(quote) else {
            continue;
        };
        let end = if quote == "\"" {
            closing_double_quote(inner)
        } else {
            inner.find(quote)
        };
        return match end {
            Some(end) if end == 0 || !hide(&inner[..end]) => (
                format!("{quote}{}{quote}", &inner[..end]),
                &inner[end + quote.len()..],
            ),
            Some(end) => (
                format!("{quote}{HIDDEN}{quote}"),
                &inner[end + quote.len()..],
            ),
            // Unterminated: hide the rest of the line.
            None => (
                format!("{quote}{HIDDEN}"),
                inner.find('\n').map_or("", |n| &inner[n..]),
            ),
        };
    }
    let end = value
        .find([',', '}', ']', '\n', ' ', '\t', '#'])
        .unwrap_or(value.len());
    if end == 0 || !hide(&value[..end]) {
        (value[..end].to_owned(), &value[end..])
    } else {
        (HIDDEN.to_owned(), &value[end..])
    }
}

/// Where a `"`-string's closing quote is, backslash escapes skipped.
fn closing_double_quote(inner: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            '\n' => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_naming_credentials_are_secret_and_names_of_variables_or_ids_are_not() {
        for key in [
            "token",
            "serverUrlSecret",
            "api_key",
            "apiKey",
            "privateKey",
            "secretAccessKey",
            "Authorization",
            "credential",
            "credentials",
            "Cookie",
            "bearer",
            "headers",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "token_env",
            "credentialId",
            "kind",
            "url",
            "location_id",
            "line_ids",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn every_value_under_headers_or_a_credential_key_is_hidden_refused_and_restored() {
        let stored = json!({ "server": {
            "url": "https://hooks.example",
            "headers": { "X-Custom-Auth": "h-secret", "Authorization": "Bearer a-secret" },
        }, "credentials": [{ "provider": "anthropic", "privateKey": "pk-secret" }],
           "model": { "cookie": "c-secret", "secretAccessKey": "s-secret", "bearer": "b-secret" } });
        let mut shown = stored.clone();
        hide_values(&mut shown, false);
        let text = shown.to_string();
        for secret in [
            "h-secret",
            "a-secret",
            "pk-secret",
            "c-secret",
            "s-secret",
            "b-secret",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("https://hooks.example"), "{text}");
        refuse_new_secrets(&shown, "", false).unwrap();
        let mut back = shown.clone();
        restore_secrets(&mut back, &stored, "", false, None).unwrap();
        assert_eq!(back, stored);

        let mut typed = shown.clone();
        typed["server"]["headers"]["X-Custom-Auth"] = json!("typed-in");
        let e = refuse_new_secrets(&typed, "vapi_assistant", false).unwrap_err();
        assert!(
            e.contains("`vapi_assistant.server.headers.X-Custom-Auth`"),
            "{e}"
        );
        assert!(!e.contains("typed-in"), "{e}");
    }

    #[test]
    fn a_stored_secret_is_not_restored_where_its_destination_changed() {
        let stored = json!({
            "memory": { "kind": "zep", "base_url": "http://sim:1", "token": "zep-secret" },
            "vapi_assistant": { "server": { "url": "https://a", "headers": { "X": "h" } } },
        });
        let mut shown = stored.clone();
        hide_values(&mut shown, false);
        for (pointer, to, moved) in [
            (
                "/memory/base_url",
                json!("https://zep.elsewhere.test"),
                "memory.base_url",
            ),
            ("/memory/kind", json!("mem0"), "memory.kind"),
            (
                "/vapi_assistant/server/url",
                json!("https://b"),
                "vapi_assistant.server.url",
            ),
        ] {
            let mut changed = shown.clone();
            *changed.pointer_mut(pointer).unwrap() = to;
            let e = restore_secrets(&mut changed, &stored, "", false, None).unwrap_err();
            assert!(e.contains(&format!("`{moved}` changed")), "{e}");
            assert!(e.contains("give the credential again"), "{e}");
        }
        let mut dropped = shown.clone();
        dropped["memory"]
            .as_object_mut()
            .unwrap()
            .remove("base_url");
        assert!(restore_secrets(&mut dropped, &stored, "", false, None).is_err());
    }

    #[test]
    fn secrets_are_hidden_in_text_that_does_not_parse() {
        for (typed, secret) in [
            (r#"token = "abc-1" x"#, "abc-1"),
            (r#"{"apiKey": "k\"ey-2", "b": 1"#, "ey-2"),
            ("token = bare-3\nname = 'x'", "bare-3"),
            ("secret = '''multi-4'''", "multi-4"),
            ("token = \"unterminated-5\nrest", "unterminated-5"),
            (r#"memory = { kind = "zep", token_env = "pit-6" }"#, "pit-6"),
            (
                r#"server = { url = "u", headers = { X-Api = "hdr-7" } }"#,
                "hdr-7",
            ),
            (
                "[vapi_assistant.server.headers]\nX-Api = \"hdr-8\"\n",
                "hdr-8",
            ),
            (r#"{"headers": {"X-Api": "hdr-9", "n": 1}}"#, "hdr-9"),
            (r#"server.headers.X-Api = "hdr-10""#, "hdr-10"),
            (r#"credentials = ["cred-11"]"#, "cred-11"),
            (r#"{"Authorization": "Bearer auth-12"}"#, "auth-12"),
            (r#"privateKey = "pk-13""#, "pk-13"),
        ] {
            let shown = hide_in_text(typed);
            assert!(!shown.contains(secret), "{typed} → {shown}");
        }
        let kept = "base_url = \"http://sim:1\"\ntoken_env = \"ZEP_API_KEY\"\n\
                    [vapi_assistant.server]\nurl = \"https://a:8\"\n";
        assert_eq!(hide_in_text(kept), kept);
        let json = r#"{"headers": {"X-Api": "hdr"}, "name": "R"}"#;
        assert_eq!(
            hide_in_text(json),
            r#"{"headers": {"X-Api": "***"}, "name": "R"}"#
        );
    }
}
