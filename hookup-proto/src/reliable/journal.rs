//! The journal's on-disk format, as pure functions over bytes.
//!
//! hookup-driver owns the files (`reliable/journal_file.rs` reads and
//! writes one, a client's or a server session's;
//! `reliable/server_journal.rs` keeps a server's, one per session); this module
//! decides what goes in them and what a file read back means. A journal keeps one end of a session across
//! process crashes: its unacknowledged outgoing messages, and (version 2)
//! the session id, how many of its messages the peer acknowledged and how
//! many it received, and (version 3) the session's resume key: the key
//! itself in a client's journal, its SHA-256 digest in a server's. Clients
//! keep one file; a server one per session.
//!
//! A journal is a magic followed by records, each `length: u32 LE | crc32:
//! u32 LE | body`, the CRC-32 (IEEE) taken over the body. A body is `kind:
//! u8 | n: u64 LE`, then:
//!
//! | kind | name | `n` | rest of the body |
//! |---|---|---|---|
//! | 1 | ADD | journal id | `flags: u8` (bit 0: text), the payload |
//! | 2 | DONE | journal id | — (removed, not acknowledged: dropped) |
//! | 3 | SESSION | messages acked | `received: u64 LE`, `id_len: u8` (≤ 64), the session id (empty: none), then (version 3) `key_len: u8` (0 or 32), the key |
//! | 4 | ACKED | journal id (0: none) | — (the peer acknowledged the oldest sequenced message) |
//! | 5 | RECEIVED | messages received | — |
//!
//! Version 1 files (magic `HKJ1`, written by hookup 0.1) hold only ADD and
//! DONE; version 2 files (`HKJ2`) have SESSION records without a key. Both
//! are read as they are; new files, and older files once they are
//! rewritten ([`Journal::needs_upgrade`]), start with `HKJ3`, so that an
//! older hookup refuses them (bad magic) instead of cutting them at the
//! first record it does not read.
//!
//! A message is live from its ADD until its DONE or ACKED. SESSION starts a
//! session (both counters as given; a new session numbers every live
//! message afresh); each ACKED adds one to the acked count (acks are
//! cumulative, so the live messages are always numbered `acked + 1`, …, in
//! order); RECEIVED sets the received count. Recovery keeps every record up
//! to the first one that is torn (runs past the end) or corrupt (bad CRC,
//! unknown kind, bad layout): that tail is cut off and reported, never a
//! panic.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

use crate::message::{Message, Utf8Bytes};

const MAGIC_V1: &[u8; 4] = b"HKJ1";
const MAGIC_V2: &[u8; 4] = b"HKJ2";
const MAGIC: &[u8; 4] = b"HKJ3";
/// A resume key's length.
const KEY_LEN: usize = super::key::RESUME_KEY_LEN;
const ADD: u8 = 1;
const DONE: u8 = 2;
const SESSION: u8 = 3;
const ACKED: u8 = 4;
const RECEIVED: u8 = 5;
/// Longest session id a SESSION record holds (the protocol's bound).
const MAX_SESSION_ID: usize = 64;
/// Longest record body: what its `u32` length can say. (A smaller limit
/// here would make recovery cut a valid journal at a record that `add`
/// wrote; a corrupt length is caught by the CRC or runs past the end.)
const MAX_RECORD: usize = u32::MAX as usize;

/// One record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalRecord {
    /// A message entered the outbox.
    Add {
        /// Journal id.
        id: u64,
        /// The message.
        message: Message,
    },
    /// It left the outbox without an acknowledgement (it was given up).
    Done {
        /// Journal id.
        id: u64,
    },
    /// A session started (or, with an empty id, the journal has none).
    Session {
        /// The session id (at most 64 bytes; empty: no session).
        id: Vec<u8>,
        /// The session's resume key (a client's journal) or its SHA-256
        /// digest (a server's); `None` in version 2 files.
        key: Option<[u8; KEY_LEN]>,
        /// Messages of this session the peer acknowledged so far.
        acked: u64,
        /// Messages of this session received so far.
        received: u64,
    },
    /// The peer acknowledged the oldest live message of the session.
    Acked {
        /// Journal id (0: a message that was never journaled).
        id: u64,
    },
    /// Messages of this session received so far.
    Received {
        /// The count.
        count: u64,
    },
}

