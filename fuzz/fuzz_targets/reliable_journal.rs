//! The reliable-session journal format (`hookup_proto::reliable::Journal`)
//! on arbitrary files, and its encoder against its decoder.
//!
//! Input: `[n, ops: n bytes, file…]`: the file is everything after the
//! first `1 + n` bytes; `ops` is read with `arbitrary` as appends to it.
//!
//! Checked:
//! * `Journal::recover(file)` never panics. It refuses the file exactly
//!   when it does not start with a journal magic (`HKJ1`, `HKJ2`, `HKJ3`; a file
//!   shorter than the magic is a torn header when it is a prefix of one).
//! * On success: `valid_len <= file.len()` and `cut == file.len() -
//!   valid_len`; `valid_len` is 0 or ends a record: the records decoded
//!   one by one with `Journal::decode_record` from offset 4 reach exactly
//!   `valid_len`, and the next one is torn or corrupt (or, in a version 1
//!   file, not an ADD or DONE; in a version 2 file, a SESSION with a
//!   resume key; or an ADD whose id is not above every
//!   earlier ADD's, or is `u64::MAX`: ids are handed out in increasing
//!   order, so such a record starts a corrupt tail). The recovered state (session id and key, acked and
//!   received counts, live messages with their ids) is what replaying
//!   those records by the format's rules gives (ADD makes a message live,
//!   DONE and ACKED end it, ACKED also counts one acknowledgement, SESSION
//!   sets the id, the key and both counts, RECEIVED the received count), and
//!   `needs_upgrade` is set exactly for a version 1 or 2 file.
//! * Recovering `file[..valid_len]` gives the same state, the same
//!   `valid_len`, and `cut == 0`.
//! * Appending: the recovered journal (rewritten with `snapshot` first
//!   when it `needs_upgrade`; a file with no valid header starts with
//!   `Journal::header()`) takes the ops (`add`, `done`, `session`,
//!   `acked`, `received`, and `snapshot`, which replaces the file as a
//!   compaction does). `add` returns an id that is not live (or, with no
//!   id left after a file recovered with id `u64::MAX - 1`, none, and
//!   appends nothing). The file then
//!   recovers whole (`cut == 0`) to exactly the in-memory state; cut at
//!   arbitrary lengths it recovers to the state after the last record that
//!   fits, with the rest reported cut. Every snapshot recovers whole to
//!   the state it was taken from, as a version 3 journal.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use hookup_proto::Message;
use hookup_proto::reliable::{Journal, JournalRecord};
use libfuzzer_sys::fuzz_target;

/// Most appended operations per input.
const MAX_OPS: usize = 64;

#[derive(Arbitrary, Debug)]
enum Op {
    Add {
        text: bool,
        data: Vec<u8>,
    },
    /// `done` on a live id (`pick` % live count) or, with none live or
    /// `raw`, on `pick` itself.
    Done {
        pick: u64,
        raw: bool,
    },
    Session(Vec<u8>, Option<[u8; 32]>),
    /// `acked` on the oldest live id, a live id, none, or `pick` itself.
    Acked {
        which: u8,
        pick: u64,
    },
    Received(u64),
    Snapshot,
}

#[derive(Arbitrary, Debug)]
struct Ops {
    /// Lengths (within what is appended) at which to recover a prefix.
    cuts: [u16; 3],
    ops: Vec<Op>,
}

/// What a journal shows: session id, acked and received counts, live
/// messages with their ids, oldest first.
type State = (Vec<u8>, Option<[u8; 32]>, u64, u64, Vec<(u64, Message)>);

fn state(j: &Journal) -> State {
    let live: Vec<_> = j.live().map(|(id, m)| (id, m.clone())).collect();
    assert_eq!(live.len(), j.len());
    assert_eq!(j.is_empty(), live.is_empty());
    (
        j.session_id().to_vec(),
        j.session_key().copied(),
        j.acked_count(),
        j.received_count(),
        live,
    )
}

fn is_magic_prefix(b: &[u8]) -> bool {
    b"HKJ3".starts_with(b) || b"HKJ2".starts_with(b) || b"HKJ1".starts_with(b)
}

