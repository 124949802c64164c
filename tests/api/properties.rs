//! Property tests of the webhook edge's pure parts, no services needed:
//! phone-number normalisation and the signature schemes' time windows.
//!
//! The window semantics under test, read from `src/webhooks/signature.rs` and
//! `vapi_auth.rs`: a signature stamped `ts` and checked at `now` is accepted
//! iff `now - ts <= PAST` and `ts - now <= FUTURE`, both ends inclusive, the
//! difference taken without overflow (one that does not fit an `i64` is
//! outside every window). PAST/FUTURE are `RETELL_TOLERANCE_MS` /
//! `FUTURE_SKEW_MS` (Retell, milliseconds), `ELEVENLABS_TOLERANCE_S` /
//! `FUTURE_SKEW_MS / 1000` (ElevenLabs, seconds), `VAPI_TOLERANCE_MS` /
//! `FUTURE_SKEW_MS` (Vapi, milliseconds, after reading a timestamp below
//! 10^11 as seconds; seconds whose milliseconds overflow are refused). A
//! correctly signed request outside its window is `Stale`, never anything
//! else. The oracle computes the window in `i128`, where nothing overflows.

use proptest::prelude::*;
use warmline::domain::{PhoneError, PhoneNumber};
use warmline::webhooks::signature::{
    ELEVENLABS_TOLERANCE_S, FUTURE_SKEW_MS, RETELL_TOLERANCE_MS, SignatureError, VAPI_TOLERANCE_MS,
    sign_elevenlabs, sign_retell, sign_vapi, verify_elevenlabs, verify_retell, verify_vapi_hmac,
};
use warmline::webhooks::vapi_auth::{HmacAlgorithm, HmacPlan, SignatureEncoding};

/// Modest case counts; no regression files (failures print their input).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------------------ phone numbers

/// An E.164 number's digits: a country code without a leading zero, 8 to 15
/// digits in all.
fn e164_digits() -> impl Strategy<Value = String> {
    "[1-9][0-9]{7,14}"
}

/// The separators `PhoneNumber::parse` documents: space, dash, dot and the
/// no-break space (parentheses are added around a group separately).
const SEPARATORS: [&str; 5] = ["", " ", "-", ".", "\u{a0}"];

/// `digits` written as people write numbers: `+` or `00`, separators
/// between any digits, one group in parentheses, blanks around it all.
fn written(digits: String) -> impl Strategy<Value = (String, String)> {
    let n = digits.len();
    (
        prop_oneof![Just("+"), Just("00")],
        prop::collection::vec(
            prop_oneof![4 => Just(0usize), 1 => 1usize..SEPARATORS.len()],
            n,
        ),
        prop::option::of((0..n, 0..n)),
        "[ \t]{0,2}",
        "[ \t]{0,2}",
    )
        .prop_map(move |(intl, seps, parens, lead, trail)| {
            let (open, close) = match parens {
                Some((a, b)) => (a.min(b), a.max(b)),
                None => (usize::MAX, usize::MAX),
            };
            let mut s = format!("{lead}{intl}");
            for (i, c) in digits.chars().enumerate() {
                if i > 0 {
                    s.push_str(SEPARATORS[seps[i]]);
                }
                if i == open {
                    s.push('(');
                }
                s.push(c);
                if i == close {
                    s.push(')');
                }
            }
            s.push_str(&trail);
            (digits.clone(), s)
        })
}

/// Digits of `raw` after its international prefix (`+` or `00`), in order.
fn digits_after_prefix(raw: &str) -> String {
    let raw = raw.trim();
    let body = raw
        .strip_prefix('+')
        .or_else(|| raw.strip_prefix("00"))
        .unwrap_or(raw);
    body.chars().filter(char::is_ascii_digit).collect()
}

/// Anything: formatted numbers, the characters the parser looks at, and
/// arbitrary text.
fn phone_like() -> impl Strategy<Value = String> {
    prop_oneof![
        e164_digits().prop_flat_map(written).prop_map(|(_, s)| s),
        "[+0-9 ().\\-]{0,24}",
        "(\\+|00)?[0-9a-z +().\\-\u{a0}]{0,20}",
        any::<String>(),
    ]
}

