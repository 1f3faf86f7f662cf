//! Tile scratch directories (`stratus-tile-*` in TMPDIR), and reclaiming those a killed
//! worker left behind. Each holds a lock file that its process keeps locked (`flock`)
//! while the tile runs; the kernel releases the lock when the process dies, however it
//! dies, so a directory whose lock can be taken has no live owner. (A pid would not do: a
//! Lambda sandbox restarts its runtime with the same small pids.)

use crate::error::{EngineError, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PREFIX: &str = "stratus-tile-";
const LOCK: &str = ".owner.lock";

/// A tile's scratch directory, removed when dropped.
pub struct Scratch {
    dir: tempfile::TempDir,
    _lock: File,
}

impl Scratch {
    /// A new scratch directory in TMPDIR, locked by this process.
    pub fn new() -> Result<Scratch> {
        let io = |source| EngineError::Io { path: "temporary directory".into(), source };
        let dir = tempfile::Builder::new().prefix(PREFIX).tempdir().map_err(io)?;
        let lock = File::create(dir.path().join(LOCK)).map_err(io)?;
        lock.try_lock().map_err(|e| io(std::io::Error::other(e.to_string())))?;
        Ok(Scratch { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Remove the scratch directories in `root` whose owner is gone: their lock can be taken,
/// or (made before locks, or killed before locking) they have none and are over an hour
/// old. Returns how many were removed.
pub fn reclaim_abandoned(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let path = e.path();
        let named = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(PREFIX));
        if !named || !path.is_dir() {
            continue;
        }
        if abandoned(&path) && std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn abandoned(dir: &Path) -> bool {
    match File::open(dir.join(LOCK)) {
        // Taken: nobody holds it. Dropping the file releases it again.
        Ok(f) => f.try_lock().is_ok(),
        Err(_) => {
            let age = std::fs::metadata(dir).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            age.is_some_and(|a| a > Duration::from_secs(3600))
        }
    }
}

/// Reclaim TMPDIR's abandoned tile scratch once per process (a worker's first tile).
pub fn reclaim_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let root: PathBuf = std::env::temp_dir();
        let n = reclaim_abandoned(&root);
        if n > 0 {
            tracing::info!(removed = n, dir = %root.display(), "removed scratch directories left by killed workers");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_owners_scratch_is_reclaimed_and_a_live_one_is_not() {
        let root = tempfile::tempdir().unwrap();
        // A live one: locked by an open file of this process.
        let live = root.path().join(format!("{PREFIX}live"));
        std::fs::create_dir(&live).unwrap();
        let lock = File::create(live.join(LOCK)).unwrap();
        lock.try_lock().unwrap();
        // A dead one: its lock file exists, nobody holds it (its process is gone).
        let dead = root.path().join(format!("{PREFIX}dead"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        std::fs::write(dead.join("B04.tif"), vec![0u8; 1024]).unwrap();
        // Not ours.
        let other = root.path().join("something-else");
        std::fs::create_dir(&other).unwrap();
        assert_eq!(reclaim_abandoned(root.path()), 1);
        assert!(live.exists() && !dead.exists() && other.exists());
        drop(lock);
        assert_eq!(reclaim_abandoned(root.path()), 1, "released when its owner goes");
    }
}
