//! Per-connection limits of `Config`: the idle timeout, the message
//! completion timeout and the input budget shared by connections. Fake
//! clock, no I/O.

use std::time::{Duration, Instant};

use hookup_proto::{Config, Connection, Error, Event, InputBudget, ProtocolError, Role, State};

/// A masked (all-zero key) client binary frame header for `len` payload
/// bytes, FIN set or not.
fn header(len: u16, fin: bool) -> Vec<u8> {
    let mut h = vec![if fin { 0x82 } else { 0x02 }];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else {
        h.push(0x80 | 126);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&[0; 4]);
    h
}

fn closed_error(conn: &mut Connection) -> Option<Error> {
    while let Some(ev) = conn.poll_event() {
        if let Event::Closed(c) = ev {
            return c.error;
        }
    }
    None
}

fn sent(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    conn.poll_transmit(&mut out);
    out
}

#[test]
fn unfinished_message_times_out_with_1008() {
    let mut config = Config::default();
    config.message_timeout = Some(Duration::from_secs(10));
    let t0 = Instant::now();
    let mut conn = Connection::new_open(Role::Server, config, t0);
    let mut input = header(1000, true);
    input.extend_from_slice(&[b'x'; 100]);
    conn.handle_input(t0, &input);
    assert!(
        conn.poll_timeout()
            .is_some_and(|t| t <= t0 + Duration::from_secs(10))
    );
    // More bytes of the same message do not extend its deadline.
    conn.handle_input(t0 + Duration::from_secs(9), &[b'x'; 100]);
    conn.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(conn.state(), State::Closed);
    assert!(matches!(
        closed_error(&mut conn),
        Some(Error::Protocol(ProtocolError::MessageTimeout(_)))
    ));
    // Close frame with code 1008.
    assert_eq!(&sent(&mut conn)[..4], &[0x88, 2, 0x03, 0xF0]);
}

#[test]
fn finished_messages_clear_the_message_timer() {
    let mut config = Config::default();
    config.message_timeout = Some(Duration::from_secs(10));
    let t0 = Instant::now();
    let mut conn = Connection::new_open(Role::Server, config, t0);
    for i in 0..5u64 {
        let now = t0 + Duration::from_secs(8 * i);
        let mut input = header(10, true);
        input.extend_from_slice(&[b'x'; 10]);
        conn.handle_input(now, &input);
        conn.handle_timeout(now);
        assert!(conn.poll_timeout().is_none());
        while conn.poll_event().is_some() {}
    }
    assert_eq!(conn.state(), State::Open);
}

#[test]
fn idle_connection_is_pinged_then_closed_with_1001() {
    let mut config = Config::default();
    config.idle_timeout = Some(Duration::from_secs(10));
    let t0 = Instant::now();
    let mut conn = Connection::new_open(Role::Server, config, t0);
    assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    conn.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(conn.state(), State::Open);
    // An empty ping went out.
    assert_eq!(sent(&mut conn), [0x89, 0]);
    conn.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(conn.state(), State::Closed);
    assert!(matches!(
        closed_error(&mut conn),
        Some(Error::Protocol(ProtocolError::IdleTimeout(_)))
    ));
    assert_eq!(&sent(&mut conn)[..4], &[0x88, 2, 0x03, 0xE9]);
}

#[test]
fn input_keeps_an_idle_connection_open() {
    let mut config = Config::default();
    config.idle_timeout = Some(Duration::from_secs(10));
    let t0 = Instant::now();
    let mut conn = Connection::new_open(Role::Server, config, t0);
    for i in 1..=10u64 {
        let now = t0 + Duration::from_secs(4 * i);
        conn.handle_timeout(now);
        // A pong (masked, empty).
        conn.handle_input(now, &[0x8A, 0x80, 0, 0, 0, 0]);
        while conn.poll_event().is_some() {}
    }
    assert_eq!(conn.state(), State::Open);
}

#[test]
fn shared_input_budget_refuses_the_connection_that_passes_it() {
    let budget = InputBudget::new(1000);
    let mut config = Config::default();
    config.input_budget = Some(budget.clone());
    let t0 = Instant::now();
    let mut a = Connection::new_open(Role::Server, config.clone(), t0);
    let mut b = Connection::new_open(Role::Server, config, t0);
    let mut input = header(2000, true);
    input.extend_from_slice(&[b'x'; 600]);
    a.handle_input(t0, &input);
    assert!(budget.used() >= 600);
    assert_eq!(a.state(), State::Open);
    b.handle_input(t0, &input);
    assert_eq!(b.state(), State::Closed);
    assert!(matches!(
        closed_error(&mut b),
        Some(Error::Protocol(ProtocolError::InputBudgetExhausted {
            limit: 1000
        }))
    ));
    assert_eq!(&sent(&mut b)[..4], &[0x88, 2, 0x03, 0xF1]);
    assert!(budget.used() < 1000);
    // The rest of a's message arrives: its charge is returned.
    a.handle_input(t0, &vec![b'x'; 1400]);
    assert_eq!(a.state(), State::Open);
    assert_eq!(budget.used(), 0);
    // A fragmented message is charged until its last fragment, and
    // returned when the connection is dropped.
    let mut first = header(500, false);
    first.extend_from_slice(&[b'x'; 500]);
    a.handle_input(t0, &first);
    assert!(budget.used() >= 500);
    drop(a);
    assert_eq!(budget.used(), 0);
}

/// The first fragment of a compressed message that inflates far beyond the
/// budget (a compression bomb held open as a partial message): what it
/// inflates to is charged as it inflates, and the connection is refused
/// with 1009 before the message is complete.
#[test]
fn inflated_partial_message_counts_against_the_budget() {
    use flate2::{Compress, Compression, FlushCompress};
    let budget = InputBudget::new(1 << 20);
    let mut config = Config::default();
    config.input_budget = Some(budget.clone());
    config.deflate = Some(hookup_proto::DeflateConfig::default());
    let t0 = Instant::now();
    let mut conn = Connection::new_open_with_deflate(
        Role::Server,
        config,
        Some(hookup_proto::DeflateParams::default()),
        t0,
    );
    // 4 MiB of zeros as raw deflate with a sync flush (RFC 7692 §7.2.1:
    // the trailing 00 00 ff ff removed), a few KiB on the wire.
    let zeros = vec![0u8; 4 << 20];
    let mut c = Compress::new(Compression::best(), false);
    let mut compressed = Vec::with_capacity(64 << 10);
    c.compress_vec(&zeros, &mut compressed, FlushCompress::Sync)
        .unwrap();
    assert!(compressed.ends_with(&[0, 0, 0xff, 0xff]));
    compressed.truncate(compressed.len() - 4);
    let len = u16::try_from(compressed.len()).expect("a small bomb");
    // Binary, RSV1 (compressed), not FIN: the message stays open.
    let mut frame = header(len, false);
    frame[0] |= 0x40;
    frame.extend_from_slice(&compressed);
    conn.handle_input(t0, &frame);
    assert_eq!(conn.state(), State::Closed, "4 MiB inflated, 1 MiB budget");
    assert!(matches!(
        closed_error(&mut conn),
        Some(Error::Protocol(ProtocolError::InputBudgetExhausted { .. }))
    ));
    assert_eq!(&sent(&mut conn)[..4], &[0x88, 2, 0x03, 0xF1]);
    drop(conn);
    assert_eq!(budget.used(), 0);
}