fn assert_e164(n: &PhoneNumber) {
    let s = n.as_str();
    let digits = s.strip_prefix('+').expect("starts with +");
    assert!((8..=15).contains(&digits.len()), "{s:?}");
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{s:?}");
    assert!(!digits.starts_with('0'), "{s:?}");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn one_number_written_any_common_way_parses_to_the_same_e164(
        (digits, raw) in e164_digits().prop_flat_map(written),
    ) {
        let canonical = format!("+{digits}");
        let parsed = PhoneNumber::parse(&raw);
        prop_assert_eq!(parsed.as_ref().map(PhoneNumber::as_str), Ok(canonical.as_str()), "{:?}", raw);
        prop_assert_eq!(parsed, PhoneNumber::parse(&canonical));
    }

    #[test]
    fn a_national_number_with_its_country_code_is_the_international_one(
        cc in "[1-9][0-9]{0,2}",
        national in "[1-9][0-9]{6,11}",
        // One trunk zero at most: a number written `00…` is international.
        trunk_zeros in 0usize..=1,
        sep in 0..SEPARATORS.len(),
    ) {
        prop_assume!((8..=15).contains(&(cc.len() + national.len())));
        let written = format!("{}{}{}", "0".repeat(trunk_zeros), SEPARATORS[sep], national);
        prop_assert_eq!(
            PhoneNumber::parse_with_default_country(&written, Some(&cc)),
            PhoneNumber::parse(&format!("+{cc}{national}"))
        );
        // Without a country code a national number is refused, not guessed.
        prop_assert_eq!(PhoneNumber::parse(&written), Err(PhoneError::NoCountryCode));
    }

    #[test]
    fn parsing_is_idempotent_and_keeps_the_digits_in_order(raw in phone_like()) {
        if let Ok(n) = PhoneNumber::parse(&raw) {
            assert_e164(&n);
            prop_assert_eq!(PhoneNumber::parse(n.as_str()), Ok(n.clone()));
            prop_assert_eq!(&n.as_str()[1..], digits_after_prefix(&raw), "{:?}", raw);
        }
    }

    #[test]
    fn arbitrary_text_never_panics_and_errors_say_why(raw in phone_like()) {
        match PhoneNumber::parse(&raw) {
            Ok(n) => assert_e164(&n),
            Err(PhoneError::Empty) => prop_assert!(digits_after_prefix(&raw).is_empty()),
            Err(PhoneError::BadCharacter(c)) => {
                prop_assert!(raw.contains(c));
                prop_assert!(!c.is_ascii_digit(), "{:?}", c);
            }
            Err(PhoneError::BadLength(len)) => {
                prop_assert!(!(8..=15).contains(&len));
                prop_assert_eq!(len, digits_after_prefix(&raw).len());
            }
            Err(PhoneError::LeadingZero) => {
                prop_assert!(digits_after_prefix(&raw).starts_with('0'));
            }
            Err(PhoneError::NoCountryCode) => {
                let t = raw.trim();
                prop_assert!(!t.starts_with('+') && !t.starts_with("00"), "{:?}", raw);
            }
        }
    }

    /// `masked()` documents "the country prefix and the last four digits,
    /// `+1******0123`" and `mask_phone` "the first two and last four
    /// characters": `+`, the first digit, the last four, stars between.
    #[test]
    fn masked_keeps_the_first_digit_and_last_four_and_nothing_else(
        (digits, raw) in e164_digits().prop_flat_map(written),
    ) {
        let n = PhoneNumber::parse(&raw).unwrap();
        let masked = n.masked();
        prop_assert!(!masked.contains(digits.as_str()), "{}", masked);
        let expected = format!(
            "+{}{}{}",
            &digits[..1],
            "*".repeat(digits.len() - 5),
            &digits[digits.len() - 4..]
        );
        prop_assert_eq!(&masked, &expected);
        // At least three of the at least eight digits stay hidden.
        prop_assert_eq!(masked.chars().filter(char::is_ascii_digit).count(), 5);
        prop_assert_eq!(format!("{n:?}"), format!("PhoneNumber({masked})"));
    }
}

// ------------------------------------------------------- signature windows

/// Vapi reads a timestamp below this as seconds.
const VAPI_SECONDS_BELOW: i64 = 100_000_000_000;

