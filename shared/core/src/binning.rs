//! Binning datasets into tasks: for each dataset, the tiles its reprojected footprint
//! touches times the periods its local solar day falls in.

use crate::dataset::Dataset;
use crate::error::Result;
use crate::geometry::{project_rings, CrsTransform};
use crate::grid::{GridSpec, TileIndex};
use crate::period::{solar_day, Frequency, Period};
use crate::task_id::TaskId;
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};

/// What to bin and how.
#[derive(Debug, Clone)]
pub struct BinningRules {
    pub grid: GridSpec,
    pub frequency: Frequency,
    /// Only observations whose solar day falls in this range are used.
    pub temporal_range: Option<Period>,
    /// Only these tiles (all if empty).
    pub tiles: BTreeSet<TileIndex>,
}

/// One task being assembled: indices into the dataset list, and its observation days.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskBin {
    pub datasets: Vec<usize>,
    pub days: BTreeSet<NaiveDate>,
}

/// Where each dataset went, for reporting.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BinningStats {
    pub datasets_seen: usize,
    pub outside_range: usize,
    pub outside_tiles: usize,
}

/// Incremental binner: feed datasets one at a time (a stream), take the tasks at the end.
pub struct Binner<'a> {
    rules: &'a BinningRules,
    transform: &'a dyn CrsTransform,
    all_period: Option<Period>,
    pub tasks: BTreeMap<TaskId, TaskBin>,
    pub stats: BinningStats,
}

impl<'a> Binner<'a> {
    /// `all_period` is the period used by the `all` frequency (the temporal range or the
    /// whole years of the data); ignored by the others.
    pub fn new(rules: &'a BinningRules, transform: &'a dyn CrsTransform, all_period: Option<Period>) -> Self {
        Binner { rules, transform, all_period, tasks: BTreeMap::new(), stats: BinningStats::default() }
    }

    pub fn all_period(&self) -> Option<Period> {
        self.all_period
    }

    /// The tiles a dataset touches in the grid (subset applied).
    pub fn tiles_of(&self, d: &Dataset) -> Result<Vec<TileIndex>> {
        let rings = project_rings(self.transform, &d.footprint, self.rules.grid.epsg)?;
        let mut tiles: BTreeSet<TileIndex> = BTreeSet::new();
        for r in &rings {
            tiles.extend(self.rules.grid.tiles_for_polygon(r));
        }
        if !self.rules.tiles.is_empty() {
            tiles.retain(|t| self.rules.tiles.contains(t));
        }
        Ok(tiles.into_iter().collect())
    }

    /// Where a dataset goes (pure: run it in parallel over a batch).
    pub fn place(&self, d: &Dataset) -> Result<Placement> {
        let day = solar_day(d.datetime, d.longitude());
        let periods = temporal_bins(self.rules.frequency, day, self.rules.temporal_range, self.all_period);
        if periods.is_empty() {
            return Ok(Placement::OutsideRange);
        }
        let tiles = self.tiles_of(d)?;
        if tiles.is_empty() {
            return Ok(Placement::OutsideTiles);
        }
        Ok(Placement::Tasks {
            day,
            tasks: periods.iter().flat_map(|p| tiles.iter().map(|t| TaskId::new(*p, *t))).collect(),
        })
    }

    /// Record a placed dataset under `index`. Returns whether it went into any task.
    pub fn record(&mut self, index: usize, placement: &Placement) -> bool {
        self.stats.datasets_seen += 1;
        match placement {
            Placement::OutsideRange => self.stats.outside_range += 1,
            Placement::OutsideTiles => self.stats.outside_tiles += 1,
            Placement::Tasks { day, tasks } => {
                for id in tasks {
                    let bin = self.tasks.entry(*id).or_default();
                    bin.datasets.push(index);
                    bin.days.insert(*day);
                }
                return true;
            }
        }
        false
    }

    pub fn add(&mut self, index: usize, d: &Dataset) -> Result<()> {
        let p = self.place(d)?;
        self.record(index, &p);
        Ok(())
    }
}