/// Replays records by the format's rules (see the module docs of
/// hookup-proto's `reliable/journal.rs`), independently of `recover`.
#[derive(Default)]
struct Model {
    live: std::collections::BTreeMap<u64, Message>,
    session: Vec<u8>,
    key: Option<[u8; 32]>,
    acked: u64,
    received: u64,
    /// The highest ADD id so far.
    last_add: u64,
}

impl Model {
    /// Whether `rec` continues a valid file: an ADD's id must be above
    /// every earlier ADD's (ids start at 1) and below `u64::MAX`.
    fn accepts(&self, rec: &JournalRecord) -> bool {
        match rec {
            JournalRecord::Add { id, .. } => *id > self.last_add && *id != u64::MAX,
            _ => true,
        }
    }

    fn apply(&mut self, rec: JournalRecord) {
        match rec {
            JournalRecord::Add { id, message } => {
                self.last_add = id;
                self.live.insert(id, message);
            }
            JournalRecord::Done { id } => {
                self.live.remove(&id);
            }
            JournalRecord::Session {
                id,
                key,
                acked,
                received,
            } => {
                self.session = id;
                self.key = key;
                self.acked = acked;
                self.received = received;
            }
            JournalRecord::Acked { id } => {
                self.live.remove(&id);
                self.acked = self.acked.saturating_add(1);
            }
            JournalRecord::Received { count } => self.received = count,
            other => panic!("unknown record {other:?}"),
        }
    }

    fn state(&self) -> State {
        (
            self.session.clone(),
            self.key,
            self.acked,
            self.received,
            self.live.iter().map(|(id, m)| (*id, m.clone())).collect(),
        )
    }
}

/// Checks one recovery of `file`; returns the journal, `valid_len` and
/// the state, or `None` when the file is refused.
fn check_recover(file: &[u8]) -> Option<(Journal, usize, State)> {
    let refused = if file.len() >= 4 {
        !matches!(&file[..4], b"HKJ1" | b"HKJ2" | b"HKJ3")
    } else {
        !is_magic_prefix(file)
    };
    let r = match Journal::recover(file) {
        Ok(r) => r,
        Err(e) => {
            assert!(refused, "refused a file with a journal magic: {e}");
            return None;
        }
    };
    assert!(!refused, "accepted a file without a journal magic");
    assert!(r.valid_len <= file.len());
    assert_eq!(r.cut, file.len() - r.valid_len, "cut is not the rest");
    let j = r.journal;
    let st = state(&j);
    // The records one by one, replayed by the format's rules.
    let mut model = Model::default();
    let v1 = file.len() >= 4 && &file[..4] == b"HKJ1";
    let v2 = file.len() >= 4 && &file[..4] == b"HKJ2";
    if file.len() < 4 {
        assert_eq!(r.valid_len, 0, "a torn header is not valid");
    } else {
        let mut pos = 4;
        while let Some((rec, n)) = Journal::decode_record(&file[pos..]) {
            assert!(n >= 9 && pos + n <= file.len(), "record length {n}");
            let v1_record = matches!(rec, JournalRecord::Add { .. } | JournalRecord::Done { .. });
            let keyed = matches!(rec, JournalRecord::Session { key: Some(_), .. });
            if (v1 && !v1_record) || (v2 && keyed) || !model.accepts(&rec) {
                break;
            }
            model.apply(rec);
            pos += n;
        }
        assert_eq!(r.valid_len, pos, "valid_len is not where the records end");
    }
    assert_eq!(
        st,
        model.state(),
        "recovered state differs from the records"
    );
    assert_eq!(j.needs_upgrade(), v1 || v2, "needs_upgrade");
    Some((j, r.valid_len, st))
}

