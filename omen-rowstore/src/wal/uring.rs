//! The io_uring backend: a group's write and its fdatasync go to the kernel
//! linked in one submission (`IOSQE_IO_LINK`: the sync starts only once the
//! write completed), so a group commit costs one system call instead of
//! two. Plain writes (the modes that write each record at once) stay
//! pwrite(2): they only reach the page cache, and sharing the ring with a
//! running sync would make them wait for it.
//!
//! The bytes to write are copied into a buffer the ring owns, and a
//! submission is over only when every one of its completions has been
//! reaped (interrupted waits are resumed). If waiting fails for good, the
//! ring is marked broken and keeps its buffer forever: the kernel may still
//! read it, so it is never freed or reused, and every later operation
//! fails (the log is then poisoned). Registered buffers are not used: the
//! sync, not the copy, is what a commit waits for.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use io_uring::{IoUring, Probe, opcode, squeue, types};
use parking_lot::Mutex;

use super::io::{LogIo, SegmentFile};

/// Entries in the ring: a submission holds at most two.
const RING_ENTRIES: u32 = 8;

struct Ring {
    uring: IoUring,
    /// The first `user_data` of the next submission: completions are told
    /// apart from any a broken submission left behind.
    next_id: u64,
    /// The bytes a submission writes; untouched until it has completed.
    buffer: Vec<u8>,
    /// Why the ring may still have requests in flight; nothing is
    /// submitted once set.
    broken: Option<String>,
}

/// One ring for the whole log; a segment borrows it for each submission.
pub(crate) struct Uring {
    ring: Arc<Mutex<Ring>>,
}

impl Uring {
    /// Sets up a ring; fails where the kernel or a seccomp filter refuses,
    /// or where the kernel lacks the write or fsync operation (before 5.6).
    pub(crate) fn new() -> io::Result<Self> {
        let uring = IoUring::new(RING_ENTRIES)?;
        let mut probe = Probe::new();
        uring.submitter().register_probe(&mut probe)?;
        if !probe.is_supported(opcode::Write::CODE) || !probe.is_supported(opcode::Fsync::CODE) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "the kernel's io_uring lacks write or fsync"));
        }
        Ok(Self { ring: Arc::new(Mutex::new(Ring { uring, next_id: 0, buffer: Vec::new(), broken: None })) })
    }
}

impl LogIo for Uring {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn segment(&self, file: File, _len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(Arc::new(UringSegment { file, ring: Arc::clone(&self.ring) }))
    }
}

struct UringSegment {
    file: File,
    ring: Arc<Mutex<Ring>>,
}

fn check(result: i32) -> io::Result<usize> {
    if result < 0 { Err(io::Error::from_raw_os_error(-result)) } else { Ok(result as usize) }
}

fn retryable(e: &io::Error) -> bool {
    const EBUSY: i32 = 16;
    matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) || e.raw_os_error() == Some(EBUSY)
}

impl UringSegment {
    /// Writes `data` (if any) at `at`, linked to an fdatasync; returns the
    /// bytes written and the sync's result (negative: an errno).
    fn submit(&self, data: Option<(&[u8], u64)>) -> io::Result<(usize, i32)> {
        let mut guard = self.ring.lock();
        let ring = &mut *guard;
        if let Some(why) = &ring.broken {
            return Err(io::Error::other(format!("io_uring unusable: {why}")));
        }
        let fd = types::Fd(self.file.as_raw_fd());
        let base = ring.next_id;
        ring.next_id = ring.next_id.wrapping_add(2);
        let mut entries = Vec::with_capacity(2);
        if let Some((bytes, at)) = data {
            let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("a write past 4 GiB"))?;
            ring.buffer.clear();
            ring.buffer.extend_from_slice(bytes);
            entries
                .push(opcode::Write::new(fd, ring.buffer.as_ptr(), len).offset(at).build().flags(squeue::Flags::IO_LINK).user_data(base));
        }
        entries.push(opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build().user_data(base + 1));
        // SAFETY: the write entry points into `ring.buffer`, which this ring
        // owns and does not touch again until every completion of this
        // submission is reaped below; if that cannot be established, the
        // ring is marked broken and the buffer is never touched again (the
        // ring, and so the buffer, lives as long as any segment using it).
        // The fd stays open for as long as the kernel holds the request (it
        // takes its own reference on submission). `push_multiple` queues
        // all entries or none, and the lock keeps other submissions out.
        #[allow(unsafe_code)]
        unsafe { ring.uring.submission().push_multiple(&entries) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
        let mut results: [Option<i32>; 2] = [None, None];
        if data.is_none() {
            results[0] = Some(0);
        }
        let mut submitted = false;
        loop {
            for cqe in ring.uring.completion() {
                // Others were left by a broken submission.
                if let i @ (0 | 1) = cqe.user_data().wrapping_sub(base) {
                    results[i as usize] = Some(cqe.result());
                }
            }
            if results.iter().all(Option::is_some) {
                break;
            }
            let waited = if submitted { ring.uring.submitter().submit_and_wait(1) } else { ring.uring.submit_and_wait(entries.len()) };
            match waited {
                Ok(_) => submitted = true,
                Err(e) if retryable(&e) => {}
                Err(e) => {
                    ring.broken = Some(e.to_string());
                    return Err(e);
                }
            }
        }
        let written = match data {
            Some(_) => check(results[0].unwrap_or(-1))?,
            None => 0,
        };
        Ok((written, results[1].unwrap_or(-1)))
    }
}

impl SegmentFile for UringSegment {
    fn write_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        self.file.write_all_at(buf, at)
    }

    fn sync(&self) -> io::Result<()> {
        check(self.submit(None)?.1).map(drop)
    }

    fn write_and_sync(&self, buf: &[u8], at: u64) -> io::Result<()> {
        if u32::try_from(buf.len()).is_err() {
            self.file.write_all_at(buf, at)?;
            return self.sync();
        }
        let (written, synced) = self.submit(Some((buf, at)))?;
        if written == buf.len() {
            return check(synced).map(drop);
        }
        // A short write cancels the linked sync: finish both by hand.
        self.file.write_all_at(&buf[written..], at + written as u64)?;
        self.sync()
    }
}
