//! Journal files (a client's, or one per server session): blocking
//! `std::fs` I/O (small appends), with the interval fsync timed on the
//! runtime's clock. The format is `hookup_proto::reliable::Journal`'s.
//!
//! A journal holds a session's resume key (a client's) or its digest (a
//! server's) and unacknowledged messages: on unix its files are created
//! with mode 0600 (an existing file is narrowed to it when opened), and a
//! server's journal directory is created 0700.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::task::Context;

use hookup_proto::reliable::Journal;

use super::Fsync;
use crate::Runtime;

/// A journal file and its encoder. The interval fsync's timer belongs to
/// its user (see [`JournalFile::poll_sync`]), so that a file can be kept
/// without a runtime type (a server's parked sessions).
pub(super) struct JournalFile {
    path: PathBuf,
    file: File,
    pub(super) journal: Journal,
    fsync: Fsync,
    dirty: bool,
    buf: Vec<u8>,
}

impl std::fmt::Debug for JournalFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Files created with mode 0600 (unix): they hold resume keys.
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    options
}

/// Narrows an existing file (of an older hookup, created 0644) to 0600.
fn narrow(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Creates `dir` (and missing parents) with mode 0700 (unix).
pub(super) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

impl JournalFile {
    pub(super) fn open(path: &Path, fsync: Fsync) -> io::Result<Self> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let recovery = Journal::recover(&data).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        if recovery.cut > 0 {
            tracing::warn!(
                "journal {}: cut off a torn or corrupt tail of {} bytes",
                path.display(),
                recovery.cut
            );
        }
        let mut file = private(
            OpenOptions::new()
                .create(true)
                .read(true)
                .write(true)
                .truncate(false),
        )
        .open(path)?;
        narrow(&file)?;
        file.set_len(recovery.valid_len as u64)?;
        if recovery.valid_len == 0 {
            file.write_all(Journal::header())?;
        }
        file.seek(io::SeekFrom::End(0))?;
        file.sync_data()?;
        let mut this = Self {
            path: path.to_owned(),
            file,
            journal: recovery.journal,
            fsync,
            dirty: false,
            buf: Vec::new(),
        };
        if this.journal.needs_upgrade() {
            // A version 1 file: rewritten as version 2 before any record
            // of the new kinds is appended.
            this.compact()?;
        }
        Ok(this)
    }

    fn append(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        match self.fsync {
            Fsync::Always => self.file.sync_data()?,
            Fsync::Interval(_) => self.dirty = true,
            Fsync::Never => {}
        }
        if self.journal.should_compact() {
            self.compact()?;
        }
        Ok(())
    }

    pub(super) fn add(&mut self, msg: &hookup_proto::Message) -> io::Result<u64> {
        let id = self.journal.add(msg, &mut self.buf);
        self.append()?;
        id.ok_or_else(|| {
            io::Error::other(format!(
                "{}: no message ids left (a crafted file?): message not journaled",
                self.path.display()
            ))
        })
    }

    pub(super) fn done(&mut self, id: u64) -> io::Result<()> {
        self.journal.done(id, &mut self.buf);
        self.append()
    }

    /// A new session (an empty id: none), with its resume key (a client)
    /// or the key's digest (a server).
    pub(super) fn session(&mut self, id: &[u8], key: Option<&[u8; 32]>) -> io::Result<()> {
        self.journal.session(id, key, &mut self.buf);
        self.append()
    }

    /// The peer acknowledged the oldest message (journal id, if journaled).
    /// Kept in memory until the next [`flush`](Self::flush) or append: one
    /// arrives per message, and losing it in a crash costs only a message
    /// sent again (the peer, which has it, acknowledges it at once).
    pub(super) fn acked(&mut self, id: Option<u64>) {
        self.journal.acked(id, &mut self.buf);
    }

    /// Messages received in this session. Kept in memory until the next
    /// [`flush`](Self::flush) or append, which must come before the ACK
    /// for them is written.
    pub(super) fn received(&mut self, count: u64) {
        self.journal.received(count, &mut self.buf);
    }

    /// Writes out the records kept in memory (one `write(2)` for all of
    /// them), synced as the policy says.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.append()
    }

    /// Deletes the file (its session is gone for good).
    pub(super) fn remove(self) -> io::Result<()> {
        drop(self.file);
        std::fs::remove_file(&self.path)
    }

    /// Rewrites the file with only the live records (write, sync, rename).
    /// Under [`Fsync::Never`] the snapshot is not synced either: write then
    /// rename is enough for a process crash (the page cache survives it),
    /// and that policy promises nothing across a power loss.
    fn compact(&mut self) -> io::Result<()> {
        let mut snap = Vec::new();
        self.journal.snapshot(&mut snap);
        let tmp = self.path.with_extension("compact");
        {
            let mut f =
                private(OpenOptions::new().write(true).create(true).truncate(true)).open(&tmp)?;
            f.write_all(&snap)?;
            if self.fsync != Fsync::Never {
                f.sync_data()?;
            }
        }
        std::fs::rename(&tmp, &self.path)?;
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        file.seek(io::SeekFrom::End(0))?;
        self.file = file;
        Ok(())
    }

    /// Syncs when the interval policy says so; `timer` is the caller's.
    pub(super) fn poll_sync<R: Runtime>(
        &mut self,
        timer: &mut Option<R::Sleep>,
        cx: &mut Context<'_>,
    ) -> io::Result<()> {
        let Fsync::Interval(every) = self.fsync else {
            return Ok(());
        };
        if !self.dirty {
            *timer = None;
            return Ok(());
        }
        let t = timer.get_or_insert_with(|| R::sleep_until(R::now() + every));
        if R::poll_sleep(t, cx).is_ready() {
            *timer = None;
            self.dirty = false;
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Writes out what is kept in memory and flushes to disk (at the end
    /// of the session).
    pub(super) fn sync(&mut self) -> io::Result<()> {
        self.append()?;
        self.dirty = false;
        self.file.sync_data()
    }

    /// Writes out what is kept in memory, flushes it to disk and closes
    /// the file, keeping its contents' decoded state (a server's parked
    /// session: it holds no file descriptor). The records are written even
    /// when the sync fails; the error is reported.
    pub(super) fn close(mut self) -> (ClosedJournal, io::Result<()>) {
        let r = self.sync();
        let closed = ClosedJournal {
            path: self.path,
            journal: self.journal,
            fsync: self.fsync,
        };
        (closed, r)
    }
}

/// A journal file that is closed: its path and the state of its records
/// (what [`JournalFile::close`] left on disk).
pub(super) struct ClosedJournal {
    path: PathBuf,
    pub(super) journal: Journal,
    fsync: Fsync,
}

impl std::fmt::Debug for ClosedJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClosedJournal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ClosedJournal {
    /// Opens the file again for appending (it is not read again: its
    /// records are the state kept here); then [`reopened`](Self::reopened).
    /// Fails when the file cannot be opened (it vanished, or no descriptor
    /// is left).
    pub(super) fn open_again(&self) -> io::Result<File> {
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        file.seek(io::SeekFrom::End(0))?;
        Ok(file)
    }

    /// The open journal file, with `file` from [`open_again`](Self::open_again).
    pub(super) fn reopened(self, file: File) -> JournalFile {
        JournalFile {
            path: self.path,
            file,
            journal: self.journal,
            fsync: self.fsync,
            dirty: false,
            buf: Vec::new(),
        }
    }

    /// Deletes the file (its session is gone for good).
    pub(super) fn remove(self) -> io::Result<()> {
        std::fs::remove_file(&self.path)
    }

    /// The file's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}
