//! `PhoneNumber::parse` on the whole input; and, when the input has a line
//! break, `parse_with_default_country(after, Some(before))`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::domain::PhoneNumber;
use warmline_fuzz::check_phone;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = PhoneNumber::parse(raw) {
        check_phone(&n);
    }
    if let Some((cc, national)) = raw.split_once('\n') {
        let parsed = PhoneNumber::parse_with_default_country(national, Some(cc));
        // A real country code (1 to 3 digits, no leading zero) keeps the
        // E.164 promise; any other is configuration, only not a panic.
        let real_cc = (1..=3).contains(&cc.len())
            && cc.bytes().all(|b| b.is_ascii_digit())
            && !cc.starts_with('0');
        if let (true, Ok(n)) = (real_cc, parsed) {
            check_phone(&n);
        }
    }
});
