//! A server's session journals: one file per session in a directory
//! (`<hex session id>.hkj`, the journal format of
//! `hookup_proto::reliable::Journal`; directory 0700, files 0600), holding
//! the session id, the SHA-256 digest of its resume key (never the key:
//! a copy of the files does not let anyone resume a session), how many of
//! its messages the client acknowledged, how many client messages were
//! delivered to the application, and its unacknowledged outgoing messages.
//! A connection owns its session's file, open, while attached. A parked
//! session's file is closed (issue #14: a flood of parked sessions must
//! not hold a file descriptor each): its decoded state waits here, and the
//! file is opened again when the session is attached. Nothing is written
//! for a parked session (no connection: no acknowledgement or delivery can
//! happen; ack deadlines that pass resolve only in memory), so a parked
//! file is complete, and synced, when it is closed. The file of a session
//! that expires is deleted.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::task::Context;

use hookup_proto::reliable::{DeliveryOutcome, MessageId, SessionState};

use super::Fsync;
use super::journal_file::{ClosedJournal, JournalFile, create_private_dir};
use crate::Runtime;

/// The directory and the (closed) files of parked sessions.
#[derive(Debug)]
pub(super) struct ServerJournal {
    dir: PathBuf,
    fsync: Fsync,
    parked: Mutex<HashMap<Vec<u8>, ParkedFile>>,
}

/// A parked session's file, closed.
#[derive(Debug)]
struct ParkedFile {
    file: ClosedJournal,
    jmap: HashMap<MessageId, u64>,
    received: u64,
}

