use std::fmt;

/// A phone number in E.164 form (`+` and 8 to 15 digits, no leading zero).
///
/// There is deliberately no `Display`: a number reaches a log line or a span
/// only through [`PhoneNumber::masked`] (also what `Debug` prints), and reaches
/// storage or an upstream through [`PhoneNumber::as_str`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number contains `{0}`; expected digits, spaces, dashes, dots or parentheses")]
    BadCharacter(char),
    #[error("phone number has {0} digits; E.164 allows 8 to 15")]
    BadLength(usize),
    #[error("phone number has no country code; expected it to start with `+`")]
    NoCountryCode,
    #[error("country code cannot start with 0")]
    LeadingZero,
}

impl PhoneNumber {
    /// Parses an international number, tolerating the usual formatting
    /// (`+1 (415) 555-0123`, `0044 20 7946 0000`).
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        Self::parse_with_default_country(raw, None)
    }

    /// Like [`parse`](Self::parse), but a national number (no `+` or `00`) gets
    /// `country_code` prepended: `("415 555 0123", Some("1"))` → `+14155550123`.
    /// A leading trunk `0` of a national number is dropped, as dialling does.
    pub fn parse_with_default_country(
        raw: &str,
        country_code: Option<&str>,
    ) -> Result<Self, PhoneError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(PhoneError::Empty);
        }
        let (international, body) = if let Some(rest) = raw.strip_prefix('+') {
            (true, rest)
        } else if let Some(rest) = raw.strip_prefix("00") {
            (true, rest)
        } else {
            (false, raw)
        };
        let mut digits = String::with_capacity(16);
        for c in body.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
                other => return Err(PhoneError::BadCharacter(other)),
            }
        }
        if !international {
            let Some(cc) = country_code
                .filter(|cc| (1..=3).contains(&cc.len()) && cc.bytes().all(|b| b.is_ascii_digit()))
            else {
                return Err(PhoneError::NoCountryCode);
            };
            let national = digits.trim_start_matches('0');
            digits = format!("{cc}{national}");
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        if digits.starts_with('0') {
            return Err(PhoneError::LeadingZero);
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(PhoneError::BadLength(digits.len()));
        }
        Ok(PhoneNumber(format!("+{digits}")))
    }

    /// The full E.164 string, for storage and upstream requests only.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form that may appear in logs, spans and pages: `+`, the first
    /// digit and the last four, `+1******0123` (`+4*******0000` for a UK
    /// number).
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }
}

/// Masks anything that looks like a phone number: keeps the first two and last
/// four characters. Used for values that failed to parse as well, so an invalid
/// number is not leaked verbatim either.
pub fn mask_phone(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 6))
}

/// Masks every phone-like run in free text (cache keys, URLs, error
/// messages, upstream answers), keeping its last four digits: seven or more
/// digits, written together or in groups joined by spaces, dashes, dots or
/// parentheses — `acme:+14155550123` → `acme:+*******0123`, `(415) 555-0123`
/// → `(***) ***-0123`. An ISO date (`2026-11-21`) is left alone. For text
/// that may embed a number warmline did not parse.
pub fn mask_phones_in(text: &str) -> String {
    const JOINERS: &[u8] = b" -.()";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            // Copy up to the next digit (keeping multi-byte characters whole).
            let next = bytes[i..]
                .iter()
                .position(u8::is_ascii_digit)
                .map_or(bytes.len(), |p| i + p);
            out.push_str(&text[i..next]);
            i = next;
            continue;
        }
        if is_iso_date(&bytes[i..]) {
            out.push_str(&text[i..i + 10]);
            i += 10;
            continue;
        }
        // The run: digits, and at most two joiners at a time between them.
        let mut end = i;
        let mut j = i;
        while j < bytes.len() {
            if bytes[j].is_ascii_digit() {
                j += 1;
                end = j;
            } else if JOINERS.contains(&bytes[j])
                && bytes[j..]
                    .iter()
                    .take(3)
                    .position(u8::is_ascii_digit)
                    .is_some_and(|p| bytes[j..j + p].iter().all(|b| JOINERS.contains(b)))
            {
                j += 1;
            } else {
                break;
            }
        }
        let run = &text[i..end];
        let digits = run.bytes().filter(u8::is_ascii_digit).count();
        if digits >= 7 {
            let mut hide = digits - 4;
            for c in run.chars() {
                if c.is_ascii_digit() && hide > 0 {
                    out.push('*');
                    hide -= 1;
                } else {
                    out.push(c);
                }
            }
        } else {
            out.push_str(run);
        }
        i = end;
    }
    out
}

