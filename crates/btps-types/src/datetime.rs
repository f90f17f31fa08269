//! The protocol datetime `YYYY-MM-DDTHH:MM[:SS[.fraction]]Z` and Unix milliseconds
//! ([PROTOCOL.md §3.0]).
//!
//! Accepted text: a calendar-checked date (month lengths, Gregorian leap years, years
//! `0000`–`9999`), hour `00`–`23`, minute and second `00`–`59`, any number of fraction digits
//! (truncated to milliseconds), upper-case `T` and a mandatory upper-case `Z`; numeric offsets
//! (`+02:00`) are rejected. This is the reference's rule. Writers always emit
//! `YYYY-MM-DDTHH:MM:SS.mmmZ`.
//!
//! Pure arithmetic (days from the civil calendar, proleptic Gregorian); nothing here reads the
//! clock.
//!
//! [PROTOCOL.md §3.0]: https://btps.invalid/PROTOCOL.md#30-shared-value-rules

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

/// Milliseconds since 1970-01-01T00:00:00Z (negative before), the protocol's time unit.
///
/// # Examples
///
/// ```
/// use btps_types::UnixMillis;
/// let t = UnixMillis::parse("2025-07-01T09:30:00.5Z").unwrap();
/// assert_eq!(t.as_millis(), 1_751_362_200_500);
/// assert_eq!(t.to_string(), "2025-07-01T09:30:00.500Z");
/// let u: UnixMillis = "2025-07-01T09:30Z".parse().unwrap();
/// assert_eq!(t.abs_diff(u), 500);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct UnixMillis(i64);

impl UnixMillis {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);

    /// Wraps a millisecond count.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// The millisecond count.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Parses a protocol datetime (see [`parse_datetime`]).
    ///
    /// # Errors
    ///
    /// [`DateTimeError`] naming the rule that failed.
    pub fn parse(text: &str) -> Result<Self, DateTimeError> {
        parse_datetime(text)
    }

    /// Converts a [`SystemTime`] the caller read (this crate never reads the clock). `None`
    /// when it does not fit in an `i64` of milliseconds.
    pub fn from_system_time(t: SystemTime) -> Option<Self> {
        match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).ok().map(Self),
            Err(e) => {
                // Before the epoch: round towards negative infinity, as JavaScript's Date does.
                let d = e.duration();
                let ms = i64::try_from(d.as_millis()).ok()?;
                let ms = if d.subsec_nanos() % 1_000_000 == 0 {
                    ms
                } else {
                    ms.checked_add(1)?
                };
                ms.checked_neg().map(Self)
            }
        }
    }

    /// `self + ms`, or `None` on overflow.
    pub const fn checked_add_millis(self, ms: i64) -> Option<Self> {
        match self.0.checked_add(ms) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// `self + ms`, saturating at the `i64` bounds.
    #[must_use]
    pub const fn saturating_add_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// The absolute distance to `other` in milliseconds.
    pub const fn abs_diff(self, other: Self) -> u64 {
        self.0.abs_diff(other.0)
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form writers always emit (JavaScript's
    /// `Date#toISOString`). Years outside 0000–9999 use JavaScript's expanded form
    /// (`+010000-01-01T…`, `-000001-…`), which is *not* a protocol datetime.
    pub fn to_datetime_string(self) -> String {
        let mut s = String::with_capacity(24);
        self.write_datetime(&mut s);
        s
    }

    /// [`to_datetime_string`](Self::to_datetime_string) into a caller's buffer (appends).
    pub fn write_datetime(self, out: &mut String) {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY).unsigned_abs();
        let (year, month, day) = civil_from_days(days);
        if (0..=9999).contains(&year) {
            push_digits(out, year.unsigned_abs(), 4);
        } else {
            out.push(if year < 0 { '-' } else { '+' });
            push_digits(out, year.unsigned_abs(), 6);
        }
        out.push('-');
        push_digits(out, u64::from(month), 2);
        out.push('-');
        push_digits(out, u64::from(day), 2);
        out.push('T');
        push_digits(out, ms_of_day / 3_600_000, 2);
        out.push(':');
        push_digits(out, ms_of_day / 60_000 % 60, 2);
        out.push(':');
        push_digits(out, ms_of_day / 1000 % 60, 2);
        out.push('.');
        push_digits(out, ms_of_day % 1000, 3);
        out.push('Z');
    }
}

impl fmt::Display for UnixMillis {
    /// Writes [`to_datetime_string`](Self::to_datetime_string).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_datetime_string())
    }
}

impl FromStr for UnixMillis {
    type Err = DateTimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_datetime(s)
    }
}

impl From<i64> for UnixMillis {
    fn from(ms: i64) -> Self {
        Self(ms)
    }
}

