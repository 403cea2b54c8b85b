//! How the log's bytes reach its segment files: the I/O backends.
//!
//! Two run the log, chosen at open ([`IoBackend`]): plain pwrite(2) +
//! fdatasync(2), the default, and io_uring, which links a group's write and
//! its fdatasync into one submission. `Auto` takes io_uring where it can be
//! set up and falls back to plain otherwise (an old kernel, a seccomp
//! filter), saying so in a `log` warning. Tests add a third that can lose
//! unsynced writes and fail on demand (`faulty`).
//!
//! Plain is the default because it measured faster: durable single-row
//! inserts through the server (`SUITE=commits scripts/pgbench-compare.sh 1
//! 15`, 2 cores, 2026-12-01) ran 3,047 / 10,816 / 17,744 TPS with 1 / 8 / 64
//! clients on plain and 2,787 / 10,214 / 16,572 on io_uring. The fdatasync
//! is the cost; saving one system call per group does not show.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Which I/O backend the log uses (see `docs/ARCHITECTURE.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IoBackend {
    /// pwrite(2) and fdatasync(2): measured the faster of the two here.
    #[default]
    Plain,
    /// io_uring where the kernel allows it, else plain (with a warning).
    Auto,
    /// io_uring; opening fails if it cannot be set up.
    IoUring,
}

/// One open segment: writes at offsets, and syncs.
pub(crate) trait SegmentFile: Send + Sync {
    /// Writes all of `buf` at offset `at`.
    fn write_at(&self, buf: &[u8], at: u64) -> io::Result<()>;
    /// fdatasync: everything written so far reaches stable storage.
    fn sync(&self) -> io::Result<()>;
    /// [`SegmentFile::write_at`] then [`SegmentFile::sync`]; one submission under io_uring.
    fn write_and_sync(&self, buf: &[u8], at: u64) -> io::Result<()> {
        self.write_at(buf, at)?;
        self.sync()
    }
}

/// A backend: wraps each segment file the log opens.
pub(crate) trait LogIo: Send + Sync {
    /// The backend's name, for logs and status lines.
    fn name(&self) -> &'static str;
    /// The segment `file` (opened for reading and writing, `len` bytes of
    /// header and records; a preallocated file is longer) behind this backend.
    fn segment(&self, file: File, len: u64) -> io::Result<Arc<dyn SegmentFile>>;
}

/// The backend `choice` asks for; `Auto` falls back to plain with a warning.
pub(crate) fn backend(choice: IoBackend) -> io::Result<Arc<dyn LogIo>> {
    match choice {
        IoBackend::Plain => Ok(Arc::new(Plain)),
        IoBackend::IoUring => Ok(Arc::new(super::uring::Uring::new()?)),
        IoBackend::Auto => match super::uring::Uring::new() {
            Ok(uring) => Ok(Arc::new(uring)),
            Err(e) => {
                log::warn!("io_uring is unavailable ({e}); the write-ahead log uses pwrite and fdatasync");
                Ok(Arc::new(Plain))
            }
        },
    }
}

/// pwrite(2) and fdatasync(2).
pub(crate) struct Plain;

impl LogIo for Plain {
    fn name(&self) -> &'static str {
        "pwrite+fdatasync"
    }

    fn segment(&self, file: File, _len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(Arc::new(PlainSegment(file)))
    }
}

struct PlainSegment(File);

impl SegmentFile for PlainSegment {
    fn write_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        self.0.write_all_at(buf, at)
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

/// A backend for tests: plain I/O that remembers how much of each segment
/// was synced, so a test can throw away the rest as a power cut would
/// ([`Faulty::crash`]), and that fails writes or syncs on demand.
#[cfg(test)]
pub(crate) mod faulty {
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    use parking_lot::Mutex;

    use super::{LogIo, SegmentFile};

    /// Shared by every segment of one log.
    #[derive(Default)]
    pub(crate) struct Faulty {
        crashed: AtomicBool,
        /// Operations (writes and syncs) to let through before failing; `usize::MAX`: never fail.
        fail_after: AtomicUsize,
        /// Whether failing goes on after the first failure.
        fail_forever: AtomicBool,
        segments: Mutex<Vec<Arc<Segment>>>,
    }

    struct Segment {
        file: File,
        written: AtomicU64,
        synced: AtomicU64,
        /// A sync failed: what it did not cover is lost for good, as the
        /// kernel may drop dirty pages after a failed fsync (later syncs
        /// "succeed" without them).
        lost: AtomicBool,
        owner: Arc<Faulty>,
    }

    impl Faulty {
        pub(crate) fn new() -> Arc<Self> {
            Arc::new(Self { fail_after: AtomicUsize::new(usize::MAX), ..Self::default() })
        }

        /// From now on every write and sync does nothing (the machine is
        /// off); [`Faulty::lose_unsynced`] then cuts each segment back to
        /// what its last sync covered.
        pub(crate) fn crash(&self) {
            self.crashed.store(true, Ordering::SeqCst);
        }

        /// Loses every byte written after a segment's last sync: zeros
        /// where they were, as a cut leaves a preallocated file.
        pub(crate) fn lose_unsynced(&self) {
            for s in self.segments.lock().iter() {
                let (synced, written) = (s.synced.load(Ordering::SeqCst), s.written.load(Ordering::SeqCst));
                if written > synced {
                    let zeros = vec![0u8; (written - synced) as usize];
                    s.file.write_all_at(&zeros, synced).expect("zeroing a test segment's lost bytes");
                }
            }
        }

        /// Lets `ops` more writes or syncs through, then fails the next one
        /// (and, if `forever`, every one after it).
        pub(crate) fn fail_after(&self, ops: usize, forever: bool) {
            self.fail_forever.store(forever, Ordering::SeqCst);
            self.fail_after.store(ops, Ordering::SeqCst);
        }

        /// Whether this operation fails; `Ok(true)`: skip it (crashed).
        fn step(&self) -> io::Result<bool> {
            if self.crashed.load(Ordering::SeqCst) {
                return Ok(true);
            }
            let forever = self.fail_forever.load(Ordering::SeqCst);
            let before = self.fail_after.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                usize::MAX => None,
                0 if forever => None,
                0 => Some(usize::MAX),
                n => Some(n - 1),
            });
            match before {
                Err(0) | Ok(0) => Err(io::Error::other("injected I/O failure")),
                _ => Ok(false),
            }
        }
    }

    /// The backend over a shared [`Faulty`].
    pub(crate) struct FaultyIo(pub(crate) Arc<Faulty>);

    impl LogIo for FaultyIo {
        fn name(&self) -> &'static str {
            "faulty (tests)"
        }

        fn segment(&self, file: File, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
            let s = Arc::new(Segment {
                file,
                written: AtomicU64::new(len),
                synced: AtomicU64::new(len),
                lost: AtomicBool::new(false),
                owner: Arc::clone(&self.0),
            });
            self.0.segments.lock().push(Arc::clone(&s));
            Ok(s)
        }
    }

    impl SegmentFile for Segment {
        fn write_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
            if self.owner.step()? {
                return Ok(());
            }
            self.file.write_all_at(buf, at)?;
            self.written.fetch_max(at + buf.len() as u64, Ordering::SeqCst);
            Ok(())
        }

        fn sync(&self) -> io::Result<()> {
            match self.owner.step() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    self.lost.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
            let written = self.written.load(Ordering::SeqCst);
            self.file.sync_data()?;
            if !self.lost.load(Ordering::SeqCst) {
                self.synced.fetch_max(written, Ordering::SeqCst);
            }
            Ok(())
        }
    }
}