/// `YYYY-MM-DD` at the start of `b`.
fn is_iso_date(b: &[u8]) -> bool {
    b.len() >= 10
        && b[..10].iter().enumerate().all(|(k, c)| {
            if k == 4 || k == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && !b.get(10).is_some_and(u8::is_ascii_digit)
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for PhoneNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        PhoneNumber::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_international_numbers_normalise_to_e164() {
        for raw in [
            "+14155550123",
            "+1 (415) 555-0123",
            "001 415.555.0123",
            " +1-415-555-0123 ",
        ] {
            assert_eq!(
                PhoneNumber::parse(raw).unwrap().as_str(),
                "+14155550123",
                "{raw}"
            );
        }
    }

    #[test]
    fn a_national_number_takes_the_default_country_and_drops_the_trunk_zero() {
        let n = PhoneNumber::parse_with_default_country("020 7946 0000", Some("44")).unwrap();
        assert_eq!(n.as_str(), "+442079460000");
        assert_eq!(
            PhoneNumber::parse("4155550123"),
            Err(PhoneError::NoCountryCode)
        );
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        assert_eq!(PhoneNumber::parse(""), Err(PhoneError::Empty));
        assert_eq!(
            PhoneNumber::parse("+1 415 CALL NOW"),
            Err(PhoneError::BadCharacter('C'))
        );
        assert_eq!(PhoneNumber::parse("+123"), Err(PhoneError::BadLength(3)));
        assert_eq!(
            PhoneNumber::parse("+1234567890123456"),
            Err(PhoneError::BadLength(16))
        );
        assert_eq!(
            PhoneNumber::parse("+0123456789"),
            Err(PhoneError::LeadingZero)
        );
    }

    #[test]
    fn debug_and_masked_never_show_the_middle_digits() {
        let n = PhoneNumber::parse("+14155550123").unwrap();
        assert_eq!(n.masked(), "+1******0123");
        assert_eq!(format!("{n:?}"), "PhoneNumber(+1******0123)");
        assert_eq!(mask_phone("12345"), "*****");
    }

    #[test]
    fn phone_like_runs_in_free_text_are_masked() {
        assert_eq!(mask_phones_in("acme:+14155550123"), "acme:+*******0123");
        assert_eq!(
            mask_phones_in("from=4155550123&day=2026-11-21"),
            "from=******0123&day=2026-11-21"
        );
        assert_eq!(mask_phones_in("call_123456"), "call_123456");
    }

    #[test]
    fn numbers_written_in_groups_are_masked_and_dates_kept() {
        assert_eq!(mask_phones_in("(415) 555-0123"), "(***) ***-0123");
        assert_eq!(
            mask_phones_in("phone +1 415 555 0123 is invalid"),
            "phone +* *** *** 0123 is invalid"
        );
        assert_eq!(mask_phones_in("415.555.0123"), "***.***.0123");
        assert_eq!(
            mask_phones_in("slot 2026-11-21 10:00 is taken"),
            "slot 2026-11-21 10:00 is taken"
        );
        assert_eq!(mask_phones_in("3 of 12 failed"), "3 of 12 failed");
        assert_eq!(mask_phones_in("é+14155550123é"), "é+*******0123é");
    }

    #[test]
    fn deserialising_parses() {
        let n: PhoneNumber = serde_json::from_str("\"+1 415 555 0123\"").unwrap();
        assert_eq!(n.as_str(), "+14155550123");
        assert!(serde_json::from_str::<PhoneNumber>("\"call me\"").is_err());
    }
}
