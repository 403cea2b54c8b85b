//! The data directory: its lock and its layout version.
//!
//! ```text
//! <dir>/LOCK            advisory lock (flock) held while open; says "pid=<pid>"
//! <dir>/OMENDB_LAYOUT   "omendb-layout <version>\n", written at creation (and upgrade)
//! <dir>/rows/           the row store: log segments wal-*.log, MANIFEST, run-*.omr
//! ```
//!
//! Version 1 (before checkpoints) kept the row store's log in one file,
//! `rows/wal.log`. This build reads it as the log's first segment and
//! marks the directory version 2 before it opens the row store, which may
//! at once write segments and checkpoints (and remove `wal.log`) that a
//! version-1 build would not read: such a build then refuses the directory
//! instead of opening it empty.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::options::LAYOUT_VERSION;
use crate::{Error, Result};

const LOCK_FILE: &str = "LOCK";
const LAYOUT_FILE: &str = "OMENDB_LAYOUT";
const ROWS_DIR: &str = "rows";
/// The column store's files, beside the row store's: derived from them (a
/// backup leaves them out; sync rebuilds them).
pub(crate) const COLUMNS_DIR: &str = "columns";

/// Holds the directory's lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// Creates the directory if needed, takes its lock, checks its layout
/// (upgrading version 1). Returns the lock and the row store's directory.
pub(crate) fn open(dir: &Path, layout_version: u32) -> Result<(DirLock, PathBuf)> {
    if layout_version != LAYOUT_VERSION {
        return Err(Error::Unsupported(format!(
            "data layout version {layout_version} (this build reads and writes version {LAYOUT_VERSION})"
        )));
    }
    std::fs::create_dir_all(dir)?;
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(dir.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = if holder.trim().is_empty() { "another handle".to_owned() } else { holder.trim().to_owned() };
            return Err(Error::Locked { dir: dir.to_path_buf(), holder });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "pid={}", std::process::id())?;

    let layout = dir.join(LAYOUT_FILE);
    match std::fs::read_to_string(&layout) {
        Ok(text) => {
            let version = text.strip_prefix("omendb-layout ").and_then(|v| v.trim().parse::<u32>().ok());
            match version {
                Some(LAYOUT_VERSION) => {}
                Some(1) => write_layout(dir)?,
                Some(v) => {
                    return Err(Error::Unsupported(format!(
                        "{} has data layout version {v}; this build reads versions 1 and {LAYOUT_VERSION}",
                        dir.display()
                    )));
                }
                None => return Err(Error::Corruption(format!("{}: unreadable layout file", layout.display()))),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_layout(dir)?,
        Err(e) => return Err(e.into()),
    }
    Ok((DirLock { _file: file }, dir.join(ROWS_DIR)))
}

/// Writes the layout file (replacing it atomically), made durable with its directory entry.
fn write_layout(dir: &Path) -> Result<()> {
    Ok(omen_files::replace(dir, LAYOUT_FILE, format!("omendb-layout {LAYOUT_VERSION}\n").as_bytes())?)
}

/// Makes a backup into `dir`, which must be missing or empty (a backup
/// never writes over files): `copy_rows` fills the row store's part of a
/// data directory. A missing `dir` is built beside it under a unique name
/// and renamed into place, with every directory entry fsynced, so a failed
/// or interrupted backup leaves no `dir` that would open as a database.
/// An existing empty `dir` (a mount point, a directory the caller owns in
/// a parent it cannot write) is filled in place, its layout file last; a
/// failure empties it again, but a killed process can leave it partial.
pub(crate) fn backup(dir: &Path, copy_rows: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if dir.exists() {
        if std::fs::read_dir(dir)?.next().is_some() {
            return Err(Error::Unsupported(format!("a backup into {}, which is not empty", dir.display())));
        }
        let filled = fill(dir, copy_rows);
        if filled.is_err() {
            for entry in std::fs::read_dir(dir)?.flatten() {
                let _ = std::fs::remove_dir_all(entry.path()).or_else(|_| std::fs::remove_file(entry.path()));
            }
        }
        return filled;
    }
    let name = dir.file_name().ok_or_else(|| Error::Unsupported(format!("a backup into {}", dir.display())))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    static BACKUPS: AtomicU64 = AtomicU64::new(0);
    let unique = format!("{}-{}", std::process::id(), BACKUPS.fetch_add(1, Ordering::Relaxed));
    let partial = parent.join(format!("{}.omendb-partial-{unique}", name.to_string_lossy()));
    std::fs::create_dir(&partial)?;
    let built = fill(&partial, copy_rows).and_then(|()| {
        // Only onto a missing directory: rename(2) would also replace an
        // empty one made meanwhile, which a caller may be filling.
        if dir.exists() {
            return Err(Error::Unsupported(format!("a backup into {}, which appeared meanwhile", dir.display())));
        }
        std::fs::rename(&partial, dir)?;
        omen_files::sync_dir(&parent)?;
        Ok(())
    });
    if built.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    built
}

/// Fills the empty directory `dir` as a data directory: the row store's
/// part first, the layout file last, all fsynced.
fn fill(dir: &Path, copy_rows: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let rows = dir.join(ROWS_DIR);
    std::fs::create_dir(&rows)?;
    copy_rows(&rows)?;
    omen_files::sync_dir(&rows)?;
    write_layout(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_backup_leaves_no_directory() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("copy");
        let failed = backup(&target, |rows| {
            std::fs::write(rows.join("wal.log"), b"half")?;
            Err(Error::Unsupported("the copy failed".into()))
        });
        assert!(matches!(failed, Err(Error::Unsupported(m)) if m.contains("copy failed")));
        assert!(!target.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the partial directory is gone");
        backup(&target, |rows| Ok(std::fs::write(rows.join("wal.log"), b"whole")?)).unwrap();
        assert_eq!(std::fs::read(target.join("rows/wal.log")).unwrap(), b"whole");
        assert!(target.join("OMENDB_LAYOUT").exists());
        // An existing empty directory is filled in place, and emptied again
        // if the copy fails.
        let empty = dir.path().join("mounted");
        std::fs::create_dir(&empty).unwrap();
        assert!(backup(&empty, |_| Err(Error::Unsupported("the copy failed".into()))).is_err());
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
        backup(&empty, |rows| Ok(std::fs::write(rows.join("wal.log"), b"in place")?)).unwrap();
        assert_eq!(std::fs::read(empty.join("rows/wal.log")).unwrap(), b"in place");
    }
}
