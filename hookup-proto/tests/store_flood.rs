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

/// Issue #14: new sessions from one address stop at its quota
/// (`StoreConfig::max_sessions_per_ip`); other addresses, and resuming,
/// are untouched; a session gone for good frees its place. An IPv6 /64
/// counts as one address.
#[test]
fn new_sessions_are_refused_beyond_the_per_ip_quota() {
    use hookup_proto::reliable::SessionError;
    use std::net::IpAddr;
    let mut config = StoreConfig::default();
    config.max_sessions_per_ip = 3;
    let mut store = SessionStore::new(config, [2; 32]);
    let t0 = Instant::now();
    let flooder: IpAddr = "192.0.2.1".parse().unwrap();
    let other: IpAddr = "192.0.2.2".parse().unwrap();
    let mut mine = Vec::new();
    for _ in 0..3 {
        let (state, _) = store.open_from(&[], None, t0, Some(flooder)).unwrap();
        mine.push((state.id().to_vec(), state.resume_key().unwrap().clone()));
        store.park(state, t0);
    }
    assert_eq!(store.sessions_from(flooder), 3);
    for _ in 0..100 {
        let refused = store.open_from(&[], None, t0, Some(flooder));
        assert_eq!(refused.err(), Some(SessionError::TooManySessions));
    }
    // Another address still gets a session; the flooder's sessions resume.
    let (state, _) = store.open_from(&[], None, t0, Some(other)).unwrap();
    store.park(state, t0);
    let (id, key) = &mine[0];
    let (state, resumed) = store.open_from(id, Some(key), t0, Some(flooder)).unwrap();
    assert!(resumed, "resuming is not refused by the quota");
    // Released for good: its place is free again.
    store.release(state);
    assert_eq!(store.sessions_from(flooder), 2);
    let (state, _) = store.open_from(&[], None, t0, Some(flooder)).unwrap();
    store.park(state, t0);
    // Expired: so are theirs.
    store.handle_timeout(t0 + Duration::from_secs(3600));
    assert_eq!(store.sessions_from(flooder), 0);
    assert_eq!(store.sessions_from(other), 0);
    // One IPv6 /64 is one address.
    let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    for ip in [a, b, a] {
        store.open_from(&[], None, t0, Some(ip)).unwrap();
    }
    assert_eq!(
        store.open_from(&[], None, t0, Some(b)).err(),
        Some(SessionError::TooManySessions)
    );
    let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert!(store.open_from(&[], None, t0, Some(c)).is_ok());
}
