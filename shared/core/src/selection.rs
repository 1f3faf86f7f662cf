//! Selecting tasks from a plan: by task id, zero-based index, or Python-style slice.

use crate::error::{CoreError, Result};
use crate::task_id::TaskId;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Id(TaskId),
    Index(i64),
    Slice { start: Option<i64>, stop: Option<i64>, step: i64 },
}

impl FromStr for Selection {
    type Err = CoreError;
    fn from_str(input: &str) -> Result<Selection> {
        let s = input.trim();
        let bad = |why: &str| CoreError::BadSelection { input: input.to_string(), why: why.to_string() };
        let int = |v: &str| -> Result<Option<i64>> {
            let v = v.trim();
            if v.is_empty() {
                Ok(None)
            } else {
                v.parse::<i64>().map(Some).map_err(|_| bad(&format!("'{v}' is not an integer")))
            }
        };
        // Task ids contain '--' (the period); slices and indices never do.
        if s.contains("--") {
            return s.parse::<TaskId>().map(Selection::Id).map_err(|e| bad(&e.to_string()));
        }
        if s.contains(':') {
            let parts: Vec<&str> = s.split(':').collect();
            if parts.len() > 3 {
                return Err(bad("a slice has at most two ':'"));
            }
            let step = match parts.get(2) {
                Some(p) => int(p)?.unwrap_or(1),
                None => 1,
            };
            if step == 0 {
                return Err(bad("slice step cannot be zero"));
            }
            return Ok(Selection::Slice { start: int(parts[0])?, stop: int(parts[1])?, step });
        }
        int(s)?.map(Selection::Index).ok_or_else(|| bad("empty selection"))
    }
}

impl Selection {
    /// Indices into a list of `len` tasks (ordered as the plan lists them), with Python's
    /// semantics for negative indices and steps. `ids` resolves a task id to its index.
    pub fn indices(&self, len: usize, index_of: impl Fn(&TaskId) -> Option<usize>) -> Result<Vec<usize>> {
        let n = len as i64;
        match self {
            Selection::Id(id) => index_of(id).map(|i| vec![i]).ok_or_else(|| CoreError::BadSelection {
                input: id.to_string(),
                why: "no such task in the plan".into(),
            }),
            Selection::Index(i) => {
                let j = if *i < 0 { n + i } else { *i };
                if j < 0 || j >= n {
                    return Err(CoreError::BadSelection {
                        input: i.to_string(),
                        why: format!("index out of range: the plan has {len} tasks"),
                    });
                }
                Ok(vec![j as usize])
            }
            Selection::Slice { start, stop, step } => {
                let step = *step;
                let norm = |v: i64, lo: i64, hi: i64| {
                    let v = if v < 0 { v + n } else { v };
                    v.clamp(lo, hi)
                };
                let mut out = Vec::new();
                if step > 0 {
                    let a = start.map_or(0, |v| norm(v, 0, n));
                    let b = stop.map_or(n, |v| norm(v, 0, n));
                    let mut i = a;
                    while i < b {
                        out.push(i as usize);
                        i += step;
                    }
                } else {
                    let a = start.map_or(n - 1, |v| norm(v, -1, n - 1));
                    let b = stop.map_or(-1, |v| norm(v, -1, n - 1));
                    let mut i = a;
                    while i > b {
                        out.push(i as usize);
                        i += step;
                    }
                }
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str, n: usize) -> Vec<usize> {
        s.parse::<Selection>().unwrap().indices(n, |_| None).unwrap()
    }

    #[test]
    fn python_slices() {
        assert_eq!(sel("::10", 25), vec![0, 10, 20]);
        assert_eq!(sel(":3", 10), vec![0, 1, 2]);
        assert_eq!(sel("7:", 10), vec![7, 8, 9]);
        assert_eq!(sel("-2:", 10), vec![8, 9]);
        assert_eq!(sel("::-3", 7), vec![6, 3, 0]);
        assert_eq!(sel("1:100:50", 10), vec![1]);
        assert_eq!(sel(":100", 3), vec![0, 1, 2]);
        assert_eq!(sel("5:2", 10), Vec::<usize>::new());
        assert_eq!(sel("4", 10), vec![4]);
        assert_eq!(sel("-1", 10), vec![9]);
    }

    #[test]
    fn by_id() {
        let s: Selection = "2019--P1Y,+003,-004".parse().unwrap();
        let want: TaskId = "x+003/y-004/2019--P1Y".parse().unwrap();
        assert_eq!(s.indices(10, |t| (t == &want).then_some(6)).unwrap(), vec![6]);
        let e = s.indices(10, |_| None).unwrap_err().to_string();
        assert!(e.contains("no such task"), "{e}");
    }

    #[test]
    fn errors() {
        assert!("1:2:0".parse::<Selection>().is_err());
        assert!("a:b".parse::<Selection>().is_err());
        assert!("1:2:3:4".parse::<Selection>().is_err());
        assert!("".parse::<Selection>().is_err());
        let e = "12".parse::<Selection>().unwrap().indices(5, |_| None).unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
    }
}
