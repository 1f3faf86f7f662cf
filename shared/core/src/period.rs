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

/// How observations are binned into periods: odc-stats' ten frequencies (with its
/// spellings) and two of ours, `monthly` and `dekad`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frequency {
    Annual,
    #[serde(rename = "annual-fy")]
    AnnualFy,
    Semiannual,
    /// DJF, MAM, JJA, SON.
    Seasonal,
    /// JFM, AMJ, JAS, OND (odc-stats spells it `quartely`).
    #[serde(rename = "quartely")]
    Quarterly,
    /// Three-month seasons starting at the temporal range's month.
    #[serde(rename = "3month-seasons")]
    ThreeMonthSeasons,
    #[serde(rename = "rolling-3months")]
    Rolling3Months,
    /// November to March, one season a year (the other months are left out).
    #[serde(rename = "nov-mar")]
    NovMar,
    /// April to October, one season a year.
    #[serde(rename = "apr-oct")]
    AprOct,
    Monthly,
    /// Ten-day periods: days 1-10, 11-20 and 21 to the month's end.
    Dekad,
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
            "quartely" | "quarterly" => Frequency::Quarterly,
            "3month-seasons" => Frequency::ThreeMonthSeasons,
            "rolling-3months" => Frequency::Rolling3Months,
            "nov-mar" => Frequency::NovMar,
            "apr-oct" => Frequency::AprOct,
            "monthly" => Frequency::Monthly,
            "dekad" => Frequency::Dekad,
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
            Frequency::Quarterly => "quartely",
            Frequency::ThreeMonthSeasons => "3month-seasons",
            Frequency::Rolling3Months => "rolling-3months",
            Frequency::NovMar => "nov-mar",
            Frequency::AprOct => "apr-oct",
            Frequency::Monthly => "monthly",
            Frequency::Dekad => "dekad",
            Frequency::All => "all",
        })
    }
}

/// The season of `months` months, starting in one of the months `anchor + k * months`,
/// that holds `day` (odc-stats' `mk_season_rules` and `season_binner`).
fn season_of(day: NaiveDate, months: u32, anchor: u32) -> Period {
    let (y, m) = (day.year(), day.month());
    // Months since the anchor month, 0..12; the season starts at its multiple of `months`.
    let since = (m + 12 - anchor) % 12;
    let start_month = (anchor - 1 + since / months * months) % 12 + 1;
    let year = if start_month <= m { y } else { y - 1 };
    Period::new(ymd(year, start_month, 1), months, 0)
}

/// The one season a year of `months` months from `anchor`, if it holds `day`
/// (odc-stats' `mk_single_season_rules`).
fn single_season_of(day: NaiveDate, months: u32, anchor: u32) -> Option<Period> {
    let since = (day.month() + 12 - anchor) % 12;
    (since < months).then(|| season_of(day, 12, anchor)).map(|p| Period::new(p.start, months, 0))
}

impl Frequency {
    /// Whether periods need the run's temporal range (their anchor comes from it).
    pub fn needs_range(&self) -> bool {
        matches!(self, Frequency::ThreeMonthSeasons)
    }

    /// The periods a solar day falls in. `range` is the run's temporal range (for `all`
    /// without one, the data's whole years): `all` is that one period, `3month-seasons`
    /// start at its month, and rolling windows are those wholly inside it, as odc-stats
    /// makes them.
    pub fn periods_for(&self, day: NaiveDate, range: Option<Period>) -> Vec<Period> {
        let (y, m) = (day.year(), day.month());
        let inside = |p: &Period| range.is_none_or(|r| p.start >= r.start && p.end() <= r.end());
        match self {
            Frequency::Annual => vec![Period::year(y)],
            Frequency::AnnualFy => vec![season_of(day, 12, 7)],
            Frequency::Semiannual => vec![season_of(day, 6, 1)],
            Frequency::Seasonal => vec![season_of(day, 3, 12)],
            Frequency::Quarterly => vec![season_of(day, 3, 1)],
            // Seasons anchored at the range's month; the range prunes the dates, not the
            // seasons (a range from 15 January keeps January's season), as odc-stats does.
            Frequency::ThreeMonthSeasons => range.map(|r| season_of(day, 3, r.start.month())).into_iter().collect(),
            Frequency::Rolling3Months => {
                // Windows start on the range's day of month (the 1st without a range) and
                // step by a month, as odc-stats' mk_rolling_season_rules.
                let day_of_month = range.map_or(1, |r| r.start.day());
                (0..4u32)
                    .filter_map(|back| {
                        let start = ymd(y, m, 1).checked_sub_months(Months::new(back))?;
                        let start = start.with_day(day_of_month.min(days_in_month(start)))?;
                        Some(Period::new(start, 3, 0))
                    })
                    .filter(|p| p.contains(day) && inside(p))
                    .rev()
                    .collect()
            }
            Frequency::NovMar => single_season_of(day, 5, 11).into_iter().collect(),
            Frequency::AprOct => single_season_of(day, 7, 4).into_iter().collect(),
            Frequency::Monthly => vec![Period::new(ymd(y, m, 1), 1, 0)],
            Frequency::Dekad => {
                let d = day.day();
                let (start, days) = match d {
                    1..=10 => (1, 10),
                    11..=20 => (11, 10),
                    _ => (21, days_in_month(day) - 20),
                };
                vec![Period::new(ymd(y, m, start), 0, days)]
            }
            Frequency::All => range.into_iter().filter(|p| p.contains(day)).collect(),
        }
    }
}

