//! Time periods (ISO-8601 start + duration labels such as `2019--P1Y`) and the
//! frequencies that bin observations into them.

use crate::error::{CoreError, Result};
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A half-open time period `[start, start + months + days)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Period {
    pub start: NaiveDate,
    pub months: u32,
    pub days: u32,
}

impl Period {
    pub fn new(start: NaiveDate, months: u32, days: u32) -> Self {
        Self { start, months, days }
    }
    pub fn year(year: i32) -> Self {
        Self::new(ymd(year, 1, 1), 12, 0)
    }
    /// Exclusive end date.
    pub fn end(&self) -> NaiveDate {
        (self.start + Months::new(self.months)) + Duration::days(self.days as i64)
    }
    pub fn contains(&self, d: NaiveDate) -> bool {
        d >= self.start && d < self.end()
    }
    /// The canonical label: `2019--P1Y`, `2019-07--P1Y`, `2019-01--P6M`, `2020-05-03--P10D`.
    pub fn label(&self) -> String {
        self.to_string()
    }
    pub fn start_datetime(&self) -> DateTime<Utc> {
        self.start.and_hms_opt(0, 0, 0).unwrap().and_utc()
    }
    /// Last instant of the period (end minus one second... to the microsecond), as
    /// odc-stats records `end_datetime`.
    pub fn end_datetime(&self) -> DateTime<Utc> {
        self.end().and_hms_opt(0, 0, 0).unwrap().and_utc() - Duration::microseconds(1)
    }
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.start;
        if self.days == 0 && s.day() == 1 {
            if s.month() == 1 && self.months.is_multiple_of(12) {
                write!(f, "{:04}--P{}Y", s.year(), self.months / 12)
            } else if self.months.is_multiple_of(12) {
                write!(f, "{:04}-{:02}--P{}Y", s.year(), s.month(), self.months / 12)
            } else {
                write!(f, "{:04}-{:02}--P{}M", s.year(), s.month(), self.months)
            }
        } else {
            let mut dur = String::from("P");
            if self.months >= 12 && self.months.is_multiple_of(12) {
                dur += &format!("{}Y", self.months / 12);
            } else if self.months > 0 {
                dur += &format!("{}M", self.months);
            }
            if self.days > 0 || self.months == 0 {
                dur += &format!("{}D", self.days);
            }
            write!(f, "{}--{}", s.format("%Y-%m-%d"), dur)
        }
    }
}

/// The longest durations a period may have: 100 years, 9999 days (four digits, as parsed).
const MAX_MONTHS: u32 = 1200;
const MAX_DAYS: u32 = 9999;

impl FromStr for Period {
    type Err = CoreError;
    fn from_str(input: &str) -> Result<Period> {
        let bad = |why: &str| CoreError::BadPeriod { input: input.to_string(), why: why.to_string() };
        let (start, dur) =
            input.trim().split_once("--").ok_or_else(|| bad("missing '--' between start and duration"))?;
        let parts: Vec<&str> = start.split('-').collect();
        let num = |s: &str, what: &str| -> Result<u32> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 4 {
                return Err(bad(&format!("{what} '{s}' is not a number")));
            }
            s.parse::<u32>().map_err(|_| bad(what))
        };
        let (y, m, d) = match parts.as_slice() {
            [y] => (num(y, "year")?, 1, 1),
            [y, m] => (num(y, "year")?, num(m, "month")?, 1),
            [y, m, d] => (num(y, "year")?, num(m, "month")?, num(d, "day")?),
            _ => return Err(bad("start must be YYYY, YYYY-MM or YYYY-MM-DD")),
        };
        if parts[0].len() != 4 {
            return Err(bad("year must have four digits"));
        }
        let start = NaiveDate::from_ymd_opt(y as i32, m, d).ok_or_else(|| bad("start is not a calendar date"))?;
        let mut rest = dur.strip_prefix('P').ok_or_else(|| bad("duration must start with 'P'"))?;
        let (mut months, mut days) = (0u32, 0u32);
        if rest.is_empty() {
            return Err(bad("empty duration"));
        }
        while !rest.is_empty() {
            let n_len = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
            if n_len == 0 || n_len > 4 || n_len == rest.len() {
                return Err(bad("duration must be like P1Y, P6M, P3M, P10D"));
            }
            let n: u32 = rest[..n_len].parse().map_err(|_| bad("duration number"))?;
            match rest.as_bytes()[n_len] {
                b'Y' => months += n * 12,
                b'M' => months += n,
                b'W' => days += n * 7,
                b'D' => days += n,
                _ => return Err(bad("duration units are Y, M, W or D")),
            }
            rest = &rest[n_len + 1..];
        }
        if months == 0 && days == 0 {
            return Err(bad("duration is zero"));
        }
        // Bounded so that every period's label parses back (found by fuzzing: P9201W).
        if months > MAX_MONTHS || days > MAX_DAYS {
            return Err(bad(&format!("duration is too long (at most {} years, or {MAX_DAYS} days)", MAX_MONTHS / 12)));
        }
        Ok(Period { start, months, days })
    }
}

/// How observations are binned into periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frequency {
    Annual,
    #[serde(rename = "annual-fy")]
    AnnualFy,
    Semiannual,
    Seasonal,
    #[serde(rename = "rolling-3months")]
    Rolling3Months,
    All,
}

impl FromStr for Frequency {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Frequency> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "annual" => Frequency::Annual,
            "annual-fy" => Frequency::AnnualFy,
            "semiannual" => Frequency::Semiannual,
            "seasonal" => Frequency::Seasonal,
            "rolling-3months" => Frequency::Rolling3Months,
            "all" => Frequency::All,
            _ => return Err(CoreError::UnknownFrequency(s.to_string())),
        })
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Frequency::Annual => "annual",
            Frequency::AnnualFy => "annual-fy",
            Frequency::Semiannual => "semiannual",
            Frequency::Seasonal => "seasonal",
            Frequency::Rolling3Months => "rolling-3months",
            Frequency::All => "all",
        })
    }
}

impl Frequency {
    /// The periods a solar day falls in. `all_period` is the single period used by
    /// [`Frequency::All`] (the temporal range, or the data's whole years).
    pub fn periods_for(&self, day: NaiveDate, all_period: Option<Period>) -> Vec<Period> {
        let (y, m) = (day.year(), day.month());
        match self {
            Frequency::Annual => vec![Period::year(y)],
            Frequency::AnnualFy => {
                let sy = if m >= 7 { y } else { y - 1 };
                vec![Period::new(ymd(sy, 7, 1), 12, 0)]
            }
            Frequency::Semiannual => vec![Period::new(ymd(y, if m >= 7 { 7 } else { 1 }, 1), 6, 0)],
            Frequency::Seasonal => {
                // Seasons anchored on December: DJF, MAM, JJA, SON.
                let (sy, sm) = match m {
                    12 => (y, 12),
                    1 | 2 => (y - 1, 12),
                    _ => (y, ((m - 3) / 3) * 3 + 3),
                };
                vec![Period::new(ymd(sy, sm, 1), 3, 0)]
            }
            Frequency::Rolling3Months => {
                let first = ymd(y, m, 1);
                (0..3u32).rev().map(|back| Period::new(first - Months::new(back), 3, 0)).collect()
            }
            Frequency::All => all_period.into_iter().filter(|p| p.contains(day)).collect(),
        }
    }
}

/// The local solar date of an observation: UTC shifted by longitude / 15 hours, so that
/// an overpass near midnight UTC is not split across two days.
pub fn solar_day(t: DateTime<Utc>, longitude: f64) -> NaiveDate {
    let offset = Duration::milliseconds((longitude / 15.0 * 3_600_000.0).round() as i64);
    (t + offset).date_naive()
}

/// The whole calendar years spanning `first..=last`, as one period (`2015--P5Y`).
pub fn whole_years(first: NaiveDate, last: NaiveDate) -> Period {
    let years = (last.year() - first.year() + 1).max(1) as u32;
    Period::new(ymd(first.year(), 1, 1), 12 * years, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn p(s: &str) -> Period {
        s.parse().unwrap()
    }

    #[test]
    fn every_period_label_parses_back_and_durations_are_bounded() {
        // Fuzzing found P9201W: 64 407 days, a label the parser refused.
        assert!("2020--P9201W".parse::<Period>().unwrap_err().to_string().contains("too long"));
        assert!("2020--P101Y".parse::<Period>().is_err());
        for text in ["2020--P1428W", "2020--P100Y", "2020-02--P9999D", "2020--P99Y11M"] {
            let p: Period = text.parse().unwrap();
            assert_eq!(p.label().parse::<Period>().unwrap(), p, "{text}");
        }
    }

    #[test]
    fn labels_round_trip() {
        for s in [
            "2019--P1Y",
            "2019-07--P1Y",
            "2019-01--P6M",
            "2019-12--P3M",
            "2015--P5Y",
            "2020-05--P1M",
            "2020-05-03--P10D",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
        assert_eq!(p("2019--P1Y").end(), ymd(2020, 1, 1));
        assert_eq!(p("2019-12--P3M").end(), ymd(2020, 3, 1));
        assert_eq!(p("2020-05-03--P1W").end(), ymd(2020, 5, 10));
    }

    #[test]
    fn bad_periods_are_named() {
        for s in ["2019", "2019--", "2019--P", "19--P1Y", "2019-13--P1M", "2019--P0Y", "2019--PXY", "2019--P1Q"] {
            let e = s.parse::<Period>().unwrap_err().to_string();
            assert!(e.contains(s), "{e}");
        }
    }

    #[test]
    fn frequencies() {
        let d = ymd(2020, 2, 10);
        assert_eq!(Frequency::Annual.periods_for(d, None), vec![p("2020--P1Y")]);
        assert_eq!(Frequency::AnnualFy.periods_for(d, None), vec![p("2019-07--P1Y")]);
        assert_eq!(Frequency::AnnualFy.periods_for(ymd(2020, 7, 1), None), vec![p("2020-07--P1Y")]);
        assert_eq!(Frequency::Semiannual.periods_for(d, None), vec![p("2020-01--P6M")]);
        assert_eq!(Frequency::Semiannual.periods_for(ymd(2020, 12, 31), None), vec![p("2020-07--P6M")]);
        let r = Frequency::Rolling3Months.periods_for(d, None);
        assert_eq!(r, vec![p("2019-12--P3M"), p("2020-01--P3M"), p("2020-02--P3M")]);
        assert!(r.iter().all(|x| x.contains(d)));
        let all = p("2016--P5Y");
        assert_eq!(Frequency::All.periods_for(d, Some(all)), vec![all]);
        assert!(Frequency::All.periods_for(ymd(2021, 1, 1), Some(all)).is_empty());
    }

    #[test]
    fn seasonal_year_boundary() {
        // January and February belong to the summer that started the previous December.
        assert_eq!(Frequency::Seasonal.periods_for(ymd(2020, 1, 15), None), vec![p("2019-12--P3M")]);
        assert_eq!(Frequency::Seasonal.periods_for(ymd(2020, 2, 29), None), vec![p("2019-12--P3M")]);
        assert_eq!(Frequency::Seasonal.periods_for(ymd(2019, 12, 1), None), vec![p("2019-12--P3M")]);
        assert_eq!(Frequency::Seasonal.periods_for(ymd(2020, 3, 1), None), vec![p("2020-03--P3M")]);
        assert_eq!(Frequency::Seasonal.periods_for(ymd(2020, 8, 31), None), vec![p("2020-06--P3M")]);
        assert_eq!(Frequency::Seasonal.periods_for(ymd(2020, 11, 30), None), vec![p("2020-09--P3M")]);
    }

    #[test]
    fn solar_day_edge() {
        // 23:30 UTC on 31 Dec 2019 at 150 E is 09:30 local on 1 Jan 2020: next year.
        let t = Utc.with_ymd_and_hms(2019, 12, 31, 23, 30, 0).unwrap();
        assert_eq!(solar_day(t, 150.0), ymd(2020, 1, 1));
        assert_eq!(Frequency::Annual.periods_for(solar_day(t, 150.0), None), vec![p("2020--P1Y")]);
        // At 0 E it stays on the 31st; far west it stays too.
        assert_eq!(solar_day(t, 0.0), ymd(2019, 12, 31));
        // 00:30 UTC on 1 Jan at 120 W is 16:30 on 31 Dec local.
        let t = Utc.with_ymd_and_hms(2020, 1, 1, 0, 30, 0).unwrap();
        assert_eq!(solar_day(t, -120.0), ymd(2019, 12, 31));
    }

    #[test]
    fn frequency_names() {
        for f in ["annual", "annual-fy", "semiannual", "seasonal", "rolling-3months", "all"] {
            assert_eq!(f.parse::<Frequency>().unwrap().to_string(), f);
        }
        assert!("monthly".parse::<Frequency>().unwrap_err().to_string().contains("monthly"));
        assert_eq!(whole_years(ymd(2015, 3, 1), ymd(2019, 2, 1)).to_string(), "2015--P5Y");
    }
}
