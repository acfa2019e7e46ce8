//! The journal's on-disk format, as pure functions over bytes.
//!
//! The adapters own the file; this module decides what goes in it and what
//! a file read back means. A journal keeps one end of a session across
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
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, Journal) {
        let mut j = Journal::new();
        let mut file = Journal::header().to_vec();
        let a = j.add(&Message::text("one"), &mut file).expect("ids left");
        j.add(&Message::binary(vec![0u8, 255, 7]), &mut file);
        j.done(a, &mut file);
        j.add(&Message::text("three"), &mut file);
        (file, j)
    }

    #[test]
    fn recovers_live_messages_in_order() {
        let (file, _) = sample();
        let r = Journal::recover(&file).unwrap();
        assert_eq!(r.valid_len, file.len());
        assert_eq!(r.cut, 0);
        let live: Vec<_> = r.journal.live().map(|(_, m)| m.clone()).collect();
        assert_eq!(
            live,
            [Message::binary(vec![0u8, 255, 7]), Message::text("three")]
        );
    }

    #[test]
    fn torn_or_corrupt_tail_is_cut_at_every_length() {
        let (file, _) = sample();
        let full = Journal::recover(&file).unwrap();
        for cut in 0..file.len() {
            let r = Journal::recover(&file[..cut]).unwrap();
            assert!(r.valid_len <= cut);
            assert_eq!(r.valid_len + r.cut, cut);
            assert!(r.journal.len() <= full.journal.len() + 1);
        }
        let mut bad = file.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xFF;
        let r = Journal::recover(&bad).unwrap();
        assert!(r.cut > 0);
        assert_eq!(r.journal.len(), 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(
            Journal::recover(b"garbage!").unwrap_err(),
            JournalError::NotAJournal
        );
        let mut g = Journal::header().to_vec();
        g.extend_from_slice(&[0xFF; 64]);
        let r = Journal::recover(&g).unwrap();
        assert_eq!((r.valid_len, r.cut, r.journal.len()), (4, 64, 0));
    }

    /// ADD records must come with increasing ids below `u64::MAX` (what
    /// `add` writes): one that does not is the start of a corrupt tail,
    /// cut off, and later ids stay unique.
    #[test]
    fn add_ids_out_of_order_or_at_the_end_are_a_corrupt_tail() {
        let add = |id: u64, text: &str| {
            let mut out = Vec::new();
            encode(
                &[&[ADD], &id.to_le_bytes(), &[1], text.as_bytes()],
                &mut out,
            );
            out
        };
        for bad in [5, 3, 0, u64::MAX] {
            let mut f = Journal::header().to_vec();
            f.extend_from_slice(&add(5, "kept"));
            let good = f.len();
            f.extend_from_slice(&add(bad, "crafted"));
            f.extend_from_slice(&add(9, "after"));
            let r = Journal::recover(&f).unwrap();
            assert_eq!((r.valid_len, r.cut), (good, f.len() - good), "id {bad}");
            let mut j = r.journal;
            assert_eq!(j.len(), 1);
            let a = j.add(&Message::text("a"), &mut Vec::new());
            let b = j.add(&Message::text("b"), &mut Vec::new());
            assert_eq!((a, b), (Some(6), Some(7)), "id {bad}");
            assert_eq!(j.len(), 3);
        }
        // The last ids: `u64::MAX - 1` is recovered; after it no id is
        // left, and `add` says so instead of reusing one.
        let mut f = Journal::header().to_vec();
        f.extend_from_slice(&add(u64::MAX - 2, "last but one"));
        let mut j = Journal::recover(&f).unwrap().journal;
        let mut out = Vec::new();
        assert_eq!(j.add(&Message::text("x"), &mut out), Some(u64::MAX - 1));
        let written = out.len();
        assert_eq!(j.add(&Message::text("y"), &mut out), None);
        assert_eq!(out.len(), written, "nothing appended");
        assert_eq!(j.len(), 2);
        f.extend_from_slice(&out);
        assert_eq!(Journal::recover(&f).unwrap().journal.len(), 2);
    }

    #[test]
    fn snapshot_keeps_live_records_and_ids() {
        let (_, mut j) = sample();
        let mut snap = Vec::new();
        j.snapshot(&mut snap);
        let r = Journal::recover(&snap).unwrap();
        let a: Vec<_> = r.journal.live().map(|(id, m)| (id, m.clone())).collect();
        let b: Vec<_> = j.live().map(|(id, m)| (id, m.clone())).collect();
        assert_eq!(a, b);
        // New ids continue after the recovered ones.
        let mut jr = r.journal;
        let id = jr
            .add(&Message::text("x"), &mut Vec::new())
            .expect("ids left");
        assert!(b.iter().all(|(old, _)| *old < id));
    }
}

