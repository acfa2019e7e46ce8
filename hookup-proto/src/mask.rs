//! Payload masking (RFC 6455 §5.3), in place and word-at-a-time.
//!
//! The mask is applied eight bytes at a time with a rotated 64-bit key; the
//! compiler vectorises the inner loop of 32-byte blocks. No `unsafe` code.

/// XORs `buf` in place with the 4-byte `key`, starting at byte `offset` of the
/// masked payload (so a payload can be unmasked in several pieces).
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // The key as it lines up with `buf[0..4]`: rotated by `offset`. Words
    // are loaded and stored in native byte order, so the key words are
    // built the same way: their bytes in memory order are key, key, ...
    let shift = 8 * (offset % 4) as u32;
    let k32 = if cfg!(target_endian = "little") {
        u32::from_le_bytes(key).rotate_right(shift)
    } else {
        u32::from_be_bytes(key).rotate_left(shift)
    };
    let key = k32.to_ne_bytes();
    // Both halves are `k32`, so this is right in either byte order.
    let k64 = (u64::from(k32) << 32) | u64::from(k32);
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for word in block.chunks_exact_mut(8) {
            xor_word(word, k64);
        }
    }
    let rest = blocks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for word in &mut words {
        xor_word(word, k64);
    }
    let rest = words.into_remainder();
    if rest.len() >= 4 {
        let (word, rest) = rest.split_at_mut(4);
        let mut w = [0u8; 4];
        w.copy_from_slice(word);
        word.copy_from_slice(&(u32::from_ne_bytes(w) ^ k32).to_ne_bytes());
        for (b, k) in rest.iter_mut().zip(key) {
            *b ^= k;
        }
    } else {
        for (b, k) in rest.iter_mut().zip(key) {
            *b ^= k;
        }
    }
}

#[inline(always)]
fn xor_word(word: &mut [u8], k64: u64) {
    let mut w = [0u8; 8];
    w.copy_from_slice(word);
    word.copy_from_slice(&(u64::from_ne_bytes(w) ^ k64).to_ne_bytes());
}

/// Byte-at-a-time reference implementation, for tests and benchmarks.
//
// Not behind `#[cfg(any(test, fuzzing))]`: the `mask_*` groups of
// `benches/proto.rs` compare `apply_mask` against it, and benches build the
// library without `cfg(test)`. Hidden from the docs instead; not part of
// the supported API.
#[doc(hidden)]
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fast_mask_matches_bytewise(data in proptest::collection::vec(any::<u8>(), 0..300),
                                      key in any::<[u8; 4]>(), offset in 0usize..8) {
            let mut a = data.clone();
            let mut b = data.clone();
            apply_mask(&mut a, key, offset);
            apply_mask_bytewise(&mut b, key, offset);
            prop_assert_eq!(&a, &b);
            apply_mask(&mut a, key, offset);
            prop_assert_eq!(a, data);
        }

        #[test]
        fn masking_in_pieces_equals_masking_whole(data in proptest::collection::vec(any::<u8>(), 0..300),
                                                   key in any::<[u8; 4]>(), cut in 0usize..300) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            prop_assert_eq!(whole, pieces);
        }
    }
}