/// A journal file that cannot be used at all.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalError {
    /// The file does not start with a journal magic.
    NotAJournal,
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAJournal => f.write_str("not a hookup journal (bad magic)"),
        }
    }
}

impl std::error::Error for JournalError {}

/// What recovery found.
#[derive(Debug)]
pub struct Recovery {
    /// The journal state, with the live messages in order.
    pub journal: Journal,
    /// Bytes of the file that are valid; truncate the file to this length.
    pub valid_len: usize,
    /// Bytes cut off at the end (a torn or corrupt tail), if any.
    pub cut: usize,
}

/// The live contents of a journal, and the encoder of new records.
#[derive(Debug)]
pub struct Journal {
    live: BTreeMap<u64, Message>,
    next_id: u64,
    records: usize,
    session: Vec<u8>,
    key: Option<[u8; KEY_LEN]>,
    acked: u64,
    received: u64,
    /// The version of the file it was read from (records of the current
    /// version may be appended only to a file of the current version).
    version: u8,
}

impl Default for Journal {
    fn default() -> Self {
        Self::new()
    }
}

fn encode(body: &[&[u8]], out: &mut Vec<u8>) {
    let len: usize = body.iter().map(|b| b.len()).sum();
    let mut crc = crc32fast::Hasher::new();
    for b in body {
        crc.update(b);
    }
    let len = u32::try_from(len).expect("a journal record is smaller than 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    for b in body {
        out.extend_from_slice(b);
    }
}

fn encode_session(
    id: &[u8],
    key: Option<&[u8; KEY_LEN]>,
    acked: u64,
    received: u64,
    out: &mut Vec<u8>,
) {
    // `id` is at most 64 bytes (checked by the callers).
    let key: &[u8] = key.map_or(&[], |k| k);
    encode(
        &[
            &[SESSION],
            &acked.to_le_bytes(),
            &received.to_le_bytes(),
            &[id.len() as u8],
            id,
            &[key.len() as u8],
            key,
        ],
        out,
    );
}

impl Journal {
    /// An empty journal; write [`Journal::header`] to a new file first.
    pub fn new() -> Self {
        Self {
            live: BTreeMap::new(),
            next_id: 1,
            records: 0,
            session: Vec::new(),
            key: None,
            acked: 0,
            received: 0,
            version: 3,
        }
    }

