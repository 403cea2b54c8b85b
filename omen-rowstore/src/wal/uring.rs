//! The io_uring backend: a group's write and its fdatasync go to the kernel
//! linked in one submission (`IOSQE_IO_LINK`: the sync starts only once the
//! write completed), so a group commit costs one system call instead of
//! two. Plain writes (the modes that write each record at once) stay
//! pwrite(2): they only reach the page cache, and sharing the ring with a
//! running sync would make them wait for it.
//!
//! Registered buffers are not used: a group's buffer is a fresh `Vec`, and
//! the sync, not the copy, is what a commit waits for.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use io_uring::{IoUring, opcode, squeue, types};
use parking_lot::Mutex;

use super::io::{LogIo, SegmentFile};

/// Entries in the ring: a submission holds at most two.
const RING_ENTRIES: u32 = 8;

/// One ring for the whole log; a segment borrows it for each submission.
pub(crate) struct Uring {
    ring: Arc<Mutex<IoUring>>,
}

impl Uring {
    /// Sets up a ring; fails where the kernel or a seccomp filter refuses.
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Self { ring: Arc::new(Mutex::new(IoUring::new(RING_ENTRIES)?)) })
    }
}

impl LogIo for Uring {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn segment(&self, file: File) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(Arc::new(UringSegment { file, ring: Arc::clone(&self.ring) }))
    }
}

struct UringSegment {
    file: File,
    ring: Arc<Mutex<IoUring>>,
}

impl UringSegment {
    /// Submits `entries` and waits for all of them; returns each one's
    /// result in submission order (negative: an errno).
    fn run(&self, entries: &[squeue::Entry]) -> io::Result<Vec<i32>> {
        let mut ring = self.ring.lock();
        {
            let mut sq = ring.submission();
            for e in entries {
                // SAFETY: every entry points at a buffer the caller borrows
                // for the whole call, and this function waits below for all
                // of its completions before returning, so the kernel never
                // touches a buffer after it is released. The ring is held
                // by the lock throughout, so no other submission interleaves.
                #[allow(unsafe_code)]
                unsafe { sq.push(e) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
            }
        }
        ring.submit_and_wait(entries.len())?;
        let mut results = vec![0; entries.len()];
        let mut seen = 0;
        for cqe in ring.completion() {
            let i = cqe.user_data() as usize;
            if let Some(slot) = results.get_mut(i) {
                *slot = cqe.result();
                seen += 1;
            }
        }
        if seen != entries.len() {
            return Err(io::Error::other("io_uring lost a completion"));
        }
        Ok(results)
    }

    fn fsync_entry(&self, user_data: u64) -> squeue::Entry {
        opcode::Fsync::new(types::Fd(self.file.as_raw_fd())).flags(types::FsyncFlags::DATASYNC).build().user_data(user_data)
    }
}

fn check(result: i32) -> io::Result<usize> {
    if result < 0 { Err(io::Error::from_raw_os_error(-result)) } else { Ok(result as usize) }
}

impl SegmentFile for UringSegment {
    fn write_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        self.file.write_all_at(buf, at)
    }

    fn sync(&self) -> io::Result<()> {
        check(self.run(&[self.fsync_entry(0)])?[0]).map(drop)
    }

    fn write_and_sync(&self, buf: &[u8], at: u64) -> io::Result<()> {
        let len = u32::try_from(buf.len()).map_err(|_| io::Error::other("a write past 4 GiB"))?;
        let write = opcode::Write::new(types::Fd(self.file.as_raw_fd()), buf.as_ptr(), len)
            .offset(at)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(0);
        let results = self.run(&[write, self.fsync_entry(1)])?;
        let written = check(results[0])?;
        if written == buf.len() {
            return check(results[1]).map(drop);
        }
        // A short write cancels the linked sync: finish both by hand.
        self.file.write_all_at(&buf[written..], at + written as u64)?;
        self.sync()
    }
}
