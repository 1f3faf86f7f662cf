//! Task ids: one output tile x one period. Three spellings are accepted (odc-stats'),
//! one is printed: `x+003/y-004/2019--P1Y`.

use crate::error::{CoreError, Result};
use crate::grid::TileIndex;
use crate::period::Period;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId {
    pub period: Period,
    pub tile: TileIndex,
}

impl TaskId {
    pub fn new(period: Period, tile: TileIndex) -> Self {
        Self { period, tile }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tile, self.period)
    }
}

fn parse_index(s: &str) -> Option<i32> {
    let s = s.trim();
    let digits = s.strip_prefix('+').or_else(|| s.strip_prefix('-')).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 9 {
        return None;
    }
    s.trim_start_matches('+').parse().ok()
}

impl FromStr for TaskId {
    type Err = CoreError;
    fn from_str(input: &str) -> Result<TaskId> {
        let bad = || CoreError::BadTaskId(input.to_string());
        let s = input.trim();
        let (period, x, y) = if s.contains(',') {
            // 2019--P1Y,+003,-004
            let p: Vec<&str> = s.split(',').collect();
            if p.len() != 3 {
                return Err(bad());
            }
            (p[0], p[1], p[2])
        } else {
            let p: Vec<&str> = s.split('/').collect();
            if p.len() != 3 {
                return Err(bad());
            }
            match (p[0].strip_prefix('x'), p[1].strip_prefix('y')) {
                // x+003/y-004/2019--P1Y
                (Some(x), Some(y)) => (p[2], x, y),
                // 2019--P1Y/3/-4
                _ => (p[0], p[1], p[2]),
            }
        };
        let period: Period = period.parse().map_err(|_| bad())?;
        let x = parse_index(x).ok_or_else(bad)?;
        let y = parse_index(y).ok_or_else(bad)?;
        Ok(TaskId { period, tile: TileIndex { x, y } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_forms_one_task() {
        let a: TaskId = "x+003/y-004/2019--P1Y".parse().unwrap();
        let b: TaskId = "2019--P1Y/3/-4".parse().unwrap();
        let c: TaskId = "2019--P1Y,+003,-004".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.to_string(), "x+003/y-004/2019--P1Y");
        assert_eq!(a.tile, TileIndex::new(3, -4));
        let r: TaskId = a.to_string().parse().unwrap();
        assert_eq!(r, a);
    }

    #[test]
    fn round_trip_many() {
        for x in [-120, -1, 0, 7, 999] {
            for p in ["2019-07--P1Y", "2019-12--P3M", "2015--P5Y"] {
                let t = TaskId::new(p.parse().unwrap(), TileIndex::new(x, -x));
                assert_eq!(t.to_string().parse::<TaskId>().unwrap(), t);
            }
        }
    }

    #[test]
    fn malformed_ids_name_input() {
        for s in
            ["", "x+003/y-004", "x3/y4/2019", "2019--P1Y,+003", "a/b/c", "x+0a3/y-004/2019--P1Y", "2019--P1Y/3/--4"]
        {
            let e = s.parse::<TaskId>().unwrap_err().to_string();
            assert!(e.contains("malformed task id"), "{e}");
        }
    }
}
