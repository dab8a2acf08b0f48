//! Timestamps: UTC, RFC 3339, always six fractional digits and a `Z`
//! (`2026-11-23T23:10:24.952505Z`, `http-api.md` §1), without a date crate.
//!
//! Everything we write comes from [`format_micros`]; [`render`] widens legacy values on the way
//! out; [`parse_rfc3339`] checks envelope `created_at` values. No function here panics, whatever
//! the input.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now (negative if the clock is before 1970).
pub fn now_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}

/// The current time as a stored and served timestamp.
pub fn now() -> String {
    format_micros(now_micros())
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`). Exact for every day an `i64` of microseconds can reach.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
                                  // Both casts are of small non-negative numbers (day 1..=31, month 1..=12).
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01; the inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `y` is a Gregorian leap year.
fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Format Unix microseconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, always six fractional
/// digits). Years outside 0000–9999 print with more digits or a sign rather than fail.
pub fn format_micros(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Whether `b` is `YYYY-MM-DDTHH:MM:SS` by shape (digits and separators).
fn is_base_shape(b: &[u8]) -> bool {
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// Render a stored timestamp for output (`http-api.md` §1): `…:02Z` (the original wrote no
/// fraction when the microsecond was 0) becomes `…:02.000000Z`, and a fraction of 1–5 digits
/// is padded to 6. A value already in the output form, or anything unrecognised, is returned
/// unchanged.
pub fn render(stored: &str) -> String {
    let b = stored.as_bytes();
    if b.len() < 20 || !is_base_shape(&b[..19]) || !stored.ends_with('Z') {
        return stored.to_owned();
    }
    let (base, rest) = stored.split_at(19);
    let frac = &rest[..rest.len() - 1]; // without the `Z`
    if frac.is_empty() {
        return format!("{base}.000000Z");
    }
    match frac.strip_prefix('.') {
        Some(f) if (1..6).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()) => {
            format!("{base}.{f:0<6}Z")
        }
        _ => stored.to_owned(),
    }
}

/// The `HH:MM:SS` part of a timestamp (`ts[11..19]`, as `last_ts` of `/api/state`), or `""`
/// when the value is too short or those bytes are not on character boundaries.
pub fn hms(ts: &str) -> &str {
    ts.get(11..19).unwrap_or("")
}

/// Why [`parse_rfc3339`] refused a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc3339Error {
    /// A valid date-time without a UTC offset (`timezone_required`).
    NoOffset,
    /// Not an RFC 3339 date-time (`invalid_format`).
    Invalid,
}

/// Parse an RFC 3339 `date-time` into Unix microseconds: `YYYY-MM-DD`, `T` or `t`,
/// `HH:MM:SS`, an optional fraction of any length (truncated to microseconds), then an offset
/// `Z`, `z` or `±HH:MM`. Field ranges are checked, including February 29 only in leap years;
/// a leap second (`:60`) is accepted and counted as `:59`. A date-time that is valid except
/// that it has no offset → [`Rfc3339Error::NoOffset`]; anything else wrong →
/// [`Rfc3339Error::Invalid`].
pub fn parse_rfc3339(s: &str) -> Result<i64, Rfc3339Error> {
    use Rfc3339Error::Invalid;
    let b = s.as_bytes();
    // Fixed-width decimal field of `b` at `r`; every value fits easily in an i64.
    let num = |r: std::ops::Range<usize>| -> Result<i64, Rfc3339Error> {
        let part = b.get(r).ok_or(Invalid)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(Invalid);
        }
        Ok(part.iter().fold(0, |a, d| a * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|x| allowed.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return Err(Invalid);
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let days_in_month = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => return Err(Invalid),
    };
    if d < 1 || d > days_in_month || h > 23 || mi > 59 || se > 60 {
        return Err(Invalid);
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        let digits = b.get(i + 1..).unwrap_or_default();
        let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(Invalid);
        }
        // Pad or truncate to exactly six digits.
        micros = (0..6).fold(0, |a, k| {
            a * 10
                + digits
                    .get(k)
                    .filter(|_| k < n)
                    .map_or(0, |c| i64::from(c - b'0'))
        });
        i += 1 + n;
    }
    let offset_secs = match b.get(i..).unwrap_or_default() {
        [] => return Err(Rfc3339Error::NoOffset),
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return Err(Invalid);
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return Err(Invalid),
    };
    // `mo` and `d` were range-checked above, so the casts are exact.
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se.min(59) - offset_secs;
    Ok(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_six_digits() {
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_micros(1_795_993_824_952_505),
            "2026-11-29T23:10:24.952505Z"
        );
        assert_eq!(
            format_micros(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(format_micros(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            format_micros(253_402_300_799_999_999),
            "9999-12-31T23:59:59.999999Z"
        );
        // Extremes do not panic.
        assert!(!format_micros(i64::MAX).is_empty());
        assert!(!format_micros(i64::MIN).is_empty());
        let now = now();
        assert_eq!(now.len(), 27);
        assert_eq!(render(&now), now);
        assert!(now.as_str() > "2025-01-01");
    }

    #[test]
    fn leap_years() {
        assert!(is_leap(2000) && is_leap(2024) && is_leap(1600) && is_leap(0));
        assert!(!is_leap(1900) && !is_leap(2100) && !is_leap(2023) && !is_leap(2026));
        for (y, leap) in [
            (1900, false),
            (2000, true),
            (2023, false),
            (2024, true),
            (2100, false),
        ] {
            let feb29 = format!("{y}-02-29T12:00:00Z");
            assert_eq!(parse_rfc3339(&feb29).is_ok(), leap, "{feb29}");
            let next = parse_rfc3339(&format!("{y}-02-28T12:00:00Z")).map(|us| us + 86_400_000_000);
            let shown = next.map(format_micros);
            let want = if leap {
                format!("{y}-02-29")
            } else {
                format!("{y}-03-01")
            };
            assert!(shown.is_ok_and(|s| s.starts_with(&want)), "{y}");
        }
        assert!(parse_rfc3339("2024-02-30T00:00:00Z").is_err());
    }

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn format_and_parse_agree() {
        for us in [
            0,
            1,
            -1,
            951_782_400_000_001,
            1_795_993_824_952_505,
            4_102_444_799_999_999,
        ] {
            assert_eq!(parse_rfc3339(&format_micros(us)), Ok(us));
        }
        let mut us = -62_135_596_800_000_000i64; // 0001-01-01
        while us < 253_402_300_799_000_000 {
            assert_eq!(parse_rfc3339(&format_micros(us)), Ok(us), "{us}");
            us += 7_777_777_777_777;
        }
    }

    #[test]
    fn renders_legacy_values() {
        assert_eq!(
            render("2026-05-28T10:00:02Z"),
            "2026-05-28T10:00:02.000000Z"
        );
        assert_eq!(
            render("2026-05-28T10:00:02.5Z"),
            "2026-05-28T10:00:02.500000Z"
        );
        assert_eq!(
            render("2026-05-28T10:00:02.12345Z"),
            "2026-05-28T10:00:02.123450Z"
        );
        for unchanged in [
            "2026-05-28T10:00:02.123456Z",
            "2026-05-28T10:00:02.1234567Z",
            "2026-05-28T10:00:02.Z",
            "2026-05-28T10:00:02.12aZ",
            "2026-05-28T10:00:02+00:00",
            "2026-05-28T10:00:02",
            "2026-05-28 10:00:02Z",
            "2026-05-28T10:00:0xZ",
            "abcdefghijklmnopqrsZ",
            "garbage",
            "",
            "Z",
            "é",
            "2026-05-28T10:00:02éZ",
            "ééééééééééééééééééééZ",
        ] {
            assert_eq!(render(unchanged), unchanged);
        }
    }

    #[test]
    fn hms_is_safe() {
        assert_eq!(hms("2026-05-28T10:00:02.123456Z"), "10:00:02");
        assert_eq!(hms("2026-05-28T10:00:02Z"), "10:00:02");
        assert_eq!(hms("2026-05-28T10:00:0"), "");
        assert_eq!(hms("short"), "");
        assert_eq!(hms(""), "");
        assert_eq!(hms("ééééééééééé"), ""); // byte 11 is inside a character
        assert_eq!(hms("2026-05-28T10:00:0éZ"), ""); // byte 19 is inside `é`
        assert_eq!(hms("2026-05-28Té0:00:0Z"), "é0:00:0"); // on boundaries: as is
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(parse_rfc3339("1969-12-31T19:30:00-04:30"), Ok(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00-00:00"), Ok(0));
        assert_eq!(parse_rfc3339("1970-01-01t00:00:00.5z"), Ok(500_000));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.000001Z"), Ok(1));
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:00.123456789123Z"),
            Ok(123_456)
        );
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:59.5Z"),
            parse_rfc3339("1970-01-01T00:00:60.5Z")
        );
        assert!(parse_rfc3339("0000-01-01T00:00:00Z").is_ok());
        assert!(parse_rfc3339("9999-12-31T23:59:59.999999+23:59").is_ok());
        for no_offset in [
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.123",
            "2026-01-01t23:59:60",
        ] {
            assert_eq!(
                parse_rfc3339(no_offset),
                Err(Rfc3339Error::NoOffset),
                "{no_offset}"
            );
        }
        for bad in [
            "",
            "2026",
            "2026-01-01",
            "2026-01-01T00:00",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-01-32T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-06-31T00:00:00",
            "2023-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z",
            "2026-01-01T00:00:61Z",
            "2026-01-01T00:00:00+0100",
            "2026-01-01T00:00:00+01",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+01:60",
            "2026-01-01T00:00:00+1:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00,5Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01X00:00:00Z",
            "2026/01/01T00:00:00Z",
            "x026-01-01T00:00:00Z",
            "+2026-01-01T00:00:00Z",
            "2026-1-01T00:00:00Z",
            "2026-01-01T00:00:00ZZ",
            "2026-01-01T00:00:00Zjunk",
            "2026-01-01T00:00:00 Z",
            " 2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00UTC",
            "2026-01-01T00:00:00é",
            "２０２６-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), Err(Rfc3339Error::Invalid), "{bad}");
        }
    }
}
