//! The plan's dataset documents, spooled to a temporary file as they stream in, so that
//! planning a million items holds only their offsets in memory. Documents are stored
//! zstd-compressed (about a quarter of their size), as the embedded ledger keeps them.

use crate::error::{EngineError, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use stratus_ports::{compress_doc, decompress_doc, DatasetDocs, PortError};

pub struct DatasetSpool {
    writer: BufWriter<File>,
    /// (offset, length) of each document.
    spans: Vec<(u64, u32)>,
    end: u64,
}

fn io_err(e: std::io::Error) -> EngineError {
    EngineError::Io { path: "the plan's dataset spool (a temporary file: check TMPDIR's free space)".into(), source: e }
}

impl DatasetSpool {
    /// A spool in the system's temporary directory (`TMPDIR`); the file is already
    /// unlinked, so it disappears with the process.
    pub fn new() -> Result<DatasetSpool> {
        let file = tempfile::tempfile().map_err(io_err)?;
        Ok(DatasetSpool { writer: BufWriter::with_capacity(4 << 20, file), spans: Vec::new(), end: 0 })
    }

    /// Compress a document for [`push_compressed`](Self::push_compressed) (call it in parallel).
    pub fn compress(doc: &str) -> Result<Vec<u8>> {
        Ok(compress_doc(doc)?)
    }

    /// Append one document; returns its index.
    pub fn push(&mut self, doc: &str) -> Result<u32> {
        self.push_compressed(&Self::compress(doc)?)
    }

    /// Append one document compressed by [`compress`](Self::compress); returns its index.
    pub fn push_compressed(&mut self, doc: &[u8]) -> Result<u32> {
        let index = u32::try_from(self.spans.len())
            .map_err(|_| EngineError::Config("more than 4 294 967 295 datasets in one plan".into()))?;
        self.writer.write_all(doc).map_err(io_err)?;
        self.spans.push((self.end, doc.len() as u32));
        self.end += doc.len() as u64;
        Ok(index)
    }

    /// Make every pushed document readable.
    pub fn flush(&mut self) -> Result<()> {
        self.writer.flush().map_err(io_err)
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes spooled so far (compressed).
    pub fn bytes(&self) -> u64 {
        self.end
    }

    /// Document `index` (call [`flush`](Self::flush) after pushing).
    pub fn get(&self, index: u32) -> Result<String> {
        Ok(decompress_doc(&self.get_compressed(index)?)?)
    }

    /// Document `index`, compressed.
    pub fn get_compressed(&self, index: u32) -> Result<Vec<u8>> {
        let &(offset, len) = self
            .spans
            .get(index as usize)
            .ok_or_else(|| EngineError::Config(format!("no dataset document {index} in the spool")))?;
        let mut buf = vec![0u8; len as usize];
        self.writer.get_ref().read_exact_at(&mut buf, offset).map_err(io_err)?;
        Ok(buf)
    }
}

/// A selection of a spool's documents, renumbered 0.. (the plan's datasets in order).
pub struct SpoolView<'a> {
    pub spool: &'a DatasetSpool,
    pub order: &'a [u32],
}

impl SpoolView<'_> {
    fn at(&self, index: u32) -> stratus_ports::error::Result<u32> {
        self.order
            .get(index as usize)
            .copied()
            .ok_or_else(|| PortError::Other(format!("no dataset document {index} in the plan")))
    }
}

impl DatasetDocs for SpoolView<'_> {
    fn count(&self) -> usize {
        self.order.len()
    }
    fn doc(&self, index: u32) -> stratus_ports::error::Result<String> {
        self.spool.get(self.at(index)?).map_err(|e| PortError::Other(e.to_string()))
    }
    fn doc_zstd(&self, index: u32) -> stratus_ports::error::Result<Vec<u8>> {
        self.spool.get_compressed(self.at(index)?).map_err(|e| PortError::Other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_documents_by_index() {
        let mut s = DatasetSpool::new().unwrap();
        assert_eq!(s.push("{\"a\":1}").unwrap(), 0);
        assert_eq!(s.push("{\"b\":\"é\"}").unwrap(), 1);
        s.flush().unwrap();
        assert_eq!(s.get(1).unwrap(), "{\"b\":\"é\"}");
        assert_eq!(s.get(0).unwrap(), "{\"a\":1}");
        assert!(s.get(2).is_err());
        let order = [1, 0];
        let view = SpoolView { spool: &s, order: &order };
        assert_eq!(view.count(), 2);
        assert_eq!(view.doc(0).unwrap(), "{\"b\":\"é\"}");
        assert!(view.doc(2).is_err());
    }
}
