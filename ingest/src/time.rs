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

fn fast_parse(b: &[u8]) -> Option<i64> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(b, 4)?;
    let month = digits(&b[5..], 2)?;
    let day = digits(&b[8..], 2)?;
    let hour = digits(&b[11..], 2)?;
    let min = digits(&b[14..], 2)?;
    let sec = digits(&b[17..], 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
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
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    Some(secs * 1_000_000 + micros)
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
    fn rejects_what_is_not_rfc3339() {
        for s in [
            "",
            "yesterday",
            "2020-05-05",
            "2020-13-05T16:16:37Z",
            "2020-05-05T16:16:37",
            "2020-05-05T16:16:37.Z",
        ] {
            assert!(parse_rfc3339_micros(s).is_err(), "{s}");
        }
    }
}
