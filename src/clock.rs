//! Timestamps: UTC, RFC 3339, always six fractional digits and a `Z`
//! (`2026-11-23T23:10:24.952505Z`), written without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// The current time as a stored/served timestamp.
pub fn now() -> String {
    format_micros(now_micros())
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Format Unix microseconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
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

/// Render a stored timestamp for output: a value with no fraction (`…:02Z`, as the original
/// wrote when the microsecond was 0) or a shorter one gets six digits; anything unrecognised is
/// returned unchanged.
pub fn render(stored: &str) -> String {
    let Some(body) = stored.strip_suffix('Z') else {
        return stored.to_owned();
    };
    if body.len() < 19 || !body.is_char_boundary(19) {
        return stored.to_owned();
    }
    let (base, frac) = body.split_at(19);
    match frac.strip_prefix('.') {
        None if frac.is_empty() => format!("{base}.000000Z"),
        Some(f) if f.len() < 6 && f.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{base}.{f:0<6}Z")
        }
        _ => stored.to_owned(),
    }
}

/// The `HH:MM:SS` part of a timestamp (`ts[11..19]`), or "" when it has none.
pub fn hms(ts: &str) -> &str {
    ts.get(11..19).unwrap_or("")
}

/// Why an RFC 3339 string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc3339Error {
    /// A valid date-time without a UTC offset.
    NoOffset,
    /// Not an RFC 3339 date-time.
    Invalid,
}

/// Parse an RFC 3339 date-time with an offset (`Z`, `z` or `±HH:MM`) into Unix microseconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, Rfc3339Error> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, Rfc3339Error> {
        let part = b.get(r).ok_or(Rfc3339Error::Invalid)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(Rfc3339Error::Invalid);
        }
        Ok(part.iter().fold(0, |a, d| a * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return Err(Rfc3339Error::Invalid);
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(Rfc3339Error::Invalid),
    };
    if d < 1 || d > dim || h > 23 || mi > 59 || se > 60 {
        return Err(Rfc3339Error::Invalid);
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start {
            return Err(Rfc3339Error::Invalid);
        }
        for (k, digit) in b[start..end].iter().take(6).enumerate() {
            micros += i64::from(digit - b'0') * 10i64.pow(5 - k as u32);
        }
        i = end;
    }
    let offset_secs = match &b[i..] {
        [] => return Err(Rfc3339Error::NoOffset),
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return Err(Rfc3339Error::Invalid);
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return Err(Rfc3339Error::Invalid),
    };
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
        assert_eq!(now().len(), 27);
    }

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
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
            render("2026-05-28T10:00:02.123456Z"),
            "2026-05-28T10:00:02.123456Z"
        );
        assert_eq!(render("garbage"), "garbage");
        assert_eq!(render("é"), "é");
        assert_eq!(hms("2026-05-28T10:00:02.123456Z"), "10:00:02");
        assert_eq!(hms("short"), "");
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(parse_rfc3339("1970-01-01t00:00:00.5z"), Ok(500_000));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z").map(|_| ()), Ok(()));
        assert_eq!(
            parse_rfc3339("2023-02-29T00:00:00Z"),
            Err(Rfc3339Error::Invalid)
        );
        assert_eq!(
            parse_rfc3339("2026-01-01T00:00:00"),
            Err(Rfc3339Error::NoOffset)
        );
        assert_eq!(
            parse_rfc3339("2026-01-01T00:00:00.123"),
            Err(Rfc3339Error::NoOffset)
        );
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00+0100",
            "2026-01-01T00:00:00.Z",
            "2026-01-01",
            "x026-01-01T00:00:00Z",
            "2026-01-01T00:00:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), Err(Rfc3339Error::Invalid), "{bad}");
        }
    }
}