#[cfg(test)]
mod session_tests {
    use super::*;

    /// The state a journal shows: session, counters, live messages.
    type State = (Vec<u8>, Option<[u8; 32]>, u64, u64, Vec<(u64, Message)>);

    fn state(j: &Journal) -> State {
        (
            j.session_id().to_vec(),
            j.session_key().copied(),
            j.acked_count(),
            j.received_count(),
            j.live().map(|(id, m)| (id, m.clone())).collect(),
        )
    }

    /// A file with every kind of record, and the state after each record
    /// (with the file length at which it is complete).
    fn sample() -> (Vec<u8>, Vec<(usize, State)>) {
        let mut j = Journal::new();
        let mut file = Journal::header().to_vec();
        let mut states = vec![(file.len(), state(&j))];
        let mut step =
            |j: &mut Journal, file: &mut Vec<u8>, f: &dyn Fn(&mut Journal, &mut Vec<u8>)| {
                f(j, file);
                states.push((file.len(), state(j)));
            };
        step(&mut j, &mut file, &|j, o| {
            j.add(&Message::text("early"), o);
        });
        step(&mut j, &mut file, &|j, o| {
            j.session(b"sess-1", Some(&[0xAB; 32]), o)
        });
        step(&mut j, &mut file, &|j, o| {
            j.add(&Message::binary(vec![0u8, 0xFF, b'\n', 0]), o);
        });
        step(&mut j, &mut file, &|j, o| {
            j.add(&Message::text("three"), o);
        });
        step(&mut j, &mut file, &|j, o| j.acked(Some(1), o));
        step(&mut j, &mut file, &|j, o| j.received(7, o));
        step(&mut j, &mut file, &|j, o| j.acked(None, o));
        step(&mut j, &mut file, &|j, o| j.done(3, o));
        step(&mut j, &mut file, &|j, o| j.received(9, o));
        (file, states)
    }

    #[test]
    fn session_records_round_trip() {
        let (file, states) = sample();
        let r = Journal::recover(&file).unwrap();
        assert_eq!((r.valid_len, r.cut), (file.len(), 0));
        assert!(!r.journal.needs_upgrade());
        let want = &states.last().unwrap().1;
        assert_eq!(&state(&r.journal), want);
        assert_eq!(r.journal.session_id(), b"sess-1");
        assert_eq!(r.journal.session_key(), Some(&[0xAB; 32]));
        assert_eq!(
            (r.journal.acked_count(), r.journal.received_count()),
            (2, 9)
        );
        let live: Vec<_> = r.journal.live().map(|(id, _)| id).collect();
        assert_eq!(live, [2]);
    }

    #[test]
    fn every_prefix_recovers_the_state_of_its_complete_records() {
        let (file, states) = sample();
        for cut in 0..=file.len() {
            let r = Journal::recover(&file[..cut]).unwrap();
            // The last state whose records are all inside the prefix.
            let (len, want) = states
                .iter()
                .rev()
                .find(|(len, _)| *len <= cut)
                .cloned()
                .unwrap_or((0, state(&Journal::new())));
            assert_eq!(r.valid_len, len, "prefix of {cut} bytes");
            assert_eq!(r.cut, cut - len, "prefix of {cut} bytes");
            assert_eq!(state(&r.journal), want, "prefix of {cut} bytes");
        }
    }

