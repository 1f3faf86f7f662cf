//! Blob store on a local directory. Writes go to a hidden temporary file in the same
//! directory and are renamed into place, so an object is whole or absent.

use crate::blob::{check_key, BlobStore, ObjectMeta};
use crate::error::{PortError, Result};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PortError + '_ {
    move |source| PortError::Io { path: path.display().to_string(), source }
}

impl LocalBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root: PathBuf = root.into();
        fs::create_dir_all(&root).map_err(io(&root))?;
        let root = root.canonicalize().map_err(io(&root))?;
        Ok(Self { root })
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
    fn write_atomic(&self, key: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let dest = self.path(key)?;
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = tempfile::Builder::new().prefix(PARTIAL_PREFIX).tempfile_in(&dir).map_err(io(&dir))?;
        write(tmp.path())?;
        tmp.as_file().sync_all().map_err(io(tmp.path()))?;
        tmp.persist(&dest).map_err(|e| PortError::Io { path: dest.display().to_string(), source: e.error })?;
        Ok(())
    }
}

/// Objects being written are `.stratus-partial-*` files until renamed into place.
const PARTIAL_PREFIX: &str = ".stratus-partial-";

impl BlobStore for LocalBlobStore {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.write_atomic(key, |p| {
            let mut f = fs::OpenOptions::new().write(true).open(p).map_err(io(p))?;
            f.write_all(data).map_err(io(p))
        })
    }
    fn put_file(&self, key: &str, src: &Path) -> Result<()> {
        self.write_atomic(key, |p| fs::copy(src, p).map(|_| ()).map_err(io(src)))
    }
    fn discard_partials(&self, dir: &str) -> Result<usize> {
        let dir = self.path(dir)?;
        let Ok(entries) = fs::read_dir(&dir) else { return Ok(0) };
        let mut removed = 0;
        for e in entries.flatten() {
            let partial = e.file_name().to_str().is_some_and(|n| n.starts_with(PARTIAL_PREFIX));
            if partial && fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let p = self.path(key)?;
        fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                PortError::NotFound(key.into())
            } else {
                io(&p)(e)
            }
        })
    }
    fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>> {
        let p = self.path(key)?;
        let mut f = fs::File::open(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                PortError::NotFound(key.into())
            } else {
                io(&p)(e)
            }
        })?;
        f.seek(SeekFrom::Start(start)).map_err(io(&p))?;
        let mut buf = Vec::with_capacity(len as usize);
        f.take(len).read_to_end(&mut buf).map_err(io(&p))?;
        Ok(buf)
    }
    fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let p = self.path(key)?;
        match fs::metadata(&p) {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta { key: key.to_string(), size: m.len() })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&dir)(e)),
            };
            for entry in rd {
                let entry = entry.map_err(io(&dir))?;
                let path = entry.path();
                let rel = path.strip_prefix(&self.root).unwrap().to_string_lossy().replace('\\', "/");
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with(".stratus-partial-") {
                    continue;
                }
                if entry.file_type().map_err(io(&path))?.is_dir() {
                    // Only descend where the prefix can still match.
                    let d = format!("{rel}/");
                    if d.starts_with(prefix) || prefix.starts_with(&d) {
                        stack.push(path);
                    }
                } else if rel.starts_with(prefix) {
                    out.push(rel);
                }
            }
        }
        out.sort();
        Ok(out)
    }
    fn delete(&self, key: &str) -> Result<()> {
        let p = self.path(key)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&p)(e)),
            _ => Ok(()),
        }
    }
    fn url(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
    fn gdal_path(&self, key: &str) -> String {
        self.url(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_range_head_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalBlobStore::new(dir.path()).unwrap();
        s.put("a/b/c.txt", b"hello world").unwrap();
        s.put("a/d.txt", b"x").unwrap();
        s.put("z.txt", b"z").unwrap();
        assert_eq!(s.get("a/b/c.txt").unwrap(), b"hello world");
        assert_eq!(s.get_range("a/b/c.txt", 6, 5).unwrap(), b"world");
        assert_eq!(s.head("a/b/c.txt").unwrap().unwrap().size, 11);
        assert!(s.head("nope").unwrap().is_none());
        assert_eq!(s.list("a/").unwrap(), vec!["a/b/c.txt", "a/d.txt"]);
        assert_eq!(s.list("").unwrap().len(), 3);
        s.delete("a/d.txt").unwrap();
        assert_eq!(s.list("a/").unwrap(), vec!["a/b/c.txt"]);
        assert!(matches!(s.get("a/d.txt"), Err(PortError::NotFound(_))));
        for bad in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(s.put(bad, b"x").is_err(), "{bad}");
        }
    }

    #[test]
    fn no_partial_files_left_visible() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalBlobStore::new(dir.path()).unwrap();
        let missing = dir.path().join("does-not-exist");
        assert!(s.put_file("k.tif", &missing).is_err());
        assert!(s.head("k.tif").unwrap().is_none());
        assert!(s.list("").unwrap().is_empty());
    }
}
