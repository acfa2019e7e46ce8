//! A flood of new sessions must not evict sessions parked before it (#14).

use std::time::{Duration, Instant};

use hookup_proto::reliable::{ResumeKey, SessionStore, StoreConfig};

#[test]
fn session_flood_evicts_itself_not_earlier_sessions() {
    let mut config = StoreConfig::default();
    config.max_sessions = 10;
    let mut store = SessionStore::new(config, [1; 32]);
    let t0 = Instant::now();
    // Five legitimate sessions, parked; two of them resumed once since.
    let mut legit: Vec<(Vec<u8>, ResumeKey)> = Vec::new();
    for _ in 0..5 {
        let (state, _) = store.open(&[], None, t0).unwrap();
        let key = state.resume_key().unwrap().clone();
        legit.push((state.id().to_vec(), key));
        store.park(state, t0);
    }
    for (id, key) in &legit[..2] {
        let (state, resumed) = store.open(id, Some(key), t0).unwrap();
        assert!(resumed);
        store.park(state, t0 + Duration::from_millis(1));
    }
    // The flood: 1,000 new sessions, each parked at once.
    for i in 0..1000u64 {
        let now = t0 + Duration::from_millis(2 + i);
        let (state, _) = store.open(&[], None, now).unwrap();
        store.park(state, now);
    }
    assert!(store.parked() <= 10);
    let now = t0 + Duration::from_secs(2);
    for (id, key) in &legit {
        let (state, resumed) = store.open(id, Some(key), now).unwrap();
        assert!(resumed, "a session parked before the flood was evicted");
        assert_eq!(state.id(), &id[..]);
        store.park(state, now);
    }
}