fn pick_live(j: &Journal, pick: u64) -> Option<u64> {
    let n = j.len() as u64;
    (n > 0).then(|| j.live().nth((pick % n) as usize).expect("in range").0)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let (op_bytes, file) = rest.split_at(n);

    let Some((mut j, valid_len, st)) = check_recover(file) else {
        return;
    };
    // The valid prefix alone: the same, with nothing cut.
    let (j2, valid2, st2) = check_recover(&file[..valid_len]).expect("valid prefix refused");
    assert_eq!(valid2, valid_len, "valid prefix recovers shorter");
    assert_eq!(st2, st, "valid prefix recovers another state");
    assert_eq!(j2.needs_upgrade(), j.needs_upgrade());
    drop(j2);

    let Ok(Ops { ops, cuts }) = Ops::arbitrary_take_rest(Unstructured::new(op_bytes)) else {
        return;
    };

    // The file the ops append to.
    let mut out = if valid_len == 0 {
        Journal::header().to_vec()
    } else if j.needs_upgrade() {
        let mut snap = Vec::new();
        j.snapshot(&mut snap);
        assert!(!j.needs_upgrade());
        snap
    } else {
        file[..valid_len].to_vec()
    };
    assert_eq!(state(&j), st, "snapshot changed the state");
    // (file length, state) after each record appended since the last
    // snapshot, for the prefix checks.
    let mut history = vec![(out.len(), st)];
    for op in ops.into_iter().take(MAX_OPS) {
        let before = out.len();
        match op {
            Op::Add { text, data } => {
                let m = if text {
                    Message::text(String::from_utf8_lossy(&data).into_owned())
                } else {
                    Message::binary(data)
                };
                let live: Vec<u64> = j.live().map(|(id, _)| id).collect();
                match j.add(&m, &mut out) {
                    Some(id) => {
                        assert!(!live.contains(&id), "add gave id {id}, already live");
                        assert!(id < u64::MAX, "add gave id u64::MAX");
                    }
                    // No id left (a file recovered with id u64::MAX - 1):
                    // nothing appended, nothing changed.
                    None => {
                        assert_eq!(out.len(), before, "appended without an id");
                        assert_eq!(j.live().map(|(id, _)| id).collect::<Vec<_>>(), live);
                    }
                }
            }
            Op::Done { pick, raw } => {
                let id = match pick_live(&j, pick) {
                    Some(id) if !raw => id,
                    _ => pick,
                };
                j.done(id, &mut out);
            }
            Op::Session(id, key) => j.session(&id, key.as_ref(), &mut out),
            Op::Acked { which, pick } => {
                let id = match which % 4 {
                    0 => j.live().next().map(|(id, _)| id),
                    1 => pick_live(&j, pick),
                    2 => None,
                    _ => Some(pick),
                };
                j.acked(id, &mut out);
            }
            Op::Received(count) => j.received(count, &mut out),
            Op::Snapshot => {
                let st = state(&j);
                let mut snap = Vec::new();
                j.snapshot(&mut snap);
                assert_eq!(state(&j), st, "snapshot changed the state");
                let (jr, valid, rst) = check_recover(&snap).expect("snapshot refused");
                assert_eq!(valid, snap.len(), "snapshot does not recover whole");
                assert_eq!(rst, st, "snapshot recovers another state");
                assert!(!jr.needs_upgrade());
                out = snap;
                history.clear();
                history.push((out.len(), st));
                continue;
            }
        }
        if out.len() != before {
            let n = Journal::decode_record(&out[before..]).map(|(_, n)| n);
            assert_eq!(
                n,
                Some(out.len() - before),
                "appended bytes are not one record"
            );
        }
        if out.len() != before {
            history.push((out.len(), state(&j)));
        }
    }
    let (_, valid, rst) = check_recover(&out).expect("appended file refused");
    assert_eq!(valid, out.len(), "appended file does not recover whole");
    assert_eq!(rst, state(&j), "appended file recovers another state");
    // Torn at arbitrary lengths within what was appended.
    let base = history[0].0;
    for c in cuts {
        let at = base + usize::from(c) % (out.len() - base + 1);
        let (_, valid, rst) = check_recover(&out[..at]).expect("prefix refused");
        let (len, want) = history
            .iter()
            .rev()
            .find(|(len, _)| *len <= at)
            .expect("base fits");
        assert_eq!(valid, *len, "prefix of {at} bytes: valid_len");
        assert_eq!(&rst, want, "prefix of {at} bytes: state");
    }
});