impl From<UnixMillis> for i64 {
    fn from(t: UnixMillis) -> Self {
        t.0
    }
}

/// Why a text is not a protocol datetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DateTimeError {
    /// Not of the shape `YYYY-MM-DDTHH:MM[:SS[.fraction]]Z`.
    #[error("not of the form YYYY-MM-DDTHH:MM[:SS[.fraction]]Z")]
    Format,
    /// A numeric offset (`+02:00`) or a missing `Z`: only UTC with `Z` is allowed.
    #[error("the time zone must be 'Z' (UTC); numeric offsets are not allowed")]
    Offset,
    /// Month outside 01–12.
    #[error("month {0:02} is not 01-12")]
    Month(u8),
    /// Day 00 or past the end of the month (Feb 29 outside leap years included).
    #[error("day {day:02} does not exist in {year:04}-{month:02}")]
    Day {
        /// Year.
        year: u16,
        /// Month.
        month: u8,
        /// Day.
        day: u8,
    },
    /// Hour outside 00–23.
    #[error("hour {0:02} is not 00-23")]
    Hour(u8),
    /// Minute outside 00–59.
    #[error("minute {0:02} is not 00-59")]
    Minute(u8),
    /// Second outside 00–59 (no leap seconds).
    #[error("second {0:02} is not 00-59")]
    Second(u8),
}

