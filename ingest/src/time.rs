//! Timestamp parsing for the formats audit logs use, and the forms log pipelines rewrite them
//! to.
//!
//! The apiserver writes RFC 3339 with six fractional digits and `Z`, and that shape is read
//! first, fast. Pipelines and data lakes rewrite it: a space instead of `T`
//! (`2022-11-29 00:09:04.38`), no zone (UTC), from none to nine fractional digits, an offset
//! with or without a colon, Go's `2006-01-02 15:04:05.999 -0700 MST`, or a number of seconds,
//! milliseconds, microseconds or nanoseconds since the epoch ([`parse_timestamp_micros`]).

use crate::error::DecodeError;

/// Parses an RFC 3339 timestamp (`2024-05-01T10:00:00.123456Z`, `+02:00` offsets, up to nine
/// fractional digits) into microseconds since the Unix epoch. Nothing else is accepted.
pub fn parse_rfc3339_micros(text: &str) -> Result<i64, DecodeError> {
    fast_parse(text.as_bytes()).ok_or_else(|| DecodeError::BadTimestamp(text.to_string()))
}

/// [`parse_rfc3339_micros`] without an error to build: `None` for anything else.
#[inline]
pub fn parse_rfc3339_fast(text: &str) -> Option<i64> {
    fast_parse(text.as_bytes())
}

/// Parses a timestamp in any form audit logs arrive in (RFC 3339, and the rewrites of log
/// pipelines and data lakes listed in the module's doc) into microseconds since the Unix epoch.
/// A date and time without a zone is UTC. Digits alone are a count since the epoch, its unit
/// told by its size: below 10^11 seconds (until the year 5138), below 10^14 milliseconds, below
/// 10^17 microseconds, nanoseconds above.
pub fn parse_timestamp_micros(text: &str) -> Result<i64, DecodeError> {
    if let Some(micros) = fast_parse(text.as_bytes()) {
        return Ok(micros);
    }
    let trimmed = text.trim();
    let parsed = if trimmed.starts_with(|c: char| c == '-' || c.is_ascii_digit())
        && trimmed.len() > 4
        && trimmed.as_bytes().get(4) != Some(&b'-')
    {
        epoch_micros(trimmed)
    } else {
        loose_parse(trimmed.as_bytes())
    };
    parsed.ok_or_else(|| DecodeError::BadTimestamp(text.to_string()))
}