    /// The bytes a new journal file starts with (`HKJ3`).
    pub fn header() -> &'static [u8] {
        MAGIC
    }

    /// Whether the journal was read from an older (`HKJ1`, `HKJ2`) file:
    /// rewrite it with [`snapshot`](Self::snapshot) before appending records.
    pub fn needs_upgrade(&self) -> bool {
        self.version < 3
    }

    /// Reads a journal file's contents.
    pub fn recover(file: &[u8]) -> Result<Recovery, JournalError> {
        if file.is_empty() {
            return Ok(Recovery {
                journal: Self::new(),
                valid_len: 0,
                cut: 0,
            });
        }
        if file.len() < MAGIC.len() {
            // A header torn while being written.
            if [MAGIC, MAGIC_V2, MAGIC_V1]
                .iter()
                .any(|m| m.starts_with(file))
            {
                return Ok(Recovery {
                    journal: Self::new(),
                    valid_len: 0,
                    cut: file.len(),
                });
            }
            return Err(JournalError::NotAJournal);
        }
        let version = match &file[..4] {
            m if m == MAGIC => 3,
            m if m == MAGIC_V2 => 2,
            m if m == MAGIC_V1 => 1,
            _ => return Err(JournalError::NotAJournal),
        };
        let v1 = version == 1;
        let mut j = Self::new();
        j.version = version;
        let mut pos = 4;
        while let Some((rec, n)) = Self::decode_record(&file[pos..]) {
            match rec {
                JournalRecord::Add { id, message } => {
                    // Ids are handed out in increasing order from 1 (a
                    // snapshot keeps them, in order), and `u64::MAX` is
                    // never one: an ADD whose id is not above every earlier
                    // one, or is that, was not written by a journal. It and
                    // what follows are a corrupt tail (a CRC that happens
                    // to match, or a crafted file): taken in, it would make
                    // `add` reuse a live id.
                    if id < j.next_id || id == u64::MAX {
                        break;
                    }
                    j.next_id = id + 1;
                    j.live.insert(id, message);
                }
                JournalRecord::Done { id } => {
                    j.live.remove(&id);
                }
                // Version 1 has no other records: what follows is corrupt.
                _ if v1 => break,
                // A key in a version 2 file: not written by a journal.
                JournalRecord::Session { key: Some(_), .. } if version < 3 => break,
                JournalRecord::Session {
                    id,
                    key,
                    acked,
                    received,
                } => {
                    j.session = id;
                    j.key = key;
                    j.acked = acked;
                    j.received = received;
                }
                JournalRecord::Acked { id } => {
                    j.live.remove(&id);
                    j.acked = j.acked.saturating_add(1);
                }
                JournalRecord::Received { count } => j.received = count,
            }
            j.records += 1;
            pos += n;
        }
        Ok(Recovery {
            journal: j,
            valid_len: pos,
            cut: file.len() - pos,
        })
    }

    /// Decodes the record at the front of `b`, `None` when it is torn or corrupt.
    pub fn decode_record(b: &[u8]) -> Option<(JournalRecord, usize)> {
        let len = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?) as usize;
        if !(9..=MAX_RECORD).contains(&len) {
            return None;
        }
        let crc = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
        let end = len.checked_add(8)?;
        let body = b.get(8..end)?;
        if crc32fast::hash(body) != crc {
            return None;
        }
        let id = u64::from_le_bytes(body[1..9].try_into().ok()?);
        let rec = match body[0] {
            ADD => {
                let flags = *body.get(9)?;
                let payload = Bytes::copy_from_slice(&body[10..]);
                let message = match flags {
                    1 => Message::Text(Utf8Bytes::try_from_bytes(payload).ok()?),
                    0 => Message::Binary(payload),
                    _ => return None,
                };
                JournalRecord::Add { id, message }
            }
            DONE if len == 9 => JournalRecord::Done { id },
            SESSION => {
                let received = u64::from_le_bytes(body.get(9..17)?.try_into().ok()?);
                let id_len = usize::from(*body.get(17)?);
                if id_len > MAX_SESSION_ID {
                    return None;
                }
                let sid = body.get(18..18 + id_len)?;
                // Version 2: nothing follows the id; version 3: the key.
                let key = match body.get(18 + id_len..)? {
                    [] => None,
                    [0] => None,
                    [n, key @ ..] if usize::from(*n) == KEY_LEN && key.len() == KEY_LEN => {
                        Some(key.try_into().ok()?)
                    }
                    _ => return None,
                };
                JournalRecord::Session {
                    id: sid.to_vec(),
                    key,
                    acked: id,
                    received,
                }
            }
            ACKED if len == 9 => JournalRecord::Acked { id },
            RECEIVED if len == 9 => JournalRecord::Received { count: id },
            _ => return None,
        };
        Some((rec, end))
    }

    /// Appends an ADD record for `message` to `out`; returns its journal
    /// id. `None` when the journal has no id left (ids are not reused, and
    /// `u64::MAX - 1` is the last: only a crafted file recovered with an id
    /// that high gets here); then nothing is appended.
    ///
    /// # Panics
    /// If the message is 4 GiB or larger (a record length is a `u32`).
    pub fn add(&mut self, message: &Message, out: &mut Vec<u8>) -> Option<u64> {
        let id = self.next_id;
        if id == u64::MAX {
            return None;
        }
        self.next_id += 1;
        let flags = [u8::from(message.is_text())];
        encode(
            &[&[ADD], &id.to_le_bytes(), &flags, message.as_bytes()],
            out,
        );
        self.live.insert(id, message.clone());
        self.records += 1;
        Some(id)
    }

    /// Appends a DONE record for `id` to `out` (nothing if it is not live):
    /// the message was given up, not acknowledged.
    pub fn done(&mut self, id: u64, out: &mut Vec<u8>) {
        if self.live.remove(&id).is_some() {
            encode(&[&[DONE], &id.to_le_bytes()], out);
            self.records += 1;
        }
    }

    /// Appends a SESSION record: a new session `id` starts (an empty id:
    /// the journal has no session any more), with its resume key (a
    /// client's journal) or the key's digest (a server's), nothing
    /// acknowledged or received yet. An id longer than 64 bytes (not a
    /// `hookup.v1` id) is recorded as none; no session has no key.
    pub fn session(&mut self, id: &[u8], key: Option<&[u8; KEY_LEN]>, out: &mut Vec<u8>) {
        let id = if id.len() > MAX_SESSION_ID {
            &[][..]
        } else {
            id
        };
        let key = key.filter(|_| !id.is_empty());
        self.session = id.to_vec();
        self.key = key.copied();
        self.acked = 0;
        self.received = 0;
        encode_session(id, key, 0, 0, out);
        self.records += 1;
    }

    /// Appends an ACKED record: the peer acknowledged the oldest message of
    /// the session, journal id `id` (`None`: a message that was never
    /// journaled, which still counts).
    pub fn acked(&mut self, id: Option<u64>, out: &mut Vec<u8>) {
        let id = id.unwrap_or(0);
        self.live.remove(&id);
        self.acked = self.acked.saturating_add(1);
        encode(&[&[ACKED], &id.to_le_bytes()], out);
        self.records += 1;
    }

    /// Appends a RECEIVED record (nothing if the count is unchanged).
    pub fn received(&mut self, count: u64, out: &mut Vec<u8>) {
        if count != self.received {
            self.received = count;
            encode(&[&[RECEIVED], &count.to_le_bytes()], out);
            self.records += 1;
        }
    }

    /// The session id (empty: none recorded).
    pub fn session_id(&self) -> &[u8] {
        &self.session
    }

    /// The session's resume key (or its digest, in a server's journal):
    /// `None` when there is no session, or it was recorded by a version 2
    /// journal, which kept none.
    pub fn session_key(&self) -> Option<&[u8; KEY_LEN]> {
        self.key.as_ref()
    }

    /// Messages of the session the peer acknowledged: the live messages are
    /// its sequence numbers `acked_count() + 1`, … in order.
    pub fn acked_count(&self) -> u64 {
        self.acked
    }

    /// Messages of the session received.
    pub fn received_count(&self) -> u64 {
        self.received
    }

    /// The live messages, oldest first.
    pub fn live(&self) -> impl Iterator<Item = (u64, &Message)> {
        self.live.iter().map(|(id, m)| (*id, m))
    }

    /// Number of live messages.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no message is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Whether rewriting the file would drop many dead records.
    pub fn should_compact(&self) -> bool {
        self.records > 1024 && self.records > 4 * self.live.len()
    }

    /// The full contents of a compacted file in the current version
    /// (header, the session, live ADDs with the same ids). Write it to a new
    /// file and rename it over the old one.
    pub fn snapshot(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        self.records = self.live.len();
        if !self.session.is_empty() || self.acked != 0 || self.received != 0 {
            encode_session(
                &self.session,
                self.key.as_ref(),
                self.acked,
                self.received,
                out,
            );
            self.records += 1;
        }
        for (id, m) in &self.live {
            let flags = [u8::from(m.is_text())];
            encode(&[&[ADD], &id.to_le_bytes(), &flags, m.as_bytes()], out);
        }
        self.version = 3;
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod session_tests;