/// The periods an observation on (local solar) `day` is binned into: none outside the run's
/// temporal range, else the frequency's periods (`all_period`: the range, or for `all`
/// without one, the data's span).
pub fn temporal_bins(
    frequency: Frequency,
    day: NaiveDate,
    temporal_range: Option<Period>,
    all_period: Option<Period>,
) -> Vec<Period> {
    if temporal_range.is_some_and(|r| !r.contains(day)) {
        return vec![];
    }
    frequency.periods_for(day, all_period)
}

/// Where one dataset goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    OutsideRange,
    OutsideTiles,
    /// Its local solar day, and every task (period x tile) it belongs to.
    Tasks {
        day: NaiveDate,
        tasks: Vec<TaskId>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::BandAsset;
    use chrono::{TimeZone, Utc};

    /// Identity "projection" for tests: treats lon/lat as grid coordinates.
    struct Identity;
    impl CrsTransform for Identity {
        fn transform(&self, _f: u32, _t: u32, _p: &mut [(f64, f64)]) -> Result<()> {
            Ok(())
        }
    }

    fn ds(id: &str, x0: f64, x1: f64, t: chrono::DateTime<Utc>) -> Dataset {
        Dataset {
            id: id.into(),
            collection: "c".into(),
            datetime: t,
            footprint: vec![vec![(x0, 0.5), (x1, 0.5), (x1, 1.5), (x0, 1.5), (x0, 0.5)]],
            epsg: 1,
            region_code: None,
            processing_baseline: None,
            assets: vec![BandAsset {
                key: "b".into(),
                names: vec![],
                href: "h".into(),
                epsg: None,
                transform: None,
                shape: None,
                nodata: None,
                data_type: None,
                scale: None,
                offset: None,
            }],
            sources: vec![],
            inherited: Default::default(),
        }
    }

    #[test]
    fn bins_by_tile_and_period() {
        let rules = BinningRules {
            grid: GridSpec::parse("epsg:1;1;1").unwrap(),
            frequency: Frequency::Annual,
            temporal_range: None,
            tiles: BTreeSet::new(),
        };
        let mut b = Binner::new(&rules, &Identity, None);
        let t1 = Utc.with_ymd_and_hms(2020, 6, 1, 10, 0, 0).unwrap();
        let t2 = Utc.with_ymd_and_hms(2021, 6, 1, 10, 0, 0).unwrap();
        b.add(0, &ds("a", 0.5, 1.5, t1)).unwrap(); // tiles (0,0),(1,0),(0,1),(1,1)
        b.add(1, &ds("b", 1.2, 1.8, t1)).unwrap(); // tiles (1,0),(1,1)
        b.add(2, &ds("c", 1.2, 1.8, t2)).unwrap();
        assert_eq!(b.tasks.len(), 4 + 2);
        let id: TaskId = "x+001/y+000/2020--P1Y".parse().unwrap();
        assert_eq!(b.tasks[&id].datasets, vec![0, 1]);
        assert_eq!(b.tasks[&id].days.len(), 1);
    }

    #[test]
    fn range_and_tile_subset() {
        let mut tiles = BTreeSet::new();
        tiles.insert(TileIndex::new(1, 1));
        let rules = BinningRules {
            grid: GridSpec::parse("epsg:1;1;1").unwrap(),
            frequency: Frequency::Annual,
            temporal_range: Some("2020--P1Y".parse().unwrap()),
            tiles,
        };
        let mut b = Binner::new(&rules, &Identity, None);
        b.add(0, &ds("a", 0.5, 1.5, Utc.with_ymd_and_hms(2020, 6, 1, 0, 0, 0).unwrap())).unwrap();
        b.add(1, &ds("b", 0.5, 1.5, Utc.with_ymd_and_hms(2021, 6, 1, 0, 0, 0).unwrap())).unwrap();
        b.add(2, &ds("c", 5.5, 6.5, Utc.with_ymd_and_hms(2020, 6, 1, 0, 0, 0).unwrap())).unwrap();
        assert_eq!(b.tasks.len(), 1);
        assert_eq!(b.stats, BinningStats { datasets_seen: 3, outside_range: 1, outside_tiles: 1 });
    }
}
