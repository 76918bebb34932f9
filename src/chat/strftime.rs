//! `strftime` over a UTC timestamp, for the `strftime_now(format)` template function.
//!
//! HF implements it as `datetime.now().strftime(format)`, i.e. C-library `strftime` in the "C" locale. This covers
//! the directives of that locale (English names, `%c`/`%x`/`%X` in their C forms) and glibc's `-`, `_` and `0`
//! padding flags; an unknown directive is copied through unchanged, as glibc does.

use std::fmt::Write as _;

const WEEKDAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub microsecond: u32,
    /// 0 = Sunday
    pub weekday: u32,
    /// 0-based day of the year.
    pub yearday: u32,
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

impl DateTime {
    /// Breaks down a Unix time (seconds and microseconds since 1970-01-01T00:00:00Z).
    pub fn from_unix(secs: i64, micros: u32) -> DateTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        // Civil-from-days (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        const CUMULATIVE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let yearday = CUMULATIVE[month as usize - 1] + day - 1 + u32::from(month > 2 && is_leap(year));
        DateTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            microsecond: micros,
            weekday: (days + 4).rem_euclid(7) as u32,
            yearday,
        }
    }

    /// The current UTC time.
    pub fn now_utc() -> DateTime {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        DateTime::from_unix(now.as_secs() as i64, now.subsec_micros())
    }

    /// Week of the year with weeks starting on `first_weekday` (0 = Sunday for `%U`, 1 = Monday for `%W`).
    fn week_number(&self, first_weekday: u32) -> u32 {
        let wd = (self.weekday + 7 - first_weekday) % 7;
        (self.yearday + 7 - wd) / 7
    }

    /// ISO 8601 (year, week) for `%G`/`%V`.
    fn iso_week(&self) -> (i64, u32) {
        let iso_wd = (self.weekday + 6) % 7; // Monday = 0
        let yday = self.yearday as i64;
        let week = (yday - iso_wd as i64 + 10) / 7;
        if week < 1 {
            let prev = self.year - 1;
            let prev_len = if is_leap(prev) { 366 } else { 365 };
            let prev_yday = yday + prev_len;
            (prev, ((prev_yday - iso_wd as i64 + 10) / 7) as u32)
        } else {
            let len = if is_leap(self.year) { 366 } else { 365 };
            if week == 53 && (len - yday) <= (3 - iso_wd as i64) {
                (self.year + 1, 1)
            } else {
                (self.year, week as u32)
            }
        }
    }
}

