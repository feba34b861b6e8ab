//! The files of one finish upload: held in memory while the upload is
//! small, else in a private temporary directory.
//!
//! A typical finish carries a result and a few KB of logs. Kept in memory,
//! such an upload costs no directory, no file writes, no listing, no reads
//! and no deletions: the logs go from the request body straight to the
//! compressor. Past [`IN_MEMORY_LIMIT`] bytes (or for one part past it) the
//! files move to disk, so no upload has to fit in memory.

use crate::storage::logs::LogSource;
use std::io;
use std::path::Path;

/// File bytes one upload may hold in memory. Bounded per upload so 256
/// concurrent finishes hold at most 16 MiB of files (plus, each, the part
/// being read, which is gathered up to this size before it is kept).
pub const IN_MEMORY_LIMIT: usize = 64 << 10;

/// Where the files are.
#[derive(Debug)]
enum Held {
    /// Distinct names in order of first upload, each with its last content
    /// (a later part of the same name replaces the file, as on disk).
    Memory {
        files: Vec<(String, Vec<u8>)>,
        bytes: usize,
    },
    Disk(tempfile::TempDir),
}

#[derive(Debug)]
pub struct UploadFiles(Held);

impl Default for UploadFiles {
    fn default() -> Self {
        UploadFiles(Held::Memory {
            files: Vec::new(),
            bytes: 0,
        })
    }
}

impl UploadFiles {
    /// The files already in `dir` (a directory the upload owns).
    pub fn on_disk(dir: tempfile::TempDir) -> Self {
        UploadFiles(Held::Disk(dir))
    }

    pub fn in_memory(&self) -> bool {
        matches!(self.0, Held::Memory { .. })
    }

    /// Store a whole part as file `name` (a plain name, checked by the
    /// caller), replacing any earlier one. Moves the files to disk first
    /// when this part would take the upload past [`IN_MEMORY_LIMIT`].
    pub fn put(&mut self, name: &str, data: Vec<u8>) -> io::Result<()> {
        if let Held::Memory { files, bytes } = &mut self.0 {
            let replaced = files.iter().position(|(n, _)| n == name);
            let old = replaced.map_or(0, |i| files[i].1.len());
            if *bytes - old + data.len() <= IN_MEMORY_LIMIT {
                *bytes = *bytes - old + data.len();
                match replaced {
                    Some(i) => files[i].1 = data,
                    None => files.push((name.to_string(), data)),
                }
                return Ok(());
            }
        }
        // One write: cheaper inline than a hand-off to the blocking pool.
        std::fs::write(self.dir()?.join(name), data)
    }

    /// The directory holding the files, moving them there first if they
    /// are in memory (for a part too big to hold, and for artifacts, which
    /// the stores read from files).
    pub fn dir(&mut self) -> io::Result<&Path> {
        if let Held::Memory { files, .. } = &mut self.0 {
            let dir = tempfile::Builder::new().prefix("janitor-run").tempdir()?;
            for (name, data) in std::mem::take(files) {
                std::fs::write(dir.path().join(name), data)?;
            }
            self.0 = Held::Disk(dir);
        }
        match &self.0 {
            Held::Disk(dir) => Ok(dir.path()),
            Held::Memory { .. } => unreachable!("moved to disk above"),
        }
    }

    /// Names of the regular files: upload order in memory, listing order
    /// on disk (goldens compare the log list as a set, FORMAT.md §3).
    pub fn names(&self) -> io::Result<Vec<String>> {
        match &self.0 {
            Held::Memory { files, .. } => Ok(files.iter().map(|(n, _)| n.clone()).collect()),
            Held::Disk(dir) => {
                let mut out = Vec::new();
                for entry in std::fs::read_dir(dir.path())? {
                    let entry = entry?;
                    if !entry.file_type()?.is_file() {
                        continue;
                    }
                    if let Some(name) = entry.file_name().to_str() {
                        out.push(name.to_string());
                    }
                }
                Ok(out)
            }
        }
    }

    /// The bytes of file `name` held in memory.
    fn held<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> io::Result<&'a [u8]> {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, data)| data.as_slice())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    /// The content of file `name`, or `None` when it is bigger than `max`.
    pub fn read_at_most(&self, name: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        match &self.0 {
            Held::Memory { files, .. } => {
                let data = Self::held(files, name)?;
                Ok((data.len() as u64 <= max).then(|| data.to_vec()))
            }
            Held::Disk(dir) => {
                let path = dir.path().join(name);
                if std::fs::metadata(&path)?.len() > max {
                    return Ok(None);
                }
                std::fs::read(path).map(Some)
            }
        }
    }

    /// File `name` as a log store reads it.
    pub fn source(&self, name: &str) -> io::Result<LogSource<'_>> {
        match &self.0 {
            Held::Memory { files, .. } => Self::held(files, name).map(LogSource::bytes),
            Held::Disk(dir) => Ok(LogSource::owned_path(dir.path().join(name))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_uploads_stay_in_memory_and_a_later_part_replaces_an_earlier_one() {
        let mut f = UploadFiles::default();
        f.put("a.log", b"one".to_vec()).unwrap();
        f.put("b.log", b"two".to_vec()).unwrap();
        f.put("a.log", b"three".to_vec()).unwrap();
        assert!(f.in_memory());
        assert_eq!(f.names().unwrap(), ["a.log", "b.log"]);
        assert_eq!(
            f.read_at_most("a.log", 10).unwrap().as_deref(),
            Some(&b"three"[..])
        );
        assert_eq!(f.read_at_most("a.log", 4).unwrap(), None);
        assert!(f.read_at_most("c.log", 10).is_err());
    }

    #[test]
    fn passing_the_limit_moves_every_file_to_disk() {
        let mut f = UploadFiles::default();
        f.put("a.log", vec![b'a'; IN_MEMORY_LIMIT - 10]).unwrap();
        // Replacing a file frees its bytes: still within the limit.
        f.put("a.log", vec![b'b'; IN_MEMORY_LIMIT - 10]).unwrap();
        assert!(f.in_memory());
        f.put("c.log", vec![b'c'; 11]).unwrap();
        assert!(!f.in_memory());
        let dir = f.dir().unwrap().to_path_buf();
        assert_eq!(
            std::fs::read(dir.join("a.log")).unwrap(),
            vec![b'b'; IN_MEMORY_LIMIT - 10]
        );
        assert_eq!(std::fs::read(dir.join("c.log")).unwrap(), b"ccccccccccc");
        let mut names = f.names().unwrap();
        names.sort();
        assert_eq!(names, ["a.log", "c.log"]);
        // The directory goes with the upload.
        drop(f);
        assert!(!dir.exists());
    }
}
