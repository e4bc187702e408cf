//! Timestamp parsing for the formats audit logs use.

use crate::error::DecodeError;

/// Parses an RFC 3339 timestamp (`2024-05-01T10:00:00.123456Z`, `+02:00` offsets, up to nine
/// fractional digits) into microseconds since the Unix epoch.
pub fn parse_rfc3339_micros(text: &str) -> Result<i64, DecodeError> {
    fast_parse(text.as_bytes()).ok_or_else(|| DecodeError::BadTimestamp(text.to_string()))
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
        i += 1;
        let start = i;
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