/// The window, computed where nothing overflows.
fn oracle(ts: i128, now: i128, past: i64, future: i64) -> Result<(), SignatureError> {
    if now - ts <= i128::from(past) && ts - now <= i128::from(future) {
        Ok(())
    } else {
        Err(SignatureError::Stale)
    }
}

/// What Vapi's verifier must say about a correct signature over timestamp
/// text `n` at `now_ms`.
fn vapi_oracle(n: i64, now_ms: i64) -> Result<(), SignatureError> {
    let ms = if n < VAPI_SECONDS_BELOW {
        i128::from(n) * 1000
    } else {
        i128::from(n)
    };
    if i64::try_from(ms).is_err() {
        return Err(SignatureError::Stale);
    }
    oracle(ms, now_ms.into(), VAPI_TOLERANCE_MS, FUTURE_SKEW_MS)
}

/// Timestamps: realistic ones, ones at and near the ends of `i64`, any.
fn instant(realistic: std::ops::RangeInclusive<i64>) -> impl Strategy<Value = i64> {
    prop_oneof![
        realistic,
        (0i64..4).prop_map(|d| i64::MIN + d),
        (0i64..4).prop_map(|d| i64::MAX - d),
        (-3i64..=3).prop_map(|d| i64::MIN / 1000 + d),
        (-3i64..=3).prop_map(|d| i64::MAX / 1000 + d),
        any::<i64>(),
    ]
}

/// `(ts, now)`: most pairs near the window's edges (`now - ts` within a few
/// units of `past` or of `-future`, or anywhere close), some independent.
fn ts_and_now(
    realistic: std::ops::RangeInclusive<i64>,
    past: i64,
    future: i64,
) -> impl Strategy<Value = (i64, i64)> {
    let age = prop_oneof![
        (-2i64..=2).prop_map(move |d| past + d),
        (-2i64..=2).prop_map(move |d| -future + d),
        -future - 1000..=past + 1000,
        any::<i64>(),
    ];
    prop_oneof![
        3 => (instant(realistic.clone()), age)
            .prop_map(|(ts, age)| (ts, ts.saturating_add(age))),
        1 => (instant(realistic.clone()), instant(realistic)),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..256)
}

/// Realistic secrets: printable, non-empty. (HMAC pads a short key with
/// zero bytes, so two keys that differ only in trailing NULs are one key;
/// printable keys keep "another key" meaning another key.)
fn key() -> impl Strategy<Value = Vec<u8>> {
    "[!-~]{1,48}".prop_map(String::into_bytes)
}

fn plan() -> impl Strategy<Value = HmacPlan> {
    (
        prop_oneof![
            Just(HmacAlgorithm::Sha256),
            Just(HmacAlgorithm::Sha512),
            Just(HmacAlgorithm::Sha1),
        ],
        prop_oneof![
            Just(SignatureEncoding::Hex),
            Just(SignatureEncoding::Base64)
        ],
        prop::option::of("[a-z0-9]{1,6}="),
    )
        .prop_map(|(algorithm, encoding, prefix)| HmacPlan {
            algorithm,
            encoding,
            include_timestamp: true,
            prefix,
            ..HmacPlan::default()
        })
}

/// A timestamp text Vapi may send: milliseconds (at least 10^11) or seconds
/// (below), and the extremes of both.
fn vapi_timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        instant(VAPI_SECONDS_BELOW..=4_102_444_800_000),
        instant(-1_000_000..=VAPI_SECONDS_BELOW - 1),
        (-2i64..=2).prop_map(|d| VAPI_SECONDS_BELOW + d),
    ]
}

/// A clock near `ts` read in milliseconds (when that fits), near its edges.
fn vapi_now(ts: i64) -> impl Strategy<Value = i64> {
    let ts_ms = if ts < VAPI_SECONDS_BELOW {
        ts.saturating_mul(1000)
    } else {
        ts
    };
    prop_oneof![
        (-2i64..=2).prop_map(move |d| ts_ms.saturating_add(VAPI_TOLERANCE_MS + d)),
        (-2i64..=2).prop_map(move |d| ts_ms.saturating_sub(FUTURE_SKEW_MS + d)),
        (-FUTURE_SKEW_MS - 1000..=VAPI_TOLERANCE_MS + 1000)
            .prop_map(move |age| ts_ms.saturating_add(age)),
        any::<i64>(),
    ]
}