/// Parses a protocol datetime `YYYY-MM-DDTHH:MM[:SS[.fraction]]Z` into Unix milliseconds.
///
/// The date is calendar-checked (month lengths, leap years); hour 00–23, minute and second
/// 00–59; any number of fraction digits, truncated to milliseconds; `T` and `Z` upper case;
/// no numeric offsets (the reference's zod `datetime()` rule).
///
/// # Errors
///
/// [`DateTimeError`] naming the first rule that failed.
///
/// # Examples
///
/// ```
/// use btps_types::{parse_datetime, DateTimeError};
/// assert!(parse_datetime("2024-02-29T23:59Z").is_ok());
/// assert!(matches!(parse_datetime("2025-02-29T00:00:00Z"), Err(DateTimeError::Day { .. })));
/// assert_eq!(parse_datetime("2025-07-01T24:00:00Z"), Err(DateTimeError::Hour(24)));
/// assert_eq!(parse_datetime("2025-07-01T09:30:00+02:00"), Err(DateTimeError::Offset));
/// ```
pub fn parse_datetime(text: &str) -> Result<UnixMillis, DateTimeError> {
    let b = text.as_bytes();
    // Fixed part: YYYY-MM-DDTHH:MM (16 bytes), then at least the `Z`.
    if b.len() < 17
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || !all_digits(&b[0..4])
        || !all_digits(&b[5..7])
        || !all_digits(&b[8..10])
        || !all_digits(&b[11..13])
        || !all_digits(&b[14..16])
    {
        return Err(DateTimeError::Format);
    }
    let year = num(&b[0..4]) as u16;
    let month = num(&b[5..7]) as u8;
    let day = num(&b[8..10]) as u8;
    let hour = num(&b[11..13]) as u8;
    let minute = num(&b[14..16]) as u8;

    let mut pos = 16;
    let mut second = 0u8;
    let mut millis = 0u32;
    if b[pos] == b':' {
        if b.len() < pos + 3 || !all_digits(&b[pos + 1..pos + 3]) {
            return Err(DateTimeError::Format);
        }
        second = num(&b[pos + 1..pos + 3]) as u8;
        pos += 3;
        if b.get(pos) == Some(&b'.') {
            pos += 1;
            let start = pos;
            while b.get(pos).is_some_and(u8::is_ascii_digit) {
                pos += 1;
            }
            if pos == start {
                return Err(DateTimeError::Format);
            }
            // Truncate to milliseconds: the first three digits, zero-padded.
            let digits = &b[start..pos.min(start + 3)];
            millis = num(digits) * 10u32.pow(3 - digits.len() as u32);
        }
    }
    match &b[pos..] {
        b"Z" => {}
        [b'+' | b'-', ..] | [] => return Err(DateTimeError::Offset),
        _ => return Err(DateTimeError::Format),
    }

    if !(1..=12).contains(&month) {
        return Err(DateTimeError::Month(month));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(DateTimeError::Day { year, month, day });
    }
    if hour > 23 {
        return Err(DateTimeError::Hour(hour));
    }
    if minute > 59 {
        return Err(DateTimeError::Minute(minute));
    }
    if second > 59 {
        return Err(DateTimeError::Second(second));
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    Ok(UnixMillis(secs * 1000 + i64::from(millis)))
}

/// Whether `text` is a protocol datetime (see [`parse_datetime`]).
pub fn is_datetime(text: &str) -> bool {
    parse_datetime(text).is_ok()
}

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (see [`UnixMillis::to_datetime_string`]).
///
/// # Examples
///
/// ```
/// use btps_types::{format_datetime, UnixMillis};
/// assert_eq!(format_datetime(UnixMillis::from_millis(0)), "1970-01-01T00:00:00.000Z");
/// assert_eq!(format_datetime(UnixMillis::from_millis(-1)), "1969-12-31T23:59:59.999Z");
/// ```
pub fn format_datetime(t: UnixMillis) -> String {
    t.to_datetime_string()
}

const MS_PER_DAY: i64 = 86_400_000;

fn all_digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

fn num(b: &[u8]) -> u32 {
    b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

/// Appends `n` in decimal, zero-padded to `width` digits.
fn push_digits(out: &mut String, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while n > 0 {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let start = i.min(buf.len() - width);
    out.extend(buf[start..].iter().map(|&d| char::from(d)));
}

/// Whether `year` is a Gregorian leap year (proleptic: year 0 is one).
const fn is_leap_year(year: u16) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

const fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(text: &str) -> i64 {
        parse_datetime(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .as_millis()
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(ms("1970-01-01T00:00Z"), 0);
        assert_eq!(ms("1970-01-01T00:00:00Z"), 0);
        assert_eq!(ms("1970-01-01T00:00:00.0Z"), 0);
        assert_eq!(ms("1970-01-01T00:00:01.5Z"), 1500);
        assert_eq!(ms("1970-01-01T00:00:01.25Z"), 1250);
        assert_eq!(ms("1970-01-01T00:00:01.123Z"), 1123);
        // Fraction digits past milliseconds are truncated, not rounded.
        assert_eq!(ms("1970-01-01T00:00:01.123999999999Z"), 1123);
        assert_eq!(ms("2025-07-01T09:30:00.000Z"), 1_751_362_200_000);
        assert_eq!(ms("2026-11-22T16:03:46.575Z"), 1_795_363_426_575);
        assert_eq!(ms("1969-12-31T23:59:59.999Z"), -1);
        assert_eq!(ms("0000-01-01T00:00:00Z"), -62_167_219_200_000);
        assert_eq!(ms("9999-12-31T23:59:59.999Z"), 253_402_300_799_999);
    }

    #[test]
    fn leap_years() {
        for ok in [
            "2024-02-29T00:00Z",
            "2000-02-29T00:00Z",
            "1600-02-29T00:00Z",
            "0000-02-29T00:00Z",
            "0004-02-29T00:00Z",
        ] {
            assert!(is_datetime(ok), "{ok}");
        }
        for (bad, year) in [
            ("2025-02-29T00:00Z", 2025),
            ("1900-02-29T00:00Z", 1900),
            ("2100-02-29T00:00Z", 2100),
            ("2023-02-29T00:00Z", 2023),
            ("0100-02-29T00:00Z", 100),
        ] {
            assert_eq!(
                parse_datetime(bad),
                Err(DateTimeError::Day {
                    year,
                    month: 2,
                    day: 29
                }),
                "{bad}"
            );
        }
        assert_eq!(
            ms("2024-03-01T00:00Z") - ms("2024-02-28T00:00Z"),
            2 * MS_PER_DAY
        );
        assert_eq!(
            ms("2025-03-01T00:00Z") - ms("2025-02-28T00:00Z"),
            MS_PER_DAY
        );
    }

    #[test]
    fn month_lengths() {
        assert_eq!(
            parse_datetime("2025-02-30T00:00Z"),
            Err(DateTimeError::Day {
                year: 2025,
                month: 2,
                day: 30
            })
        );
        for bad in [
            "2024-02-30T00:00Z",
            "2025-04-31T00:00Z",
            "2025-06-31T00:00Z",
            "2025-09-31T00:00Z",
            "2025-11-31T00:00Z",
            "2025-01-32T00:00Z",
            "2025-01-00T00:00Z",
        ] {
            assert!(
                matches!(parse_datetime(bad), Err(DateTimeError::Day { .. })),
                "{bad}"
            );
        }
        for ok in [
            "2025-01-31T00:00Z",
            "2025-03-31T00:00Z",
            "2025-12-31T00:00Z",
            "2025-04-30T00:00Z",
        ] {
            assert!(is_datetime(ok), "{ok}");
        }
        assert_eq!(
            parse_datetime("2025-13-01T00:00Z"),
            Err(DateTimeError::Month(13))
        );
        assert_eq!(
            parse_datetime("2025-00-01T00:00Z"),
            Err(DateTimeError::Month(0))
        );
    }

    #[test]
    fn time_ranges() {
        assert_eq!(
            parse_datetime("2025-07-01T24:00:00Z"),
            Err(DateTimeError::Hour(24))
        );
        assert_eq!(
            parse_datetime("2025-07-01T24:00Z"),
            Err(DateTimeError::Hour(24))
        );
        assert_eq!(
            parse_datetime("2025-07-01T23:60Z"),
            Err(DateTimeError::Minute(60))
        );
        assert_eq!(
            parse_datetime("2025-07-01T23:59:60Z"),
            Err(DateTimeError::Second(60))
        );
        assert!(is_datetime("2025-07-01T23:59:59.999999Z"));
        assert!(is_datetime("2025-07-01T00:00:00Z"));
    }

    #[test]
    fn offsets_and_shapes() {
        use DateTimeError::{Format, Offset};
        for (bad, why) in [
            ("2025-07-01T09:30:00+02:00", Offset),
            ("2025-07-01T09:30:00-05:00", Offset),
            ("2025-07-01T09:30+00:00", Offset),
            ("2025-07-01T09:30:00.000+00:00", Offset),
            ("2025-07-01T09:30:00", Offset),
            ("2025-07-01T09:30:00.123", Offset),
            ("2025-07-01T09:30:00z", Format),
            ("2025-07-01t09:30:00Z", Format),
            ("2025-07-01 09:30:00Z", Format),
            ("2025-07-01T09:30:00.Z", Format),
            ("2025-07-01T09:30:0Z", Format),
            ("2025-07-01T9:30:00Z", Format),
            ("2025-7-01T09:30:00Z", Format),
            ("25-07-01T09:30:00Z", Format),
            ("+02025-07-01T09:30:00Z", Format),
            ("2025-07-01", Format),
            ("2025-07-01T09:30", Format),
            ("2025-07-01T09Z", Format),
            ("2025-07-01T09:30:00ZZ", Format),
            ("2025-07-01T09:30:00.1.2Z", Format),
            ("2025-07-01T09:30:00,5Z", Format),
            ("2025-07-01T09:30:00 Z", Format),
            (" 2025-07-01T09:30:00Z", Format),
            ("2025-07-01T09:30:00Z ", Format),
            ("\u{ff12}025-07-01T09:30:00Z", Format),
            ("", Format),
        ] {
            assert_eq!(parse_datetime(bad), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn formatting() {
        for text in [
            "1970-01-01T00:00:00.000Z",
            "2025-07-01T09:30:00.000Z",
            "2024-02-29T23:59:59.999Z",
            "1969-12-31T23:59:59.999Z",
            "0000-01-01T00:00:00.000Z",
            "9999-12-31T23:59:59.999Z",
            "1600-03-01T12:00:00.001Z",
        ] {
            assert_eq!(UnixMillis::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            UnixMillis::from_millis(253_402_300_800_000).to_string(),
            "+010000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            UnixMillis::from_millis(-62_167_219_200_001).to_string(),
            "-000001-12-31T23:59:59.999Z"
        );
        assert_eq!(
            format_datetime(UnixMillis::EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn day_count_round_trip() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // Every day of 1999..=2001 formats and parses back.
        let start = ms("1999-01-01T00:00Z");
        for day in 0..(365 * 3 + 1) {
            let t = UnixMillis::from_millis(start + day * MS_PER_DAY + 45_296_789);
            assert_eq!(UnixMillis::parse(&t.to_string()), Ok(t));
        }
    }

    #[test]
    fn system_time() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_751_362_200_500);
        assert_eq!(
            UnixMillis::from_system_time(t),
            Some(UnixMillis::from_millis(1_751_362_200_500))
        );
        let t = SystemTime::UNIX_EPOCH - Duration::from_micros(1500);
        assert_eq!(
            UnixMillis::from_system_time(t),
            Some(UnixMillis::from_millis(-2))
        );
        let t = SystemTime::UNIX_EPOCH - Duration::from_millis(3);
        assert_eq!(
            UnixMillis::from_system_time(t),
            Some(UnixMillis::from_millis(-3))
        );
    }

    #[test]
    fn arithmetic() {
        let a = UnixMillis::from_millis(1000);
        assert_eq!(a.abs_diff(UnixMillis::from_millis(-500)), 1500);
        assert_eq!(a.saturating_add_millis(i64::MAX).as_millis(), i64::MAX);
        assert_eq!(a.checked_add_millis(i64::MAX), None);
        assert_eq!(a.checked_add_millis(-1000), Some(UnixMillis::EPOCH));
        assert_eq!("1970-01-01T00:00:01Z".parse::<UnixMillis>(), Ok(a));
        assert_eq!(i64::from(a), 1000);
    }
}