/// A count since the epoch (`1669680544`, `1669680544.38`, `1669680544380`, ...), its unit told
/// by the size of its whole part.
fn epoch_micros(text: &str) -> Option<i64> {
    if text.contains(['e', 'E']) {
        let value: f64 = text.parse().ok()?;
        return value.is_finite().then(|| {
            let whole = value.trunc().abs();
            let scale = unit_scale(whole as i128);
            (value * scale) as i64
        });
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || whole.len() > 20
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i128 = whole.parse().ok()?;
    // Microseconds per unit, as a whole number or (nanoseconds) a thousandth.
    let (per_unit, divisor): (i128, i128) = match whole {
        w if w < 100_000_000_000 => (1_000_000, 1),
        w if w < 100_000_000_000_000 => (1_000, 1),
        w if w < 100_000_000_000_000_000 => (1, 1),
        _ => (1, 1_000),
    };
    // The fraction of a unit, in microseconds (nine digits are enough for any unit here).
    let mut frac: i128 = 0;
    let mut scale: i128 = 1;
    for b in fraction.bytes().take(9) {
        frac = frac * 10 + i128::from(b - b'0');
        scale *= 10;
    }
    let micros = (whole * per_unit + frac * per_unit / scale) / divisor;
    let micros = i64::try_from(micros).ok()?;
    Some(if negative { -micros } else { micros })
}

/// Microseconds per unit of a count whose whole part is `whole` (see [`epoch_micros`]).
fn unit_scale(whole: i128) -> f64 {
    match whole {
        w if w < 100_000_000_000 => 1e6,
        w if w < 100_000_000_000_000 => 1e3,
        w if w < 100_000_000_000_000_000 => 1.0,
        _ => 1e-3,
    }
}

/// A date and time as pipelines rewrite them: `T`, `t` or a space between them, seconds
/// optional, a fraction of any length (after `.` or `,`), then no zone (UTC), `Z`, `UTC`,
/// `GMT`, or an offset (`+02:00`, `+0200`, `+02`), perhaps after a space and followed by a
/// zone's abbreviation (Go's `-0700 MST`).
fn loose_parse(b: &[u8]) -> Option<i64> {
    let minute = minute_secs(b)?;
    let mut i = 16;
    let mut sec = 0;
    if b.get(i) == Some(&b':') {
        sec = digits(&b[i + 1..], 2)?;
        if sec > 60 {
            return None;
        }
        i += 3;
    }
    let mut micros = 0i64;
    if matches!(b.get(i), Some(b'.' | b',')) {
        (micros, i) = fraction(b, i + 1)?;
    }
    let zone = std::str::from_utf8(&b[i..]).ok()?.trim_start();
    let offset = zone_offset_secs(zone)?;
    Some((minute + sec - offset) * 1_000_000 + micros)
}

/// The offset in seconds of what follows a time: nothing, `Z`, `UTC`, `GMT`, `+HH:MM`, `+HHMM`
/// or `+HH` (and `-`), the offset perhaps followed by a space and a zone's abbreviation.
fn zone_offset_secs(zone: &str) -> Option<i64> {
    if zone.is_empty() || matches!(zone, "Z" | "z" | "UTC" | "GMT") {
        return Some(0);
    }
    let sign = match zone.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (offset, abbreviation) = zone[1..].split_once(' ').unwrap_or((&zone[1..], ""));
    if !abbreviation.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let o = offset.as_bytes();
    let (hours, minutes) = match o.len() {
        2 => (digits(o, 2)?, 0),
        4 => (digits(o, 2)?, digits(&o[2..], 2)?),
        5 if o[2] == b':' => (digits(o, 2)?, digits(&o[3..], 2)?),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

fn digits(b: &[u8], n: usize) -> Option<i64> {
    if b.len() < n {
        return None;
    }
    let mut v = 0i64;
    for &c in &b[..n] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// The last date, hour and minute (`YYYY-MM-DDTHH:MM`, 16 bytes) that this thread parsed,
/// and its seconds since the epoch. Consecutive events nearly always share them, and skipping
/// their digits and the calendar arithmetic halves the cost of a timestamp.
#[derive(Clone, Copy)]
struct LastMinute {
    prefix: [u8; 16],
    secs: i64,
}

thread_local! {
    static LAST_MINUTE: std::cell::Cell<Option<LastMinute>> = const { std::cell::Cell::new(None) };
}

fn fast_parse(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[16] != b':' {
        return None;
    }
    let prefix: [u8; 16] = *b.first_chunk::<16>()?;
    let minute = match LAST_MINUTE.get() {
        Some(last) if last.prefix == prefix => last.secs,
        _ => {
            let secs = minute_secs(b)?;
            LAST_MINUTE.set(Some(LastMinute { prefix, secs }));
            secs
        }
    };
    let sec = digits(&b[17..], 2)?;
    if sec > 60 {
        return None;
    }
    // The apiserver's own shape, six fractional digits and `Z`, read without the general loop.
    if b.len() == 27 && b[19] == b'.' && b[26] == b'Z' {
        let micros = digits(&b[20..], 6)?;
        return Some((minute + sec) * 1_000_000 + micros);
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        (micros, i) = fraction(b, i + 1)?;
    }
    let offset_secs = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if b.len() == i + 6 && b[i + 3] == b':' => {
            let oh = digits(&b[i + 1..], 2)?;
            let om = digits(&b[i + 4..], 2)?;
            let s = oh * 3600 + om * 60;
            if *sign == b'+' { s } else { -s }
        }
        _ => return None,
    };
    let secs = minute + sec - offset_secs;
    Some(secs * 1_000_000 + micros)
}

/// The fraction of a second whose digits start at `start` (after its `.`): microseconds (digits
/// past the sixth are dropped) and where the digits end; `None` without any digit.
#[inline]
fn fraction(b: &[u8], start: usize) -> Option<(i64, usize)> {
    let mut i = start;
    let mut micros = 0i64;
    while i < b.len() && b[i].is_ascii_digit() {
        if i - start < 6 {
            micros = micros * 10 + i64::from(b[i] - b'0');
        }
        i += 1;
    }
    let n = i - start;
    if n == 0 {
        return None;
    }
    for _ in n..6 {
        micros *= 10;
    }
    Some((micros, i))
}

/// Seconds since the epoch of the date, hour and minute that `b` starts with
/// (`YYYY-MM-DDTHH:MM`), before any offset.
fn minute_secs(b: &[u8]) -> Option<i64> {
    if b.len() < 16
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
    {
        return None;
    }
    let year = digits(b, 4)?;
    let month = digits(&b[5..], 2)?;
    let day = digits(&b[8..], 2)?;
    let hour = digits(&b[11..], 2)?;
    let min = digits(&b[14..], 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn reference(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn agrees_with_chrono_on_every_shape_audit_logs_use() {
        for s in [
            "2020-05-05T16:16:37.655912Z",
            "2017-09-11T19:55:05Z",
            "2020-05-05T16:16:37.0000000Z",
            "2024-02-29T23:59:59.999999999Z",
            "2024-01-01T01:00:00+02:00",
            "1969-12-31T23:59:59.5-05:30",
            "2000-03-01T00:00:00.1Z",
        ] {
            assert_eq!(parse_rfc3339_micros(s).unwrap(), reference(s), "{s}");
        }
    }

    #[test]
    fn timestamps_of_one_minute_in_a_row_and_then_of_another_parse_alike() {
        for s in [
            "2024-05-01T08:00:00.001013Z",
            "2024-05-01T08:00:59.9Z",
            "2024-05-01T08:00:07+01:00",
            "2024-05-01T08:01:00Z",
            "2024-05-02T08:01:00Z",
            "2024-05-01T08:00:00.5Z",
        ] {
            assert_eq!(parse_rfc3339_micros(s).unwrap(), reference(s), "{s}");
        }
        // A remembered minute does not excuse a bad second, fraction or zone.
        assert!(parse_rfc3339_micros("2024-05-01T08:00:61Z").is_err());
        assert!(parse_rfc3339_micros("2024-05-01T08:00:0xZ").is_err());
        assert!(parse_rfc3339_micros("2024-05-01T08:00:00").is_err());
        // Nor does a bad minute that follows a good one.
        assert!(parse_rfc3339_micros("2024-05-01T08:61:00Z").is_err());
    }

    #[test]
    fn reads_the_forms_pipelines_and_data_lakes_rewrite_timestamps_to() {
        let utc = |s: &str| reference(s);
        for (text, same_as) in [
            // A data lake's: a space, no zone, trailing zeros of the fraction trimmed.
            ("2022-11-29 00:09:04.38", "2022-11-29T00:09:04.380Z"),
            (
                "2024-02-16 11:48:22.742154000",
                "2024-02-16T11:48:22.742154Z",
            ),
            ("2022-11-29 00:09:04", "2022-11-29T00:09:04Z"),
            ("2008-02-01T21:41:49", "2008-02-01T21:41:49Z"),
            ("2018-05-30 09:39:52.000681", "2018-05-30T09:39:52.000681Z"),
            (
                "2018-05-30T09:39:52.1234567891Z",
                "2018-05-30T09:39:52.123456Z",
            ),
            ("2024-05-01 10:00:00.5Z", "2024-05-01T10:00:00.5Z"),
            ("2024-05-01 10:00:00+02:00", "2024-05-01T08:00:00Z"),
            ("2024-05-01T10:00:00+0200", "2024-05-01T08:00:00Z"),
            ("2024-05-01T10:00:00-05", "2024-05-01T15:00:00Z"),
            (
                "2024-05-01 10:00:00.123 +0000 UTC",
                "2024-05-01T10:00:00.123Z",
            ),
            ("2024-05-01 10:00:00 -0700 MST", "2024-05-01T17:00:00Z"),
            ("2024-05-01 10:00:00 UTC", "2024-05-01T10:00:00Z"),
            ("2024-05-01T10:00:00,25Z", "2024-05-01T10:00:00.25Z"),
            ("2024-05-01 10:00", "2024-05-01T10:00:00Z"),
            (" 2024-05-01T10:00:00Z ", "2024-05-01T10:00:00Z"),
            // Counts since the epoch, the unit told by the size.
            ("1669680544", "2022-11-29T00:09:04Z"),
            ("1669680544.38", "2022-11-29T00:09:04.38Z"),
            ("1527673192.000681", "2018-05-30T09:39:52.000681Z"),
            ("1669680544380", "2022-11-29T00:09:04.38Z"),
            ("1669680544380123", "2022-11-29T00:09:04.380123Z"),
            ("1669680544380123456", "2022-11-29T00:09:04.380123Z"),
            ("1.669680544e9", "2022-11-29T00:09:04Z"),
        ] {
            assert_eq!(
                parse_timestamp_micros(text).unwrap(),
                utc(same_as),
                "{text}"
            );
        }
        // RFC 3339 stays as it was.
        assert_eq!(
            parse_timestamp_micros("2020-05-05T16:16:37.655912Z").unwrap(),
            utc("2020-05-05T16:16:37.655912Z")
        );
    }

    #[test]
    fn rejects_what_no_pipeline_writes() {
        for s in [
            "",
            "yesterday",
            "2020-05-05",
            "2020-13-05 16:16:37",
            "2020-05-05 16:16:37.",
            "2020-05-05 16:16:61",
            "2020-05-05 16:16:37 +25:00",
            "2020-05-05 16:16:37 PST8PDT",
            "2020-05-05 16:16:37 +0000 U2C",
            "16:16:37",
            "12ab",
            "1669680544.3x",
            "--1",
            "123456789012345678901234",
        ] {
            assert!(parse_timestamp_micros(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for s in [
            "",
            "yesterday",
            "2020-05-05",
            "2020-13-05T16:16:37Z",
            "2020-05-05T16:16:37",
            "2020-05-05T16:16:37.Z",
            // The apiserver's shape (six fractional digits and `Z`) with a flaw in it.
            "2020-05-05T16:16:37.12345xZ",
            "2020-05-05T16:16:61.123456Z",
            "2020-05-05T16:16:3x.123456Z",
            "2020-05-05T16:16:37.123456Y",
        ] {
            assert!(parse_rfc3339_micros(s).is_err(), "{s}");
        }
    }
}
