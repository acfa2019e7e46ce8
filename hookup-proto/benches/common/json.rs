//! Compressible JSON test messages, shared by hookup-proto's deflate bench
//! and the echo benchmark's load generator (bench/src/bin/load.rs includes
//! this file by path).

/// Compressible JSON of at least `n` bytes, different for each `seed`.
pub(crate) fn json(n: usize, seed: u64) -> String {
    let mut s = String::from("[");
    let mut i = seed * 1000;
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while s.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!(
            r#"{{"id":{i},"user":"user{}","type":"{}","price":{}.{:02},"qty":{},"ts":{},"tags":["a","bb","ccc"],"ok":{}}},"#,
            x % 1000,
            if x.is_multiple_of(3) { "trade" } else { "quote" },
            x % 10_000,
            (x >> 20) % 100,
            (x >> 30) % 500,
            1_700_000_000_000u64 + i * 137,
            x.is_multiple_of(2)
        ));
        i += 1;
    }
    s.truncate(n.max(2) - 1);
    s.push(']');
    s
}