fn days_in_month(d: NaiveDate) -> u32 {
    let first = ymd(d.year(), d.month(), 1);
    (first + Months::new(1) - first).num_days() as u32
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

    /// odc-stats' seasons (odc/stats/utils.py: mk_season_rules, mk_single_season_rules,
    /// mk_rolling_season_rules, and tasks.py's anchors), and our monthly and dekad.
    #[test]
    fn odc_stats_frequencies_and_ours() {
        let q = |y, m, d| Frequency::Quarterly.periods_for(ymd(y, m, d), None);
        assert_eq!(q(2020, 2, 10), vec![p("2020-01--P3M")]);
        assert_eq!(q(2020, 4, 1), vec![p("2020-04--P3M")]);
        assert_eq!(q(2020, 12, 31), vec![p("2020-10--P3M")]);
        // 3month-seasons start at the range's month; dates outside the range are pruned
        // (by the binner), seasons are not.
        let range = Some(p("2020-02--P1Y"));
        let s = |y, m| Frequency::ThreeMonthSeasons.periods_for(ymd(y, m, 5), range);
        assert_eq!(s(2020, 2), vec![p("2020-02--P3M")]);
        assert_eq!(s(2020, 4), vec![p("2020-02--P3M")]);
        assert_eq!(s(2020, 5), vec![p("2020-05--P3M")]);
        assert_eq!(s(2021, 1), vec![p("2020-11--P3M")]);
        let pruned = crate::binning::temporal_bins(Frequency::ThreeMonthSeasons, ymd(2020, 1, 5), range, range);
        assert!(pruned.is_empty(), "before the range");
        let mid_month = Some(p("2020-01-15--P6M"));
        let first = Frequency::ThreeMonthSeasons.periods_for(ymd(2020, 1, 20), mid_month);
        assert_eq!(first, vec![p("2020-01--P3M")], "the season the range starts in is kept");
        assert!(Frequency::ThreeMonthSeasons.needs_range());
        // Rolling windows only inside the range (odc-stats makes no others).
        let year = Some(p("2020--P1Y"));
        let r = |m, d| Frequency::Rolling3Months.periods_for(ymd(2020, m, d), year);
        assert_eq!(r(2, 10), vec![p("2020-01--P3M"), p("2020-02--P3M")]);
        assert_eq!(r(1, 1), vec![p("2020-01--P3M")]);
        assert_eq!(r(11, 15), vec![p("2020-09--P3M"), p("2020-10--P3M")]);
        assert_eq!(r(6, 30).len(), 3);
        // A range starting mid-month: windows start on its day.
        let mid = Some(p("2020-01-15--P1Y"));
        let w = Frequency::Rolling3Months.periods_for(ymd(2020, 4, 10), mid);
        assert_eq!(w, vec![p("2020-01-15--P3M"), p("2020-02-15--P3M"), p("2020-03-15--P3M")]);
        // One season a year; the other months belong to no period.
        let nm = |y, m| Frequency::NovMar.periods_for(ymd(y, m, 1), None);
        assert_eq!(nm(2020, 2), vec![p("2019-11--P5M")]);
        assert_eq!(nm(2020, 3), vec![p("2019-11--P5M")]);
        assert_eq!(nm(2020, 11), vec![p("2020-11--P5M")]);
        assert!(nm(2020, 4).is_empty() && nm(2020, 10).is_empty());
        let ao = |m| Frequency::AprOct.periods_for(ymd(2020, m, 1), None);
        assert_eq!(ao(4), vec![p("2020-04--P7M")]);
        assert_eq!(ao(10), vec![p("2020-04--P7M")]);
        assert!(ao(3).is_empty() && ao(11).is_empty());
        assert_eq!(Frequency::Monthly.periods_for(ymd(2020, 2, 29), None), vec![p("2020-02--P1M")]);
        let dk = |m, d| Frequency::Dekad.periods_for(ymd(2020, m, d), None)[0];
        assert_eq!(dk(2, 10), p("2020-02-01--P10D"));
        assert_eq!(dk(2, 11), p("2020-02-11--P10D"));
        assert_eq!(dk(2, 29), p("2020-02-21--P9D"));
        assert_eq!(dk(1, 31), p("2020-01-21--P11D"));
        // Every day of two years falls in exactly the one period that contains it, whose
        // label parses back.
        let mut day = ymd(2019, 1, 1);
        while day < ymd(2021, 1, 1) {
            for f in
                [Frequency::Quarterly, Frequency::Monthly, Frequency::Dekad, Frequency::Seasonal, Frequency::AnnualFy]
            {
                let ps = f.periods_for(day, None);
                assert_eq!(ps.len(), 1, "{f} {day}");
                assert!(ps[0].contains(day), "{f} {day}: {}", ps[0]);
                assert_eq!(ps[0].label().parse::<Period>().unwrap(), ps[0]);
            }
            day = day.succ_opt().unwrap();
        }
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
        for f in [
            "annual",
            "annual-fy",
            "semiannual",
            "seasonal",
            "quartely",
            "3month-seasons",
            "rolling-3months",
            "nov-mar",
            "apr-oct",
            "monthly",
            "dekad",
            "all",
        ] {
            assert_eq!(f.parse::<Frequency>().unwrap().to_string(), f);
        }
        assert_eq!("quarterly".parse::<Frequency>().unwrap(), Frequency::Quarterly);
        let e = "weekly".parse::<Frequency>().unwrap_err().to_string();
        assert!(e.contains("weekly") && e.contains("dekad") && e.contains("nov-mar"), "{e}");
        assert_eq!(whole_years(ymd(2015, 3, 1), ymd(2019, 2, 1)).to_string(), "2015--P5Y");
    }
}
