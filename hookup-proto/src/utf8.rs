//! Incremental UTF-8 validation across fragment and read boundaries.
//!
//! Fails as soon as the bytes seen so far cannot be the prefix of valid UTF-8
//! (Autobahn 6.4.x "fail fast"), using `simdutf8` for the bulk of the work.

/// State of an incremental validator: at most three bytes of an incomplete
/// code point carried over from the previous chunk.
#[derive(Clone, Debug, Default)]
pub(crate) struct Utf8Validator {
    carry: [u8; 4],
    carry_len: u8,
}

/// The input is not a prefix of valid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Invalid;

fn seq_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

/// Below this length an ASCII check (a few word operations) comes first:
/// `simdutf8` hands inputs shorter than its 64-byte block to
/// `core::str::from_utf8`, which goes byte by byte on short input.
const SHORT: usize = 64;

/// Validates `chunk`; `Ok(n)` is the length of the incomplete tail (0..=3)
/// that may still become valid.
///
/// The last code point is split off first when it is incomplete, so the
/// body is validated once, by the fast `simdutf8::basic` validator, even
/// when a read or a fragment ends inside a character.
#[inline]
fn validate_prefix(chunk: &[u8]) -> Result<usize, Invalid> {
    if chunk.len() < SHORT && chunk.is_ascii() {
        return Ok(0);
    }
    let tail = incomplete_tail_len(chunk);
    let (body, tail_bytes) = chunk.split_at(chunk.len() - tail);
    if simdutf8::basic::from_utf8(body).is_err() {
        return Err(Invalid);
    }
    match std::str::from_utf8(tail_bytes) {
        Ok(_) => Ok(0),
        // An incomplete but so far valid code point.
        Err(e) if e.error_len().is_none() => Ok(tail),
        Err(_) => Err(Invalid),
    }
}

/// The length of the last code point of `chunk` when its lead byte is in
/// the last three bytes and announces more bytes than follow it; else 0
/// (then the whole chunk is validated as complete text).
#[inline]
fn incomplete_tail_len(chunk: &[u8]) -> usize {
    for i in 1..=chunk.len().min(3) {
        let b = chunk[chunk.len() - i];
        if b & 0xC0 != 0x80 {
            // Not a continuation byte: the last code point starts here.
            return if seq_len(b) > i { i } else { 0 };
        }
    }
    0
}

impl Utf8Validator {
    /// Feeds the next bytes of the text. `last` says the text ends here.
    #[inline]
    pub(crate) fn feed(&mut self, chunk: &[u8], last: bool) -> Result<(), Invalid> {
        // Short ASCII text (the common small message) in a few word operations.
        if self.carry_len == 0 && chunk.len() < SHORT && chunk.is_ascii() {
            return Ok(());
        }
        self.feed_slow(chunk, last)
    }

    fn feed_slow(&mut self, mut chunk: &[u8], last: bool) -> Result<(), Invalid> {
        if self.carry_len > 0 {
            let have = usize::from(self.carry_len);
            let need = seq_len(self.carry[0]);
            let take = (need - have).min(chunk.len());
            self.carry[have..have + take].copy_from_slice(&chunk[..take]);
            let total = have + take;
            chunk = &chunk[take..];
            let tail = validate_prefix(&self.carry[..total])?;
            if tail == 0 {
                self.carry_len = 0;
            } else {
                self.carry_len = total as u8;
                debug_assert!(chunk.is_empty());
                return if last { Err(Invalid) } else { Ok(()) };
            }
        }
        let tail = validate_prefix(chunk)?;
        if tail > 0 {
            if last {
                return Err(Invalid);
            }
            self.carry[..tail].copy_from_slice(&chunk[chunk.len() - tail..]);
            self.carry_len = tail as u8;
        }
        Ok(())
    }

    /// Forgets any carried bytes (at the start of a new message).
    pub(crate) fn reset(&mut self) {
        self.carry_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_feed(data: &[u8], cuts: &[usize]) -> Result<(), Invalid> {
        let mut v = Utf8Validator::default();
        let mut start = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        for c in cuts {
            v.feed(&data[start..c], false)?;
            start = c;
        }
        v.feed(&data[start..], true)
    }

    #[test]
    fn fails_fast_on_invalid_prefix() {
        let mut v = Utf8Validator::default();
        // "κόσμε" then 0xED 0xA0 0x80 (a surrogate): invalid as soon as 0xA0 arrives.
        assert!(v.feed("κόσμε".as_bytes(), false).is_ok());
        assert!(v.feed(&[0xED], false).is_ok());
        assert_eq!(v.feed(&[0xA0], false), Err(Invalid));
    }

    #[test]
    fn incomplete_at_end_is_invalid() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xE2, 0x82], true), Err(Invalid));
    }

    proptest! {
        #[test]
        fn agrees_with_std_under_any_split(data in proptest::collection::vec(any::<u8>(), 0..64),
                                           cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
            let expected = std::str::from_utf8(&data).is_ok();
            prop_assert_eq!(split_feed(&data, &cuts).is_ok(), expected);
        }

        #[test]
        fn valid_strings_pass_under_any_split(s in "\\PC{0,40}", cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
            prop_assert!(split_feed(s.as_bytes(), &cuts).is_ok());
        }
    }
}
