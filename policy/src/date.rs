//! Dates of the `Date*` condition operators: "one of the W3C implementations of the ISO 8601 date
//! formats or in epoch (UNIX) time" ("IAM JSON policy elements: Condition operators").
//!
//! W3C's profile (NOTE-datetime) allows `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, `YYYY-MM-DDThh:mmTZD`,
//! `YYYY-MM-DDThh:mm:ssTZD` and `YYYY-MM-DDThh:mm:ss.sTZD`, with `TZD` `Z` or `±hh:mm`. A value of
//! digits only (with an optional sign and fraction) is epoch seconds, so `2020` reads as 2020
//! seconds after the epoch, not as the year — `aws:EpochTime`'s values look like that. A date
//! without a time is its midnight, UTC.

/// An instant: seconds since the Unix epoch and nanoseconds into that second.
pub(crate) type Instant = (i64, u32);

/// Reads a date, or `None` when it is neither form.
pub(crate) fn parse(text: &str) -> Option<Instant> {
    let text = text.trim();
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return epoch(text);
    }
    iso8601(text)
}

fn epoch(text: &str) -> Option<Instant> {
    let negative = text.starts_with('-');
    let unsigned = text.trim_start_matches(['-', '+']);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() || fraction.contains('.') {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let nanos = nanos(fraction)?;
    Some(if !negative {
        (seconds, nanos)
    } else if nanos == 0 {
        (-seconds, 0)
    } else {
        (-seconds - 1, 1_000_000_000 - nanos)
    })
}

/// Nanoseconds from the digits after a decimal point (at most nine count).
fn nanos(fraction: &str) -> Option<u32> {
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos = 0u32;
    for (index, digit) in fraction.bytes().take(9).enumerate() {
        nanos += u32::from(digit - b'0') * 10u32.pow(8 - index as u32);
    }
    Some(nanos)
}

fn number(text: &str, len: usize) -> Option<(u32, &str)> {
    let head = text.get(..len)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, &text[len..]))
}

fn iso8601(text: &str) -> Option<Instant> {
    let (year, rest) = number(text, 4)?;
    let (month, rest) = match rest.strip_prefix('-') {
        Some(rest) => number(rest, 2)?,
        None if rest.is_empty() => (1, rest),
        None => return None,
    };
    let (day, rest) = match rest.strip_prefix('-') {
        Some(rest) => number(rest, 2)?,
        None if rest.is_empty() => (1, rest),
        None => return None,
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let Some(time) = rest.strip_prefix(['T', 't']) else {
        return rest.is_empty().then_some((days * 86_400, 0));
    };
    let (hour, rest) = number(time, 2)?;
    let (minute, rest) = number(rest.strip_prefix(':')?, 2)?;
    let (second, nanos, rest) = match rest.strip_prefix(':') {
        Some(rest) => {
            let (second, rest) = number(rest, 2)?;
            match rest.strip_prefix('.') {
                Some(rest) => {
                    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
                    if end == 0 {
                        return None;
                    }
                    (second, nanos(&rest[..end])?, &rest[end..])
                }
                None => (second, 0, rest),
            }
        }
        None => (0, 0, rest),
    };
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, after) = number(&rest[1..], 2)?;
            let after = after.strip_prefix(':').unwrap_or(after);
            let (minutes, after) = number(after, 2)?;
            if !after.is_empty() || hours > 23 || minutes > 59 {
                return None;
            }
            sign * i64::from(hours * 3600 + minutes * 60)
        }
    };
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset;
    Some((seconds, nanos))
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn w3c_forms_and_epoch_seconds_read_as_the_same_instants() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(parse("2020-01-01T00:00:01Z"), Some((1_577_836_801, 0)));
        assert_eq!(parse("1577836801"), parse("2020-01-01T00:00:01Z"));
        assert_eq!(parse("2020-01-01"), Some((1_577_836_800, 0)));
        assert_eq!(parse("2020-01"), parse("2020-01-01"));
        assert_eq!(parse("2020-01-01T01:00+01:00"), parse("2020-01-01T00:00:00Z"));
        assert_eq!(parse("2019-12-31T19:00:00-05:00"), parse("2020-01-01T00:00:00Z"));
        assert_eq!(parse("2020-01-01T00:00:00.5Z"), Some((1_577_836_800, 500_000_000)));
        assert_eq!(parse("2024-02-29T12:00:00Z"), Some((1_709_208_000, 0)));
        assert_eq!(parse("1969-12-31T23:59:59Z"), Some((-1, 0)));
        assert_eq!(parse("-0.5"), Some((-1, 500_000_000)));
    }

    #[test]
    fn other_forms_are_not_dates() {
        for text in ["yesterday", "2020-13-01", "2023-02-29", "2020-01-01T00:00", "2020-01-01T25:00Z", "", "2020/01/01"]
        {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