    #[test]
    fn byte_by_byte_decoding_matches_whole() {
        let (file, _) = sample();
        // Records decoded one at a time from a buffer grown a byte at a time.
        let mut buf = Vec::new();
        let mut pos = 4;
        let mut recs = Vec::new();
        for &b in &file {
            buf.push(b);
            if buf.len() < 4 {
                continue;
            }
            while let Some((rec, n)) = Journal::decode_record(&buf[pos..]) {
                recs.push(rec);
                pos += n;
            }
        }
        assert_eq!(pos, file.len());
        assert_eq!(recs.len(), 9);
        assert!(
            matches!(&recs[1], JournalRecord::Session { id, key: Some(k), acked: 0, received: 0 } if id == b"sess-1" && *k == [0xAB; 32])
        );
        assert_eq!(recs[5], JournalRecord::Received { count: 7 });
        assert_eq!(recs[6], JournalRecord::Acked { id: 0 });
    }

    #[test]
    fn corrupt_session_records_are_cut() {
        let mut base = Journal::header().to_vec();
        let mut j = Journal::new();
        j.add(&Message::text("kept"), &mut base);
        // A SESSION whose id length disagrees with the body, with a valid CRC.
        let mut bad = base.clone();
        encode(
            &[
                &[SESSION],
                &0u64.to_le_bytes(),
                &0u64.to_le_bytes(),
                &[5],
                b"abc",
            ],
            &mut bad,
        );
        // An id longer than 64 bytes.
        let mut long = base.clone();
        let id = [7u8; 65];
        encode(
            &[
                &[SESSION],
                &0u64.to_le_bytes(),
                &0u64.to_le_bytes(),
                &[65],
                &id,
            ],
            &mut long,
        );
        // ACKED and RECEIVED with trailing bytes; an unknown kind.
        let mut trailing = base.clone();
        encode(&[&[ACKED], &1u64.to_le_bytes(), &[0]], &mut trailing);
        let mut unknown = base.clone();
        encode(&[&[9], &1u64.to_le_bytes()], &mut unknown);
        for (what, f) in [
            ("id length", bad),
            ("long id", long),
            ("trailing", trailing),
            ("unknown", unknown),
        ] {
            let r = Journal::recover(&f).unwrap();
            assert_eq!(r.valid_len, base.len(), "{what}");
            assert!(r.cut > 0, "{what}");
            assert_eq!(r.journal.len(), 1, "{what}");
            assert!(r.journal.session_id().is_empty(), "{what}");
        }
        // Garbage after valid records: cut, nothing panics.
        for fill in [0x00u8, 0xFF, 0x03] {
            let mut g = base.clone();
            g.extend(std::iter::repeat_n(fill, 100));
            let r = Journal::recover(&g).unwrap();
            assert_eq!((r.valid_len, r.cut), (base.len(), 100));
        }
    }

