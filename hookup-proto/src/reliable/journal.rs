//! The outbox journal's on-disk format, as pure functions over bytes.
//!
//! The adapters own the file; this module decides what goes in it and what
//! a file read back means. A journal is the magic `HKJ1` followed by
//! records, each `length: u32 LE | crc32: u32 LE | body`, the CRC-32 (IEEE)
//! taken over the body. A body is `kind: u8 | id: u64 LE`, then for kind 1
//! (ADD) `flags: u8` (bit 0: text) and the payload; kind 2 (DONE) has no more.
//! A message is live from its ADD until its DONE. Recovery keeps every
//! record up to the first one that is torn (runs past the end) or corrupt
//! (bad CRC, unknown kind): that tail is cut off and reported, never a panic.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

use crate::message::{Message, Utf8Bytes};

const MAGIC: &[u8; 4] = b"HKJ1";
const ADD: u8 = 1;
const DONE: u8 = 2;
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
    /// The peer acknowledged it (or it was given up).
    Done {
        /// Journal id.
        id: u64,
    },
}

/// A journal file that cannot be used at all.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalError {
    /// The file does not start with the journal magic.
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
#[derive(Debug, Default)]
pub struct Journal {
    live: BTreeMap<u64, Message>,
    next_id: u64,
    records: usize,
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

impl Journal {
    /// An empty journal; write [`Journal::header`] to a new file first.
    pub fn new() -> Self {
        Self {
            live: BTreeMap::new(),
            next_id: 1,
            records: 0,
        }
    }

    /// The bytes a journal file starts with.
    pub fn header() -> &'static [u8] {
        MAGIC
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
            if MAGIC.starts_with(file) {
                return Ok(Recovery {
                    journal: Self::new(),
                    valid_len: 0,
                    cut: file.len(),
                });
            }
            return Err(JournalError::NotAJournal);
        }
        if &file[..4] != MAGIC {
            return Err(JournalError::NotAJournal);
        }
        let mut j = Self::new();
        let mut pos = 4;
        while let Some((rec, n)) = Self::decode_record(&file[pos..]) {
            match rec {
                JournalRecord::Add { id, message } => {
                    // `saturating_add`: a crafted record with id u64::MAX
                    // must not overflow.
                    j.next_id = j.next_id.max(id.saturating_add(1));
                    j.live.insert(id, message);
                }
                JournalRecord::Done { id } => {
                    j.live.remove(&id);
                }
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
            _ => return None,
        };
        Some((rec, end))
    }

    /// Appends an ADD record for `message` to `out`; returns its journal id.
    ///
    /// # Panics
    /// If the message is 4 GiB or larger (a record length is a `u32`).
    pub fn add(&mut self, message: &Message, out: &mut Vec<u8>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let flags = [u8::from(message.is_text())];
        encode(
            &[&[ADD], &id.to_le_bytes(), &flags, message.as_bytes()],
            out,
        );
        self.live.insert(id, message.clone());
        self.records += 1;
        id
    }

    /// Appends a DONE record for `id` to `out` (nothing if it is not live).
    pub fn done(&mut self, id: u64, out: &mut Vec<u8>) {
        if self.live.remove(&id).is_some() {
            encode(&[&[DONE], &id.to_le_bytes()], out);
            self.records += 1;
        }
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

    /// The full contents of a compacted file (header and live ADDs, same
    /// ids). Write it to a new file and rename it over the old one.
    pub fn snapshot(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        for (id, m) in &self.live {
            let flags = [u8::from(m.is_text())];
            encode(&[&[ADD], &id.to_le_bytes(), &flags, m.as_bytes()], out);
        }
        self.records = self.live.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, Journal) {
        let mut j = Journal::new();
        let mut file = Journal::header().to_vec();
        let a = j.add(&Message::text("one"), &mut file);
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
        let id = jr.add(&Message::text("x"), &mut Vec::new());
        assert!(b.iter().all(|(old, _)| *old < id));
    }
}
