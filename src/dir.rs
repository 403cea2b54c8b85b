//! The data directory: its lock and its layout version.
//!
//! ```text
//! <dir>/LOCK            advisory lock (flock) held while open; says "pid=<pid>"
//! <dir>/OMENDB_LAYOUT   "omendb-layout <version>\n", written once at creation
//! <dir>/rows/wal.log    the row store's write-ahead log
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::options::LAYOUT_VERSION;

const LOCK_FILE: &str = "LOCK";
const LAYOUT_FILE: &str = "OMENDB_LAYOUT";
const ROWS_DIR: &str = "rows";

/// Holds the directory's lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// Creates the directory if needed, takes its lock, checks its layout.
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
                Some(v) => {
                    return Err(Error::Unsupported(format!(
                        "{} has data layout version {v}; this build reads version {LAYOUT_VERSION}",
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

/// Writes the layout file, once, made durable with its directory entry.
fn write_layout(dir: &Path) -> Result<()> {
    let tmp = dir.join(format!("{LAYOUT_FILE}.tmp"));
    let mut f = File::create(&tmp)?;
    writeln!(f, "omendb-layout {LAYOUT_VERSION}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(LAYOUT_FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Makes `dir` a data directory for a backup: created if missing, refused
/// unless empty (a backup never writes over files). Returns where the row
/// store's copy goes.
pub(crate) fn create_backup(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    if std::fs::read_dir(dir)?.next().is_some() {
        return Err(Error::Unsupported(format!("a backup into {}, which is not empty", dir.display())));
    }
    write_layout(dir)?;
    Ok(dir.join(ROWS_DIR))
}