/// Formats `t` per the C `strftime` directives in `format`.
pub fn strftime(t: &DateTime, format: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let flag = match chars.peek() {
            Some(&f @ ('-' | '_' | '0')) => {
                chars.next();
                Some(f)
            }
            _ => None,
        };
        let Some(d) = chars.next() else {
            out.push('%');
            if let Some(f) = flag {
                out.push(f);
            }
            break;
        };
        // Numeric field with the directive's default padding, overridable by the flag.
        let num = |out: &mut String, value: i64, width: usize, pad: char| {
            let pad = match flag {
                Some('-') => None,
                Some('_') => Some(' '),
                Some('0') => Some('0'),
                _ => Some(pad),
            };
            let digits = value.to_string();
            if let Some(p) = pad {
                for _ in digits.len()..width {
                    out.push(p);
                }
            }
            out.push_str(&digits);
        };
        let hour12 = if t.hour.is_multiple_of(12) { 12 } else { t.hour % 12 };
        match d {
            'a' => out.push_str(&WEEKDAYS[t.weekday as usize][..3]),
            'A' => out.push_str(WEEKDAYS[t.weekday as usize]),
            'b' | 'h' => out.push_str(&MONTHS[t.month as usize - 1][..3]),
            'B' => out.push_str(MONTHS[t.month as usize - 1]),
            'C' => num(&mut out, t.year.div_euclid(100), 2, '0'),
            'd' => num(&mut out, t.day.into(), 2, '0'),
            'e' => num(&mut out, t.day.into(), 2, ' '),
            'H' => num(&mut out, t.hour.into(), 2, '0'),
            'I' => num(&mut out, hour12.into(), 2, '0'),
            'j' => num(&mut out, (t.yearday + 1).into(), 3, '0'),
            'k' => num(&mut out, t.hour.into(), 2, ' '),
            'l' => num(&mut out, hour12.into(), 2, ' '),
            'm' => num(&mut out, t.month.into(), 2, '0'),
            'M' => num(&mut out, t.minute.into(), 2, '0'),
            'S' => num(&mut out, t.second.into(), 2, '0'),
            'f' => num(&mut out, t.microsecond.into(), 6, '0'),
            'y' => num(&mut out, t.year.rem_euclid(100), 2, '0'),
            'Y' => num(&mut out, t.year, 1, '0'),
            'G' => num(&mut out, t.iso_week().0, 1, '0'),
            'g' => num(&mut out, t.iso_week().0.rem_euclid(100), 2, '0'),
            'V' => num(&mut out, t.iso_week().1.into(), 2, '0'),
            'U' => num(&mut out, t.week_number(0).into(), 2, '0'),
            'W' => num(&mut out, t.week_number(1).into(), 2, '0'),
            'u' => num(&mut out, (if t.weekday == 0 { 7 } else { t.weekday }).into(), 1, '0'),
            'w' => num(&mut out, t.weekday.into(), 1, '0'),
            'p' => out.push_str(if t.hour < 12 { "AM" } else { "PM" }),
            'P' => out.push_str(if t.hour < 12 { "am" } else { "pm" }),
            'D' | 'x' => out.push_str(&strftime(t, "%m/%d/%y")),
            'F' => out.push_str(&strftime(t, "%Y-%m-%d")),
            'T' | 'X' => out.push_str(&strftime(t, "%H:%M:%S")),
            'R' => out.push_str(&strftime(t, "%H:%M")),
            'r' => out.push_str(&strftime(t, "%I:%M:%S %p")),
            'c' => out.push_str(&strftime(t, "%a %b %e %H:%M:%S %Y")),
            's' => {
                let days = days_from_civil(t.year, t.month, t.day);
                let secs = days * 86_400 + i64::from(t.hour * 3600 + t.minute * 60 + t.second);
                let _ = write!(out, "{secs}");
            }
            'n' => out.push('\n'),
            't' => out.push('\t'),
            '%' => out.push('%'),
            // A naive `datetime` has no zone: Python formats %z and %Z as empty strings.
            'z' | 'Z' => {}
            other => {
                out.push('%');
                if let Some(f) = flag {
                    out.push(f);
                }
                out.push(other);
            }
        }
    }
    out
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_down_unix_time() {
        // 2024-03-05 14:07:09 UTC, a Tuesday.
        let t = DateTime::from_unix(1_709_647_629, 0);
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second), (2024, 3, 5, 14, 7, 9));
        assert_eq!(t.weekday, 2);
        assert_eq!(t.yearday, 64);
        let epoch = DateTime::from_unix(0, 0);
        assert_eq!((epoch.year, epoch.month, epoch.day, epoch.weekday), (1970, 1, 1, 4));
        let before = DateTime::from_unix(-1, 0);
        assert_eq!((before.year, before.month, before.day, before.hour), (1969, 12, 31, 23));
        assert_eq!(days_from_civil(2024, 3, 5), 1_709_647_629 / 86_400);
    }

    #[test]
    fn formats_like_c_strftime() {
        let t = DateTime::from_unix(1_709_647_629, 42);
        assert_eq!(strftime(&t, "%d %b %Y"), "05 Mar 2024");
        assert_eq!(strftime(&t, "%A, %B %-d, %Y"), "Tuesday, March 5, 2024");
        assert_eq!(strftime(&t, "%Y-%m-%d %H:%M:%S"), "2024-03-05 14:07:09");
        assert_eq!(strftime(&t, "%I%p %j %y %e|%f"), "02PM 065 24  5|000042");
        assert_eq!(strftime(&t, "%c"), "Tue Mar  5 14:07:09 2024");
        assert_eq!(strftime(&t, "%U %W %V %G %u %w"), "09 10 10 2024 2 2");
        assert_eq!(strftime(&t, "100%% %Q %z%Z"), "100% %Q ");
        // 2021-01-01 is a Friday in ISO week 53 of 2020.
        let t = DateTime::from_unix(1_609_459_200, 0);
        assert_eq!(strftime(&t, "%G-W%V-%u"), "2020-W53-5");
        // 2024-12-30 is a Monday in ISO week 1 of 2025.
        let t = DateTime::from_unix(1_735_516_800, 0);
        assert_eq!(strftime(&t, "%G-W%V-%u %s"), "2025-W01-1 1735516800");
    }
}
