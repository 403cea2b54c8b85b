//! # omen-files
//!
//! The few file-system steps OmenDB's stores take to make a small file
//! durable and replace it atomically, in one place: the row store's and
//! the column store's manifests and the database's layout file use them.
//! They follow what the crash-consistency studies teach (ALICE, OSDI
//! 2014): nothing is ordered without an fsync, and a file created, renamed
//! or removed persists only once its directory is synced.
//!
//! [`codec`] is the byte codec every binary format of OmenDB is written
//! and read with (the row and column stores' manifests, the column store's
//! delete files, the learned index's serialized form, the log's and runs'
//! integers): little-endian integers, varints, and a frame of magic,
//! body and CRC32C. The two modules use nothing of each other.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! omen_files::replace(dir.path(), "STATE", b"v1")?;
//! omen_files::replace(dir.path(), "STATE", b"v2")?;
//! assert_eq!(omen_files::read(dir.path(), "STATE")?, Some(b"v2".to_vec()));
//! assert_eq!(omen_files::read(dir.path(), "MISSING")?, None);
//! # Ok::<(), std::io::Error>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod codec;

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Result, Write};
use std::path::{Path, PathBuf};

/// fsyncs a directory, so a file created, renamed or removed in it persists.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()
}

/// The temp file [`replace`] writes `name` through.
fn temp(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.tmp"))
}

/// Replaces `dir/name` with `bytes`, atomically and durably: written to
/// `name.tmp`, synced, renamed over `name`, and the directory synced. A
/// crash leaves the old file or the new one, never a mix.
pub fn replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let temp = temp(dir, name);
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, dir.join(name))?;
    sync_dir(dir)
}

/// Reads `dir/name`; `None` if it does not exist. Removes the temp file a
/// crash in [`replace`] may have left.
pub fn read(dir: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    match std::fs::remove_file(temp(dir, name)) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    match std::fs::read(dir.join(name)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        replace(dir.path(), "M", b"old").unwrap();
        // What a crash after writing the temp file, before the rename, leaves.
        std::fs::write(temp(dir.path(), "M"), b"half").unwrap();
        assert_eq!(read(dir.path(), "M").unwrap(), Some(b"old".to_vec()));
        assert!(!temp(dir.path(), "M").exists(), "the temp file is removed");
    }
}
