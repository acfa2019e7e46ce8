//! Tests of the journal record format.
//
// Compiled only under #[cfg(test)] (see `mod tests` in journal.rs), so the
// sans-IO check in .ci/run skips this file like other test modules.

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