    #[test]
    fn version_1_files_are_read_and_upgraded() {
        // What hookup 0.1 wrote: HKJ1, ADD and DONE only.
        let (v2, _) = {
            let mut j = Journal::new();
            let mut f = Vec::new();
            let a = j.add(&Message::text("one"), &mut f).expect("ids left");
            j.add(&Message::text("two"), &mut f);
            j.done(a, &mut f);
            (f, j)
        };
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&v2);
        let r = Journal::recover(&v1).unwrap();
        assert_eq!((r.valid_len, r.cut), (v1.len(), 0));
        assert!(r.journal.needs_upgrade());
        let live: Vec<_> = r.journal.live().map(|(_, m)| m.clone()).collect();
        assert_eq!(live, [Message::text("two")]);
        // A version 2 record in a version 1 file is corrupt.
        let mut mixed = v1.clone();
        let mut j = Journal::new();
        j.session(b"s", None, &mut mixed);
        let r = Journal::recover(&mixed).unwrap();
        assert_eq!((r.valid_len, r.cut), (v1.len(), mixed.len() - v1.len()));
        // The snapshot is version 2.
        let mut jr = r.journal;
        let mut snap = Vec::new();
        jr.snapshot(&mut snap);
        assert!(!jr.needs_upgrade());
        assert_eq!(&snap[..4], b"HKJ3");
        assert!(!Journal::recover(&snap).unwrap().journal.needs_upgrade());
        // Torn headers of either version.
        for h in [&b"HK"[..], b"HKJ"] {
            assert_eq!(Journal::recover(h).unwrap().cut, h.len());
        }
        assert!(Journal::recover(b"HKX").is_err());
    }

    #[test]
    fn snapshot_keeps_the_session() {
        let (file, _) = sample();
        let mut j = Journal::recover(&file).unwrap().journal;
        let before = state(&j);
        let mut snap = Vec::new();
        j.snapshot(&mut snap);
        let r = Journal::recover(&snap).unwrap();
        assert_eq!(state(&r.journal), before);
        assert!(snap.len() < file.len());
        // Clearing the session.
        let mut j = r.journal;
        let mut more = snap.clone();
        j.session(b"", Some(&[1; 32]), &mut more);
        let r = Journal::recover(&more).unwrap();
        assert!(r.journal.session_id().is_empty());
        assert_eq!(r.journal.session_key(), None, "no session, no key");
        assert_eq!(
            (r.journal.acked_count(), r.journal.received_count()),
            (0, 0)
        );
        assert_eq!(r.journal.len(), 1);
        // An unchanged count writes nothing.
        let mut out = Vec::new();
        j.received(0, &mut out);
        assert!(out.is_empty());
    }

    /// Version 2 files (SESSION without a key) are read, their session
    /// without a key, and upgraded; a key-carrying SESSION in one is a
    /// corrupt tail. A SESSION with a key of another length is corrupt.
    #[test]
    fn version_2_files_are_read_and_upgraded() {
        let mut v2 = MAGIC_V2.to_vec();
        let mut j = Journal::new();
        j.add(&Message::text("one"), &mut v2);
        encode(
            &[
                &[SESSION],
                &3u64.to_le_bytes(),
                &4u64.to_le_bytes(),
                &[2],
                b"s2",
            ],
            &mut v2,
        );
        let r = Journal::recover(&v2).unwrap();
        assert_eq!((r.valid_len, r.cut), (v2.len(), 0));
        assert!(r.journal.needs_upgrade());
        assert_eq!(r.journal.session_id(), b"s2");
        assert_eq!(r.journal.session_key(), None);
        assert_eq!(
            (r.journal.acked_count(), r.journal.received_count()),
            (3, 4)
        );
        let mut keyed = v2.clone();
        let good = keyed.len();
        encode_session(b"s3", Some(&[7; 32]), 0, 0, &mut keyed);
        let r = Journal::recover(&keyed).unwrap();
        assert_eq!((r.valid_len, r.cut), (good, keyed.len() - good));
        let mut jr = r.journal;
        let mut snap = Vec::new();
        jr.snapshot(&mut snap);
        assert_eq!(&snap[..4], b"HKJ3");
        let r = Journal::recover(&snap).unwrap();
        assert!(!r.journal.needs_upgrade());
        assert_eq!(r.journal.session_id(), b"s2");
        // Key lengths other than 0 and 32.
        for (n, len) in [(16u8, 16usize), (32, 31), (32, 33), (0, 1)] {
            let mut f = Journal::header().to_vec();
            let base = f.len();
            let key = vec![1u8; len];
            encode(
                &[
                    &[SESSION],
                    &0u64.to_le_bytes(),
                    &0u64.to_le_bytes(),
                    &[1],
                    b"x",
                    &[n],
                    &key,
                ],
                &mut f,
            );
            let r = Journal::recover(&f).unwrap();
            assert_eq!(r.valid_len, base, "key_len {n}, {len} bytes");
        }
    }
}