/// A timestamp Vapi could send at `now_ms`, whatever the clock says: the
/// milliseconds, or where those would read as seconds, the seconds (at most
/// 999 ms off, inside every window).
fn vapi_ts_at(now_ms: i64) -> i64 {
    if now_ms >= VAPI_SECONDS_BELOW {
        now_ms
    } else {
        now_ms / 1000
    }
}

/// `body` with one bit flipped (an empty body gains a byte).
fn flipped(body: &[u8], at: prop::sample::Index, bit: u8) -> Vec<u8> {
    let mut out = body.to_vec();
    if out.is_empty() {
        out.push(1 << (bit % 8));
    } else {
        let i = at.index(out.len());
        out[i] ^= 1 << (bit % 8);
    }
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn retell_accepts_exactly_inside_its_window(
        (ts, now) in ts_and_now(0..=4_102_444_800_000, RETELL_TOLERANCE_MS, FUTURE_SKEW_MS),
        body in body(),
        key in key(),
    ) {
        let header = sign_retell(&body, &key, ts);
        prop_assert_eq!(
            verify_retell(Some(&header), &body, &key, now),
            oracle(ts.into(), now.into(), RETELL_TOLERANCE_MS, FUTURE_SKEW_MS),
            "ts={} now={}", ts, now
        );
    }

    #[test]
    fn elevenlabs_accepts_exactly_inside_its_window(
        (ts, now) in ts_and_now(0..=4_102_444_800, ELEVENLABS_TOLERANCE_S, FUTURE_SKEW_MS / 1000),
        body in body(),
        key in key(),
    ) {
        let header = sign_elevenlabs(&body, &key, ts);
        prop_assert_eq!(
            verify_elevenlabs(Some(&header), &body, &key, now),
            oracle(ts.into(), now.into(), ELEVENLABS_TOLERANCE_S, FUTURE_SKEW_MS / 1000),
            "ts={} now={}", ts, now
        );
    }

    #[test]
    fn vapi_accepts_exactly_inside_its_window_in_seconds_or_milliseconds(
        (ts, now) in vapi_timestamp().prop_flat_map(|ts| (Just(ts), vapi_now(ts))),
        body in body(),
        key in key(),
    ) {
        let sig = sign_vapi(&body, &key, ts);
        prop_assert_eq!(
            verify_vapi_hmac(Some(&sig), Some(&ts.to_string()), &body, &key, now),
            vapi_oracle(ts, now),
            "ts={} now={}", ts, now
        );
    }

    #[test]
    fn every_timestamped_vapi_hmac_plan_keeps_the_same_window(
        plan in plan(),
        (ts, now) in vapi_timestamp().prop_flat_map(|ts| (Just(ts), vapi_now(ts))),
        body in body(),
        key in key(),
    ) {
        let ts_text = ts.to_string();
        let sig = plan.sign(&body, &key, Some(&ts_text));
        prop_assert_eq!(
            plan.verify(Some(&sig), Some(&ts_text), &body, &key, now),
            vapi_oracle(ts, now),
            "{:?} ts={} now={}", plan, ts, now
        );
    }

    /// Checked at the instant it was made (always inside every window), a
    /// signature fails for another key or a body with any one bit flipped.
    #[test]
    fn a_wrong_key_or_a_flipped_body_bit_never_verifies(
        ts in instant(0..=4_102_444_800_000),
        body in body(),
        key in key(),
        other in key(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
        plan in plan(),
    ) {
        prop_assume!(key != other);
        let tampered = flipped(&body, at, bit);
        let mismatch = Err(SignatureError::Mismatch);

        let h = sign_retell(&body, &key, ts);
        prop_assert_eq!(verify_retell(Some(&h), &body, &key, ts), Ok(()));
        prop_assert_eq!(verify_retell(Some(&h), &body, &other, ts), mismatch.clone());
        prop_assert_eq!(verify_retell(Some(&h), &tampered, &key, ts), mismatch.clone());

        let h = sign_elevenlabs(&body, &key, ts);
        prop_assert_eq!(verify_elevenlabs(Some(&h), &body, &key, ts), Ok(()));
        prop_assert_eq!(verify_elevenlabs(Some(&h), &body, &other, ts), mismatch.clone());
        prop_assert_eq!(verify_elevenlabs(Some(&h), &tampered, &key, ts), mismatch.clone());

        // Vapi, with a timestamp it reads as at most 999 ms off `ts`.
        let vapi_ts = vapi_ts_at(ts);
        let t = vapi_ts.to_string();
        let s = sign_vapi(&body, &key, vapi_ts);
        prop_assert_eq!(verify_vapi_hmac(Some(&s), Some(&t), &body, &key, ts), Ok(()));
        prop_assert_eq!(verify_vapi_hmac(Some(&s), Some(&t), &body, &other, ts), mismatch.clone());
        prop_assert_eq!(verify_vapi_hmac(Some(&s), Some(&t), &tampered, &key, ts), mismatch.clone());
        let s = plan.sign(&body, &key, Some(&t));
        prop_assert_eq!(plan.verify(Some(&s), Some(&t), &body, &key, ts), Ok(()));
        prop_assert_eq!(plan.verify(Some(&s), Some(&t), &body, &other, ts), mismatch.clone());
        prop_assert_eq!(plan.verify(Some(&s), Some(&t), &tampered, &key, ts), mismatch);
    }

    /// Timestamps at the ends of `i64`, checked by any clock: never a panic,
    /// and refused whenever the window is not met (which, for a realistic
    /// clock, is always).
    #[test]
    fn extreme_timestamps_never_panic_and_are_refused(
        ts in prop_oneof![
            (0i64..8).prop_map(|d| i64::MIN + d),
            (0i64..8).prop_map(|d| i64::MAX - d),
            (-8i64..=8).prop_map(|d| i64::MIN / 1000 + d),
        ],
        now in prop_oneof![0i64..=4_102_444_800_000, any::<i64>()],
        body in body(),
        key in key(),
    ) {
        let realistic = (0..=4_102_444_800_000).contains(&now);
        let h = sign_retell(&body, &key, ts);
        let r = verify_retell(Some(&h), &body, &key, now);
        prop_assert_eq!(r.clone(), oracle(ts.into(), now.into(), RETELL_TOLERANCE_MS, FUTURE_SKEW_MS));
        prop_assert!(!realistic || r == Err(SignatureError::Stale));

        let h = sign_elevenlabs(&body, &key, ts);
        let r = verify_elevenlabs(Some(&h), &body, &key, now);
        prop_assert_eq!(
            r.clone(),
            oracle(ts.into(), now.into(), ELEVENLABS_TOLERANCE_S, FUTURE_SKEW_MS / 1000)
        );
        prop_assert!(!realistic || r == Err(SignatureError::Stale));

        let s = sign_vapi(&body, &key, ts);
        let r = verify_vapi_hmac(Some(&s), Some(&ts.to_string()), &body, &key, now);
        prop_assert_eq!(r.clone(), vapi_oracle(ts, now));
        prop_assert!(!realistic || r == Err(SignatureError::Stale));
    }

    /// Header text nobody signed never verifies, and a timestamp that is not
    /// an `i64` (too many digits) is malformed, not a panic.
    #[test]
    fn unsigned_header_text_never_verifies(
        header in prop_oneof![
            any::<String>(),
            "v=-?[0-9]{1,22},d=[0-9a-f]{64}",
            "t=-?[0-9]{1,22},v0=[0-9a-f]{64}",
        ],
        timestamp in prop_oneof![any::<String>(), "-?[0-9]{1,22}"],
        now in any::<i64>(),
        body in body(),
    ) {
        prop_assert!(verify_retell(Some(&header), &body, b"key", now).is_err());
        prop_assert!(verify_elevenlabs(Some(&header), &body, b"key", now).is_err());
        prop_assert!(verify_vapi_hmac(Some(&header), Some(&timestamp), &body, b"key", now).is_err());
        for digits in ["9223372036854775808", "-9223372036854775809", "99999999999999999999"] {
            let retell = format!("v={digits},d={}", "0".repeat(64));
            prop_assert_eq!(
                verify_retell(Some(&retell), &body, b"key", now),
                Err(SignatureError::Malformed("x-retell-signature"))
            );
            prop_assert_eq!(
                verify_vapi_hmac(Some(&"0".repeat(64)), Some(digits), &body, b"key", now),
                Err(SignatureError::Malformed("x-timestamp"))
            );
        }
    }
}
