//! The client's journal file: blocking `std::fs` I/O (small appends), with
//! the interval fsync timed on the runtime's clock.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::task::Context;

use hookup_proto::reliable::Journal;

use super::Fsync;
use crate::{Message, Runtime};

/// The journal file and its encoder.
pub(super) struct JournalFile<R: Runtime> {
    path: PathBuf,
    file: File,
    pub(super) journal: Journal,
    fsync: Fsync,
    dirty: bool,
    buf: Vec<u8>,
    sync_timer: Option<R::Sleep>,
}

impl<R: Runtime> JournalFile<R> {
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
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        file.set_len(recovery.valid_len as u64)?;
        if recovery.valid_len == 0 {
            file.write_all(Journal::header())?;
        }
        file.seek(io::SeekFrom::End(0))?;
        file.sync_data()?;
        Ok(Self {
            path: path.to_owned(),
            file,
            journal: recovery.journal,
            fsync,
            dirty: false,
            buf: Vec::new(),
            sync_timer: None,
        })
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

    pub(super) fn add(&mut self, msg: &Message) -> io::Result<u64> {
        let id = self.journal.add(&msg.to_proto(), &mut self.buf);
        self.append()?;
        Ok(id)
    }

    pub(super) fn done(&mut self, id: u64) -> io::Result<()> {
        self.journal.done(id, &mut self.buf);
        self.append()
    }

    /// Rewrites the file with only the live records (write, sync, rename).
    fn compact(&mut self) -> io::Result<()> {
        let mut snap = Vec::new();
        self.journal.snapshot(&mut snap);
        let tmp = self.path.with_extension("compact");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&snap)?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        file.seek(io::SeekFrom::End(0))?;
        self.file = file;
        Ok(())
    }

    /// Syncs when the interval policy says so.
    pub(super) fn poll_sync(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Fsync::Interval(every) = self.fsync else {
            return Ok(());
        };
        if !self.dirty {
            self.sync_timer = None;
            return Ok(());
        }
        let t = self
            .sync_timer
            .get_or_insert_with(|| R::sleep_until(R::now() + every));
        if R::poll_sleep(t, cx).is_ready() {
            self.sync_timer = None;
            self.dirty = false;
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Flushes to disk (at the end of the session).
    pub(super) fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}