/// One session's file, and which journal record each queued message is.
#[derive(Debug)]
pub(super) struct SessionFile {
    file: JournalFile,
    jmap: HashMap<MessageId, u64>,
    /// Client messages delivered to the application in this session.
    received: u64,
    received_dirty: bool,
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn log(r: io::Result<()>) {
    if let Err(e) = r {
        tracing::error!("session journal: {e}");
    }
}

impl ServerJournal {
    /// Opens `dir` (created if missing) and reads every session file in
    /// it: the sessions, to be parked, with the message ids their states
    /// gave to the journaled messages. A file that cannot be read is
    /// reported and left alone; a torn or corrupt tail is cut off.
    pub(super) fn open(dir: &Path, fsync: Fsync) -> io::Result<(Self, Vec<SessionState>)> {
        create_private_dir(dir)?;
        let mut parked = HashMap::new();
        let mut states = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("hkj") => {}
                // A compaction that did not finish: the original is intact.
                Some("compact") => {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                _ => continue,
            }
            let file = match JournalFile::open(&path, fsync) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!("session journal {}: {e} (skipped)", path.display());
                    continue;
                }
            };
            let j = &file.journal;
            let id = j.session_id().to_vec();
            if id.is_empty() || parked.contains_key(&id) {
                log(file.remove());
                continue;
            }
            // A file of an older hookup has no key digest: no client can
            // prove it owns that session, so nobody could resume it.
            let Some(&digest) = j.session_key() else {
                tracing::warn!(
                    "session journal {}: no resume key (an older hookup's file): session dropped",
                    path.display()
                );
                log(file.remove());
                continue;
            };
            let jids: Vec<u64> = j.live().map(|(jid, _)| jid).collect();
            let (state, ids) = SessionState::restore(
                id.clone(),
                digest,
                j.acked_count(),
                j.received_count(),
                j.live().map(|(_, m)| m.clone()),
            );
            let received = j.received_count();
            // Closed until its client resumes it.
            let (file, r) = file.close();
            log(r);
            parked.insert(
                id,
                ParkedFile {
                    file,
                    jmap: ids.into_iter().zip(jids).collect(),
                    received,
                },
            );
            states.push(state);
        }
        if !states.is_empty() {
            tracing::info!(
                "session journal {}: {} sessions restored",
                dir.display(),
                states.len()
            );
        }
        Ok((
            Self {
                dir: dir.to_owned(),
                fsync,
                parked: Mutex::new(parked),
            },
            states,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Vec<u8>, ParkedFile>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file of a session being attached, open: the parked one (when
    /// the session starts over under its id, because the client
    /// contradicted it, with a SESSION record and its new key's digest:
    /// its messages stay, numbered afresh), else a new file. An error
    /// (the file cannot be opened or written: no descriptor left, say)
    /// means the session would not be durable: the caller refuses it. A
    /// parked session's file then stays parked, as it was.
    pub(super) fn attach(
        &self,
        id: &[u8],
        key_digest: &[u8; 32],
        resumed: bool,
    ) -> io::Result<SessionFile> {
        let parked = self.lock().remove(id);
        if let Some(p) = parked {
            let ParkedFile {
                file,
                jmap,
                received,
            } = p;
            let mut file = match file.open_again() {
                Ok(f) => file.reopened(f),
                Err(e) => {
                    let e = io::Error::new(e.kind(), format!("{}: {e}", file.path().display()));
                    self.lock().insert(
                        id.to_vec(),
                        ParkedFile {
                            file,
                            jmap,
                            received,
                        },
                    );
                    return Err(e);
                }
            };
            let mut received = received;
            if !resumed {
                if let Err(e) = file.session(id, Some(key_digest)) {
                    let (file, r) = file.close();
                    log(r);
                    self.lock().insert(
                        id.to_vec(),
                        ParkedFile {
                            file,
                            jmap,
                            received,
                        },
                    );
                    return Err(e);
                }
                received = 0;
            }
            return Ok(SessionFile {
                file,
                jmap,
                received,
                received_dirty: false,
            });
        }
        let path = self.dir.join(format!("{}.hkj", hex(id)));
        let _ = std::fs::remove_file(&path);
        let made = JournalFile::open(&path, self.fsync).and_then(|mut file| {
            file.session(id, Some(key_digest))?;
            Ok(file)
        });
        match made {
            Ok(file) => Ok(SessionFile {
                file,
                jmap: HashMap::new(),
                received: 0,
                received_dirty: false,
            }),
            Err(e) => {
                // Nothing of a session that is refused is left behind.
                let _ = std::fs::remove_file(&path);
                Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            }
        }
    }

    /// Keeps the file of a session that was parked, closed (written out
    /// and synced first).
    pub(super) fn park(&self, id: Vec<u8>, mut file: SessionFile) {
        file.flush();
        let SessionFile {
            file,
            jmap,
            received,
            ..
        } = file;
        let (file, r) = file.close();
        log(r);
        self.lock().insert(
            id,
            ParkedFile {
                file,
                jmap,
                received,
            },
        );
    }

    /// Deletes the file of a session that is gone for good.
    pub(super) fn drop_session(&self, id: &[u8]) {
        if let Some(f) = self.lock().remove(id) {
            log(f.file.remove());
        }
    }

    /// Whether a parked session's file is kept.
    pub(super) fn is_parked(&self, id: &[u8]) -> bool {
        self.lock().contains_key(id)
    }

    /// Parked sessions' files (all closed).
    #[cfg(test)]
    fn parked_files(&self) -> usize {
        self.lock().len()
    }
}

impl SessionFile {
    /// A message was queued.
    pub(super) fn add(&mut self, id: MessageId, msg: &hookup_proto::Message) {
        match self.file.add(msg) {
            Ok(jid) => {
                self.jmap.insert(id, jid);
            }
            Err(e) => tracing::error!("session journal: {e}"),
        }
    }

    /// A message's outcome: a dropped one leaves the journal.
    pub(super) fn outcome(&mut self, id: MessageId, outcome: DeliveryOutcome) {
        if matches!(outcome, DeliveryOutcome::Dropped(_))
            && let Some(jid) = self.jmap.remove(&id)
        {
            log(self.file.done(jid));
        }
    }

    /// The client acknowledged the message.
    pub(super) fn released(&mut self, id: MessageId) {
        let jid = self.jmap.remove(&id);
        self.file.acked(jid);
    }

    /// A client message was handed to the application.
    pub(super) fn delivered(&mut self) {
        self.received += 1;
        self.received_dirty = true;
    }

    /// Writes out what was delivered and acknowledged since the last
    /// flush (before anything more, an ACK above all, is written to the
    /// socket).
    pub(super) fn flush(&mut self) {
        if std::mem::take(&mut self.received_dirty) {
            self.file.received(self.received);
        }
        log(self.file.flush());
    }

    /// The interval fsync.
    pub(super) fn poll_sync<R: Runtime>(
        &mut self,
        timer: &mut Option<R::Sleep>,
        cx: &mut Context<'_>,
    ) {
        log(self.file.poll_sync::<R>(timer, cx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session that starts over under its id (its client contradicted
    /// it) keeps its file and its unacknowledged messages, with the counts
    /// reset; a session opened anew gets an empty file.
    #[test]
    fn a_session_starting_over_keeps_its_messages() {
        let dir = std::env::temp_dir().join(format!(
            "hookup-server-journal-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let id = b"session-one".to_vec();
        {
            let (j, states) = ServerJournal::open(&dir, Fsync::Never).unwrap();
            assert!(states.is_empty());
            let mut f = j.attach(&id, &[1; 32], false).expect("new file");
            for (i, text) in ["a", "b", "c"].into_iter().enumerate() {
                f.add(MessageId(i as u64 + 1), &hookup_proto::Message::text(text));
            }
            f.released(MessageId(1));
            f.delivered();
            f.delivered();
            j.park(id.clone(), f);
            // Starts over: same file, b and c still live, counts reset.
            let f = j.attach(&id, &[2; 32], false).expect("kept file");
            assert_eq!(f.file.journal.len(), 2);
            assert_eq!(f.file.journal.acked_count(), 0);
            assert_eq!(f.file.journal.received_count(), 0);
            j.park(id.clone(), f);
        }
        // What a restarted server finds.
        let (_, states) = ServerJournal::open(&dir, Fsync::Never).unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].id(), id.as_slice());
        assert_eq!(states[0].unacked(), 2);
        assert_eq!(states[0].received(), 0);
        assert_eq!(states[0].key_digest(), &[2; 32], "the new key's digest");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Issue #14: the directory is created 0700 and session files 0600, so
    /// other local users can read neither session ids nor key digests.
    #[cfg(unix)]
    #[test]
    fn directory_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let base = std::env::temp_dir().join(format!(
            "hookup-server-journal-mode-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("nested");
        let (j, _) = ServerJournal::open(&dir, Fsync::Never).unwrap();
        let f = j.attach(b"sid", &[3; 32], false).expect("new file");
        j.park(b"sid".to_vec(), f);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join(format!("{}.hkj", hex(b"sid")));
        assert_eq!(mode(&file), 0o600);
        // A file an older hookup left world-readable is narrowed on open.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(j);
        let (_, states) = ServerJournal::open(&dir, Fsync::Never).unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(mode(&file), 0o600);
        let _ = std::fs::remove_dir_all(&base);
    }

    /// File descriptors of this process open on files under `dir`.
    #[cfg(target_os = "linux")]
    fn open_fds_under(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    /// Issue #14: a parked session keeps no file open (a flood of parked
    /// sessions exhausted the file descriptors), neither when it is parked
    /// by its connection nor when a restarted server finds it; its file
    /// is opened again when the session is resumed, and what is written
    /// then lands after what was there.
    #[cfg(target_os = "linux")]
    #[test]
    fn parked_sessions_hold_no_file_descriptor() {
        let dir = std::env::temp_dir().join(format!(
            "hookup-server-journal-fds-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let ids: Vec<Vec<u8>> = (0..20u8).map(|i| vec![b's', i]).collect();
        {
            let (j, _) = ServerJournal::open(&dir, Fsync::Never).unwrap();
            for id in &ids {
                let mut f = j.attach(id, &[7; 32], false).expect("new file");
                f.add(MessageId(1), &hookup_proto::Message::text("one"));
                j.park(id.clone(), f);
            }
            assert_eq!(j.parked_files(), ids.len());
            assert_eq!(open_fds_under(&dir), 0, "parked sessions' files are closed");
            // Resumed: open while attached, closed again when parked.
            let mut f = j.attach(&ids[0], &[7; 32], true).expect("reopened");
            assert_eq!(open_fds_under(&dir), 1);
            f.add(MessageId(2), &hookup_proto::Message::text("two"));
            j.park(ids[0].clone(), f);
            assert_eq!(open_fds_under(&dir), 0);
        }
        let (j, states) = ServerJournal::open(&dir, Fsync::Never).unwrap();
        assert_eq!(states.len(), ids.len());
        assert_eq!(
            open_fds_under(&dir),
            0,
            "restored sessions' files are closed"
        );
        let resumed = states.iter().find(|s| s.id() == ids[0].as_slice()).unwrap();
        assert_eq!(resumed.unacked(), 2, "the record written after reopening");
        drop(j);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
