//! Tests of the journal as a session uses it.
//
// Compiled only under #[cfg(test)] (see `mod session_tests` in journal.rs), so the
// sans-IO check in .ci/run skips this file like other test modules.

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
    let mut step = |j: &mut Journal, file: &mut Vec<u8>, f: &dyn Fn(&mut Journal, &mut Vec<u8>)| {
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
