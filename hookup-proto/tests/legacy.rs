//! The legacy `jsonProtocol` mode (`hookup_proto::reliable::legacy`): the
//! codec against the vectors in `tests/vectors/legacy.json`, the session's
//! legacy mode against a scripted old-hookup peer (a bare `Connection`
//! speaking the envelopes), a legacy client against a legacy server, and a
//! property test of the server mode against a random old client.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use hookup_proto::reliable::legacy::{Envelope, LegacyError, MAX_DEPTH, Payload, RawJson};
use hookup_proto::reliable::{
    Action, DeliveryOutcome, DropReason, LEGACY_SUBPROTOCOL, MessageId, Overflow, Reconnect,
    SUBPROTOCOL, SendError, Session, SessionConfig, SessionError, SessionEvent,
};
use hookup_proto::{Accept, ClientRequest, CloseCode, Config, Connection, Event, Message, Role};
use proptest::prelude::*;
use serde::Deserialize;

// ------------------------------------------------------------------ vectors

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Vectors {
    #[allow(dead_code)]
    comment: String,
    valid: Vec<Valid>,
    invalid: Vec<Invalid>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Valid {
    name: String,
    input: String,
    envelope: Expected,
    rendered: String,
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Expected {
    kind: String,
    id: Option<u64>,
    timeout_ms: Option<u64>,
    text: Option<String>,
    json: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalid {
    name: String,
    input: String,
    error: String,
}

fn describe(e: &Envelope<'_>) -> Expected {
    let payload = |p: &Payload<'_>| match p {
        Payload::Text(t) => (Some(t.to_string()), None),
        Payload::Json(j) => (None, Some(j.as_str().to_owned())),
    };
    let (kind, id, timeout_ms, (text, json)) = match e {
        Envelope::Message(p) => ("message", None, None, payload(p)),
        Envelope::AckRequest { id, payload: p } => ("ack_request", Some(*id), None, payload(p)),
        Envelope::Ack { id } => ("ack", Some(*id), None, (None, None)),
        Envelope::NeedsAck {
            timeout_ms,
            payload: p,
        } => ("needs_ack", None, Some(*timeout_ms), payload(p)),
        other => panic!("unknown envelope {other:?}"),
    };
    Expected {
        kind: kind.to_owned(),
        id,
        timeout_ms,
        text,
        json,
    }
}

fn error_name(e: &LegacyError) -> String {
    match e {
        LegacyError::Syntax { offset } => format!("Syntax@{offset}"),
        LegacyError::TooDeep => "TooDeep".into(),
        LegacyError::NotAnObject => "NotAnObject".into(),
        LegacyError::MissingField(f) => format!("MissingField:{f}"),
        LegacyError::DuplicateField(f) => format!("DuplicateField:{f}"),
        LegacyError::WrongType { field, .. } => format!("WrongType:{field}"),
        LegacyError::UnknownType(t) => format!("UnknownType:{t}"),
        other => panic!("unknown error {other:?}"),
    }
}

#[test]
fn codec_vectors() {
    let path = format!("{}/tests/vectors/legacy.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let v: Vectors = serde_json::from_str(&text).unwrap();
    assert!(v.valid.len() >= 20 && v.invalid.len() >= 40);
    for case in &v.valid {
        let got = Envelope::parse(&case.input).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(describe(&got), case.envelope, "{}", case.name);
        let rendered = got.to_string();
        assert_eq!(rendered, case.rendered, "{}", case.name);
        // What we render is JSON any parser reads, and reads back the same.
        serde_json::from_str::<serde_json::Value>(&rendered)
            .unwrap_or_else(|e| panic!("{}: rendered {rendered}: {e}", case.name));
        assert_eq!(
            Envelope::parse(&rendered).as_ref(),
            Ok(&got),
            "{}",
            case.name
        );
        if let Some(j) = &case.envelope.json {
            // The raw JSON content is valid JSON by serde_json's reading too.
            serde_json::from_str::<serde_json::Value>(j)
                .unwrap_or_else(|e| panic!("{}: content {j}: {e}", case.name));
        }
    }
    for case in &v.invalid {
        let got = Envelope::parse(&case.input);
        let Err(e) = got else {
            panic!("{}: parsed as {got:?}", case.name);
        };
        assert_eq!(error_name(&e), case.error, "{}", case.name);
        assert!(!e.to_string().is_empty());
    }
}

/// Our JSON validator agrees with serde_json on what is one JSON value (for
/// inputs within the nesting bound), numbers beyond `f64` included.
fn json_fragments() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "0",
        "-1",
        "1.5e3",
        "9e999",
        "01",
        "1.",
        "-",
        "true",
        "fals",
        "null",
        "\"a\"",
        "\"\\u00e9\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud83d\"",
        "\"\\x\"",
        "\"\u{1}\"",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        " ",
        "\"k\"",
        "\"é\"",
        "1e+2",
        "[]",
        "{}",
        "\"\\\"\"",
        "\\",
    ]);
    prop::collection::vec(atoms, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn validator_agrees_with_serde_json(s in json_fragments()) {
        let ours = RawJson::new(&s).is_ok();
        let theirs = serde_json::from_str::<serde_json::Value>(&s);
        prop_assert_eq!(ours, theirs.is_ok(), "{:?}", s);
    }

    #[test]
    fn parse_never_panics_and_text_round_trips(s in any::<String>(), id in any::<u64>()) {
        let _ = Envelope::parse(&s);
        let e = Envelope::AckRequest { id, payload: Payload::Text(s.as_str().into()) };
        let rendered = e.to_string();
        let back = serde_json::from_str::<serde_json::Value>(&rendered).unwrap();
        prop_assert_eq!(back["content"]["content"].as_str(), Some(s.as_str()));
        prop_assert_eq!(Envelope::parse(&rendered), Ok(e));
    }
}

#[test]
fn json_content_keeps_its_text() {
    let raw = RawJson::new("  {\"b\" : [1, 2.50]}\n").unwrap();
    assert_eq!(raw.as_str(), "{\"b\" : [1, 2.50]}");
    let deep = "[".repeat(MAX_DEPTH + 1);
    assert_eq!(RawJson::new(&deep), Err(LegacyError::TooDeep));
}

// ------------------------------------------------------------- the session

fn config() -> SessionConfig {
    let mut c = SessionConfig::default();
    c.ping_interval = None;
    c
}

/// What a session reported: its events, and the outcomes of its sends
/// (their own queue), collected together.
#[derive(Debug, Default)]
struct Evs {
    events: Vec<SessionEvent>,
    outcomes: Vec<(MessageId, DeliveryOutcome)>,
}

impl std::ops::Deref for Evs {
    type Target = Vec<SessionEvent>;
    fn deref(&self) -> &Vec<SessionEvent> {
        &self.events
    }
}

impl Evs {
    fn extend(&mut self, more: Self) {
        self.events.extend(more.events);
        self.outcomes.extend(more.outcomes);
    }

    fn clear(&mut self) {
        self.events.clear();
        self.outcomes.clear();
    }
}

fn events(s: &mut Session) -> Evs {
    Evs {
        events: std::iter::from_fn(|| s.poll_event()).collect(),
        outcomes: std::iter::from_fn(|| s.poll_outcome()).collect(),
    }
}

/// A legacy server session and the old client talking to it: a bare
/// connection that sends and reads the envelopes itself.
struct Pair {
    now: Instant,
    server: Session,
    peer: Connection,
    /// Text the peer received, in order.
    peer_got: Vec<String>,
}

impl Pair {
    fn new(config: SessionConfig) -> Self {
        let now = Instant::now();
        let conn = Connection::new_open(Role::Server, Config::default(), now);
        let server = Session::legacy_server(conn, config, now);
        let peer = Connection::new_open(Role::Client, Config::default(), now);
        Self {
            now,
            server,
            peer,
            peer_got: Vec::new(),
        }
    }

    /// Moves bytes both ways until quiet.
    fn pump(&mut self) {
        for _ in 0..16 {
            let mut moved = false;
            let mut buf = Vec::new();
            if self.peer.poll_transmit(&mut buf) && !buf.is_empty() {
                self.server.handle_input(self.now, &buf);
                moved = true;
            }
            buf.clear();
            if self.server.poll_transmit(&mut buf) && !buf.is_empty() {
                self.peer.handle_input(self.now, &buf);
                moved = true;
            }
            while let Some(ev) = self.peer.poll_event() {
                if let Event::Message(Message::Text(t)) = ev {
                    self.peer_got.push(t.to_string());
                }
            }
            if !moved {
                return;
            }
        }
        panic!("no quiescence");
    }

    fn peer_sends(&mut self, text: &str) -> Evs {
        self.peer.send_text(text).unwrap();
        self.pump();
        events(&mut self.server)
    }

    fn advance(&mut self, d: Duration) -> Evs {
        self.now += d;
        self.server.handle_timeout(self.now);
        self.pump();
        events(&mut self.server)
    }

    fn take_peer_got(&mut self) -> Vec<String> {
        std::mem::take(&mut self.peer_got)
    }
}

fn texts(evs: &[SessionEvent]) -> Vec<String> {
    evs.iter()
        .filter_map(|e| match e {
            SessionEvent::Message(Message::Text(t)) => Some(t.to_string()),
            _ => None,
        })
        .collect()
}

fn outcomes(evs: &Evs) -> Vec<(MessageId, DeliveryOutcome)> {
    evs.outcomes.clone()
}

fn errors(evs: &[SessionEvent]) -> Vec<SessionError> {
    evs.iter()
        .filter_map(|e| match e {
            SessionEvent::Error(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn server_is_established_at_once_without_a_session_id() {
    let mut p = Pair::new(config());
    assert!(p.server.is_legacy() && p.server.is_established());
    let evs = events(&mut p.server);
    assert!(
        matches!(evs.as_slice(), [SessionEvent::Connected { session, resumed: false }] if session.is_empty()),
        "{evs:?}"
    );
    assert!(p.server.take_state().is_none(), "nothing to park");
}

#[test]
fn ack_requests_are_acked_and_delivered_once_per_id() {
    let mut p = Pair::new(config());
    events(&mut p.server);
    let evs =
        p.peer_sends(r#"{"type":"ack_request","id":1,"content":{"type":"text","content":"one"}}"#);
    assert_eq!(texts(&evs), ["one"]);
    assert_eq!(p.take_peer_got(), [r#"{"type":"ack","id":1}"#]);
    // The same id again (a retry): acked again, not delivered again.
    let evs =
        p.peer_sends(r#"{"type":"ack_request","id":1,"content":{"type":"text","content":"one"}}"#);
    assert!(texts(&evs).is_empty(), "{evs:?}");
    assert_eq!(p.take_peer_got(), [r#"{"type":"ack","id":1}"#]);
    // As the Scala client rendered it, under "message"; and a bare string.
    let evs = p
        .peer_sends(r#"{"message":{"type":"json","content":{"n":2}},"type":"ack_request","id":2}"#);
    assert_eq!(texts(&evs), [r#"{"n":2}"#]);
    let evs = p.peer_sends(r#"{"type":"ack_request","id":3,"content":"three"}"#);
    assert_eq!(texts(&evs), ["three"]);
    assert_eq!(
        p.take_peer_got(),
        [r#"{"type":"ack","id":2}"#, r#"{"type":"ack","id":3}"#]
    );
    // Plain messages: delivered, nothing sent back.
    let evs = p.peer_sends(r#"{"type":"text","content":"plain \"q\""}"#);
    assert_eq!(texts(&evs), ["plain \"q\""]);
    let evs = p.peer_sends(r#"{"type":"json","content":["publish","t",1]}"#);
    assert_eq!(texts(&evs), [r#"["publish","t",1]"#]);
    assert!(p.take_peer_got().is_empty());
    // Binary frames are delivered as they are (the original sent them raw).
    p.peer.send_binary(b"\x00\x01").unwrap();
    p.pump();
    let evs = events(&mut p.server);
    assert!(
        matches!(evs.as_slice(), [SessionEvent::Message(Message::Binary(b))] if &b[..] == b"\x00\x01"),
        "{evs:?}"
    );
}

#[test]
fn outgoing_acks_resolve_acked_failed_or_dropped() {
    let mut c = config();
    c.report_releases = true;
    let mut p = Pair::new(c);
    events(&mut p.server);
    let now = p.now;
    let a = p
        .server
        .send(now, Message::text("a"), Some(Duration::from_secs(5)))
        .unwrap();
    let b = p
        .server
        .send_json(now, r#" {"b":1} "#, Some(Duration::from_secs(1)))
        .unwrap();
    let c = p.server.send(now, Message::text("c"), None).unwrap();
    let d = p
        .server
        .send(now, Message::text("d"), Some(Duration::from_secs(60)))
        .unwrap();
    p.pump();
    assert_eq!(
        p.take_peer_got(),
        [
            r#"{"type":"ack_request","id":1,"content":{"type":"text","content":"a"}}"#,
            r#"{"type":"ack_request","id":2,"content":{"type":"json","content":{"b":1}}}"#,
            r#"{"type":"text","content":"c"}"#,
            r#"{"type":"ack_request","id":3,"content":{"type":"text","content":"d"}}"#,
        ]
    );
    let evs = events(&mut p.server);
    assert_eq!(outcomes(&evs), [(c, DeliveryOutcome::Written)]);
    // Never sent again: released with its outcome.
    assert!(
        matches!(evs.as_slice(), [.., SessionEvent::Released(r)] if *r == c),
        "{evs:?}"
    );
    assert_eq!(p.server.unacked(), 3);
    assert!(
        p.server
            .poll_timeout()
            .is_some_and(|t| t == now + Duration::from_secs(1))
    );
    // b's deadline passes.
    let evs = p.advance(Duration::from_secs(1));
    assert_eq!(outcomes(&evs), [(b, DeliveryOutcome::AckFailed)]);
    // a is acked; b's late ack changes nothing; an id never sent is an
    // error that leaves the connection open.
    let evs = p.peer_sends(r#"{"type":"ack","id":1}"#);
    assert_eq!(outcomes(&evs), [(a, DeliveryOutcome::Acked)]);
    let evs = p.peer_sends(r#"{"type":"ack","id":2}"#);
    assert!(evs.is_empty(), "{evs:?}");
    let evs = p.peer_sends(r#"{"type":"ack","id":99}"#);
    assert_eq!(errors(&evs), [SessionError::AckForUnsent(99)]);
    assert!(p.server.connection().is_some_and(Connection::is_open));
    // The connection ends with d in flight: dropped, and the session ends.
    p.server.handle_eof(p.now);
    let evs = events(&mut p.server);
    assert_eq!(
        outcomes(&evs),
        [(d, DeliveryOutcome::Dropped(DropReason::Disconnected))]
    );
    assert!(matches!(evs.last(), Some(SessionEvent::Closed)), "{evs:?}");
    assert_eq!(p.server.unacked(), 0);
    assert_eq!(p.server.poll_timeout(), None);
    assert!(p.server.take_state().is_none());
    assert_eq!(
        p.server.send(p.now, Message::text("late"), None),
        Err(SendError::Closed)
    );
}

#[test]
fn binary_and_invalid_json_are_refused() {
    let mut p = Pair::new(config());
    let now = p.now;
    assert_eq!(
        p.server.send(now, Message::binary(vec![1, 2]), None),
        Err(SendError::Unsupported)
    );
    assert_eq!(
        p.server
            .send(now, Message::binary(vec![1]), Some(Duration::from_secs(1))),
        Err(SendError::Unsupported)
    );
    assert!(matches!(
        p.server.send_json(now, "{\"a\":", None),
        Err(SendError::InvalidJson(LegacyError::Syntax { .. }))
    ));
    assert!(matches!(
        p.server.send_json(now, "1 2", None),
        Err(SendError::InvalidJson(_))
    ));
    p.pump();
    assert!(p.take_peer_got().is_empty());
    assert_eq!(p.server.unacked(), 0);
    assert!(SendError::Unsupported.to_string().contains("jsonProtocol"));
}

#[test]
fn garbage_is_reported_and_nothing_else_is_lost() {
    let mut p = Pair::new(config());
    events(&mut p.server);
    let now = p.now;
    let pending = p
        .server
        .send(now, Message::text("x"), Some(Duration::from_secs(10)))
        .unwrap();
    p.peer_sends(r#"{"type":"ack_request","id":5,"content":"five"}"#);
    p.take_peer_got();
    for bad in [
        "not json",
        "[1,2]",
        r#"{"type":"nope"}"#,
        r#"{"type":"ack_request","id":-1,"content":"x"}"#,
        r#"{"type":"text","content":"\ud800"}"#,
        &format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
    ] {
        let evs = p.peer_sends(bad);
        assert!(
            matches!(errors(&evs).as_slice(), [SessionError::Legacy(_)]),
            "{bad:.40}: {evs:?}"
        );
        assert!(texts(&evs).is_empty());
    }
    // needs_ack is a buffer-file envelope, not expected on the wire.
    let evs = p.peer_sends(r#"{"type":"needs_ack","timeout":5,"content":"x"}"#);
    assert!(matches!(
        errors(&evs).as_slice(),
        [SessionError::Unexpected(_)]
    ));
    assert!(texts(&evs).is_empty());
    // Still open, the dedup state and the pending ack intact.
    assert!(p.server.connection().is_some_and(Connection::is_open));
    assert!(p.take_peer_got().is_empty(), "no reply to garbage");
    let evs = p.peer_sends(r#"{"type":"ack_request","id":5,"content":"five"}"#);
    assert!(texts(&evs).is_empty());
    assert_eq!(p.take_peer_got(), [r#"{"type":"ack","id":5}"#]);
    let evs = p.peer_sends(r#"{"type":"ack","id":1}"#);
    assert_eq!(outcomes(&evs), [(pending, DeliveryOutcome::Acked)]);
}

#[test]
fn duplicate_suppression_is_bounded() {
    let mut p = Pair::new(config());
    events(&mut p.server);
    let n = 5000u64;
    let mut delivered = 0;
    for id in 1..=n {
        p.peer
            .send_text(&format!(
                r#"{{"type":"ack_request","id":{id},"content":"m"}}"#
            ))
            .unwrap();
        if id % 64 == 0 {
            p.pump();
            delivered += texts(&events(&mut p.server)).len();
        }
    }
    p.pump();
    delivered += texts(&events(&mut p.server)).len();
    assert_eq!(delivered, n as usize);
    assert_eq!(p.take_peer_got().len(), n as usize, "every request acked");
    // The oldest ids are forgotten but still count as delivered; recent
    // ones are remembered.
    for id in [1, 2, n - 1, n] {
        let evs = p.peer_sends(&format!(
            r#"{{"type":"ack_request","id":{id},"content":"m"}}"#
        ));
        assert!(texts(&evs).is_empty(), "id {id}");
    }
    assert_eq!(p.take_peer_got().len(), 4);
    let evs = p.peer_sends(&format!(
        r#"{{"type":"ack_request","id":{},"content":"new"}}"#,
        n + 1
    ));
    assert_eq!(texts(&evs), ["new"]);
}

#[test]
fn shutdown_waits_for_outstanding_acks() {
    let mut p = Pair::new(config());
    events(&mut p.server);
    let now = p.now;
    let a = p
        .server
        .send(now, Message::text("a"), Some(Duration::from_secs(10)))
        .unwrap();
    p.pump();
    p.server.shutdown(now);
    p.pump();
    assert!(p.peer.is_open(), "closed with an ack outstanding");
    assert_eq!(
        p.server.send(now, Message::text("b"), None),
        Err(SendError::Closed)
    );
    let mut evs = p.peer_sends(r#"{"type":"ack","id":1}"#);
    assert_eq!(outcomes(&evs), [(a, DeliveryOutcome::Acked)]);
    assert!(!p.peer.is_open(), "closed once acked");
    p.server.handle_eof(p.now);
    evs.extend(events(&mut p.server));
    assert!(
        evs.iter().any(
            |e| matches!(e, SessionEvent::Disconnected { code, .. } if *code == CloseCode::NORMAL)
        ),
        "{evs:?}"
    );
    assert!(matches!(evs.last(), Some(SessionEvent::Closed)));
}

#[test]
fn abort_and_write_window_resolve_everything() {
    let mut c = config();
    c.write_window = 1;
    let mut p = Pair::new(c);
    events(&mut p.server);
    let now = p.now;
    let ids: Vec<MessageId> = (0..5)
        .map(|i| {
            p.server
                .send(
                    now,
                    Message::text(format!("m{i}")),
                    Some(Duration::from_millis(10)),
                )
                .unwrap()
        })
        .collect();
    // Nothing taken from the connection yet: one message written.
    assert_eq!(p.server.unacked(), 5);
    assert!(p.server.unacked_bytes() > 0);
    // Only the written one has a deadline running.
    let evs = p.advance(Duration::from_millis(10));
    let first = outcomes(&evs);
    assert!(first.iter().all(|(_, o)| *o == DeliveryOutcome::AckFailed));
    assert!(!first.is_empty());
    p.server.abort(p.now);
    let mut all = first;
    all.extend(outcomes(&events(&mut p.server)));
    let got: BTreeSet<MessageId> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(got, ids.iter().copied().collect());
}

#[test]
fn outbox_bounds_apply() {
    let mut c = config();
    c.max_outbox_messages = 2;
    let mut p = Pair::new(c);
    let now = p.now;
    let long = Duration::from_secs(60);
    p.server.send(now, Message::text("a"), Some(long)).unwrap();
    p.server.send(now, Message::text("b"), Some(long)).unwrap();
    assert_eq!(
        p.server.send(now, Message::text("c"), Some(long)),
        Err(SendError::Full)
    );
    let big = "x".repeat(Config::default().max_message_size);
    assert_eq!(
        p.server.send(now, Message::text(big), None),
        Err(SendError::TooLarge)
    );
}

#[test]
fn drop_oldest_drops_only_unwritten_messages() {
    let mut c = config();
    c.max_outbox_messages = 2;
    c.overflow = Overflow::DropOldest;
    c.write_window = 1;
    let mut p = Pair::new(c);
    events(&mut p.server);
    let now = p.now;
    let long = Duration::from_secs(60);
    // a is written (the window lets one message through), b waits.
    let a = p.server.send(now, Message::text("a"), Some(long)).unwrap();
    let b = p.server.send(now, Message::text("b"), Some(long)).unwrap();
    let c = p.server.send(now, Message::text("c"), Some(long)).unwrap();
    let evs = events(&mut p.server);
    assert_eq!(
        outcomes(&evs),
        [(b, DeliveryOutcome::Dropped(DropReason::Overflow))]
    );
    p.pump();
    let got = p.take_peer_got();
    assert!(got.iter().any(|t| t.contains("\"a\"")) && got.iter().any(|t| t.contains("\"c\"")));
    assert!(!got.iter().any(|t| t.contains("\"b\"")));
    // Both written and awaiting their ack: nothing left to drop.
    assert_eq!(
        p.server.send(now, Message::text("d"), Some(long)),
        Err(SendError::Full)
    );
    let evs = p.peer_sends(r#"{"type":"ack","id":1}"#);
    assert_eq!(outcomes(&evs), [(a, DeliveryOutcome::Acked)]);
    let evs = p.peer_sends(r#"{"type":"ack","id":2}"#);
    assert_eq!(outcomes(&evs), [(c, DeliveryOutcome::Acked)]);
}

#[test]
fn keepalive_closes_a_silent_connection() {
    let mut c = config();
    c.ping_interval = Some(Duration::from_secs(1));
    c.pong_timeout = Duration::from_secs(1);
    let now = Instant::now();
    let conn = Connection::new_open(Role::Server, Config::default(), now);
    let mut server = Session::legacy_server(conn, c, now);
    let pending = server
        .send(now, Message::text("x"), Some(Duration::from_secs(60)))
        .unwrap();
    events(&mut server);
    // Nobody answers the ping.
    let mut t = now;
    let mut evs = Evs::default();
    while let Some(next) = server.poll_timeout() {
        assert!(next <= now + Duration::from_secs(10), "timer runs away");
        t = next;
        server.handle_timeout(t);
        evs.extend(events(&mut server));
        if server.is_finished() {
            break;
        }
    }
    assert!(server.is_finished());
    assert!(t >= now + Duration::from_secs(2));
    assert!(
        errors(&evs).contains(&SessionError::KeepaliveTimeout),
        "{evs:?}"
    );
    assert_eq!(
        outcomes(&evs),
        [(pending, DeliveryOutcome::Dropped(DropReason::Disconnected))]
    );
}

// ----------------------------------------------------- legacy client

/// Drives a legacy client against a server-side connection that answers the
/// handshake with `subprotocol`, then against a legacy server session.
struct ClientRig {
    now: Instant,
    client: Session,
    server: Option<Session>,
    subprotocol: Option<&'static str>,
    client_events: Evs,
    server_events: Evs,
}

impl ClientRig {
    fn new(subprotocol: Option<&'static str>, reconnect: Reconnect) -> Self {
        let now = Instant::now();
        let mut c = config();
        c.reconnect = reconnect;
        c.backoff_min = Duration::from_millis(10);
        c.backoff_max = Duration::from_millis(10);
        let mut seeded = Config::default();
        seeded.rng_seed = Some([7; 32]);
        let mut request = ClientRequest::new("ws://old.example/hookup").unwrap();
        if subprotocol == Some(SUBPROTOCOL) {
            // Offered as well, so that the server may pick it.
            request = request.protocol(SUBPROTOCOL).unwrap();
        }
        Self {
            now,
            client: Session::legacy_client(request, c, seeded, now),
            server: None,
            subprotocol,
            client_events: Evs::default(),
            server_events: Evs::default(),
        }
    }

    /// Runs until quiet: connects when asked, handshakes, moves bytes.
    fn run(&mut self) {
        let mut pending: Option<Connection> = None;
        for _ in 0..64 {
            let mut moved = false;
            while let Some(a) = self.client.poll_action() {
                moved = true;
                match a {
                    Action::Connect => {
                        self.client.handle_connected(self.now);
                        self.server = None;
                        pending = Some(Connection::server(Config::default(), self.now));
                    }
                    Action::CloseTransport => {
                        if let Some(s) = &mut self.server {
                            s.handle_eof(self.now);
                        }
                    }
                    _ => {}
                }
            }
            let mut buf = Vec::new();
            if self.client.poll_transmit(&mut buf) && !buf.is_empty() {
                moved = true;
                if let Some(conn) = &mut pending {
                    conn.handle_input(self.now, &buf);
                    while let Some(ev) = conn.poll_event() {
                        if let Event::Request(req) = ev {
                            assert!(req.subprotocols().iter().any(|p| p == LEGACY_SUBPROTOCOL));
                            let mut accept = Accept::new();
                            if let Some(p) = self.subprotocol {
                                accept = accept.subprotocol(p);
                            }
                            conn.accept(accept).unwrap();
                        }
                    }
                    let conn = pending.take().unwrap();
                    self.server = Some(Session::legacy_server(conn, config(), self.now));
                } else if let Some(s) = &mut self.server {
                    s.handle_input(self.now, &buf);
                }
            }
            buf.clear();
            if let Some(s) = &mut self.server
                && s.poll_transmit(&mut buf)
                && !buf.is_empty()
            {
                moved = true;
                self.client.handle_input(self.now, &buf);
            }
            if let Some(s) = &mut self.server {
                self.server_events.extend(events(s));
            }
            self.client_events.extend(events(&mut self.client));
            if !moved {
                return;
            }
        }
        panic!("no quiescence");
    }

    fn cut(&mut self) {
        self.client.handle_eof(self.now);
        if let Some(s) = &mut self.server {
            s.handle_eof(self.now);
            self.server_events.extend(events(s));
        }
        self.client_events.extend(events(&mut self.client));
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.client.handle_timeout(self.now);
        if let Some(s) = &mut self.server {
            s.handle_timeout(self.now);
        }
        self.run();
    }
}

#[test]
fn legacy_client_talks_to_a_legacy_server_and_reconnects() {
    let mut r = ClientRig::new(Some(LEGACY_SUBPROTOCOL), Reconnect::Forever);
    let now = r.now;
    // Queued before the connection exists.
    let early = r
        .client
        .send(now, Message::text("early"), Some(Duration::from_secs(5)))
        .unwrap();
    r.run();
    assert!(r.client.is_established());
    assert_eq!(
        r.client.request().unwrap().protocols(),
        [LEGACY_SUBPROTOCOL.to_owned()]
    );
    assert_eq!(texts(&r.server_events), ["early"]);
    assert_eq!(
        outcomes(&r.client_events),
        [(early, DeliveryOutcome::Acked)]
    );
    // An ack request in flight when the connection breaks is dropped; a
    // message queued while disconnected goes out on the next connection,
    // with ids starting at 1 again.
    r.client_events.clear();
    r.server_events.clear();
    let server = r.server.as_mut().unwrap();
    server
        .send(
            now,
            Message::text("to client"),
            Some(Duration::from_secs(5)),
        )
        .unwrap();
    // Cut before the client can ack: the server's request is dropped.
    r.cut();
    assert_eq!(
        outcomes(&r.server_events),
        [(
            MessageId(1),
            DeliveryOutcome::Dropped(DropReason::Disconnected)
        )]
    );
    let queued = r
        .client
        .send(r.now, Message::text("queued"), Some(Duration::from_secs(5)))
        .unwrap();
    r.advance(Duration::from_millis(10));
    assert!(r.client.is_established());
    assert_eq!(texts(&r.server_events), ["queued"]);
    assert_eq!(
        outcomes(&r.client_events),
        [(queued, DeliveryOutcome::Acked)]
    );
    assert!(
        r.client_events
            .iter()
            .any(|e| matches!(e, SessionEvent::Reconnecting { attempt: 1, .. }))
    );
    // Shutdown: everything acked, so it closes and finishes.
    r.client.shutdown(r.now);
    r.run();
    r.cut();
    assert!(r.client.is_finished());
}

#[test]
fn legacy_client_in_flight_ack_is_dropped_on_disconnect() {
    let mut r = ClientRig::new(Some(LEGACY_SUBPROTOCOL), Reconnect::Never);
    r.run();
    // The server never gets to answer: cut right after the send is written.
    let id = r
        .client
        .send(r.now, Message::text("lost?"), Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    r.client.poll_transmit(&mut buf);
    r.cut();
    let outs = outcomes(&r.client_events);
    assert_eq!(
        outs,
        [(id, DeliveryOutcome::Dropped(DropReason::Disconnected))]
    );
    assert!(
        r.client_events
            .iter()
            .any(|e| matches!(e, SessionEvent::GaveUp))
    );
}

#[test]
fn legacy_client_requires_the_legacy_subprotocol() {
    for answer in [None, Some(SUBPROTOCOL)] {
        let mut r = ClientRig::new(answer, Reconnect::Never);
        let id = r.client.send(r.now, Message::text("x"), None).unwrap();
        r.run();
        r.cut();
        assert!(
            errors(&r.client_events).contains(&SessionError::NotNegotiated),
            "{answer:?}: {:?}",
            r.client_events
        );
        assert!(
            !r.client_events
                .iter()
                .any(|e| matches!(e, SessionEvent::Connected { .. }))
        );
        assert_eq!(
            outcomes(&r.client_events),
            [(id, DeliveryOutcome::Dropped(DropReason::GaveUp))]
        );
    }
}

// ------------------------------------------- property: server vs old client

#[derive(Clone, Debug)]
enum Op {
    /// The old client sends a text envelope.
    Text(u8),
    /// The old client sends a json envelope.
    Json(u8),
    /// The old client sends an ack request (small ids: duplicates happen),
    /// under "content" or, as Scala did, "message".
    AckRequest { id: u8, scala: bool },
    /// The old client sends something malformed.
    Garbage(u8),
    /// The old client acks the server's n-th ack request (maybe unknown).
    AckServer(u8),
    /// The server sends, maybe asking for an ack within this many ms.
    ServerSend { ack_ms: Option<u16>, json: bool },
    /// Time passes.
    Advance(u16),
    /// The connection ends.
    Eof,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(Op::Text),
        2 => any::<u8>().prop_map(Op::Json),
        4 => (0u8..12, any::<bool>()).prop_map(|(id, scala)| Op::AckRequest { id, scala }),
        1 => any::<u8>().prop_map(Op::Garbage),
        4 => (0u8..16).prop_map(Op::AckServer),
        4 => (prop::option::weighted(0.7, 0u16..500), any::<bool>())
            .prop_map(|(ack_ms, json)| Op::ServerSend { ack_ms, json }),
        3 => (0u16..300).prop_map(Op::Advance),
        1 => Just(Op::Eof),
    ]
}

const GARBAGE: [&str; 6] = [
    "plain",
    "{\"type\":\"ack\"}",
    "{\"type\":\"text\",\"content\":1}",
    "[\"json\"]",
    "{\"type\":\"ack_request\",\"id\":1,\"content\":\"a\",\"message\":\"b\"}",
    "{\"type\":\"text\",\"content\":\"x\"",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Against a random old client, the server delivers every message it
    /// should exactly once and in order, acks every ack request, reports
    /// every malformed envelope, and resolves each of its own sends exactly
    /// once with the outcome a model predicts.
    #[test]
    fn server_mode_against_a_random_old_client(ops in prop::collection::vec(op(), 1..80)) {
        let mut p = Pair::new(config());
        events(&mut p.server);
        let mut expect_delivered: Vec<String> = Vec::new();
        let mut delivered: Vec<String> = Vec::new();
        let mut seen_ids = BTreeSet::new();
        let mut acks_expected = 0usize;
        let mut garbage_sent = 0usize;
        let mut errors_seen = 0usize;
        // Model of the server's sends: message → (wire id, deadline).
        let mut awaiting: BTreeMap<MessageId, (u64, Instant)> = BTreeMap::new();
        let mut wire_ids: Vec<MessageId> = Vec::new();
        let mut expected_outcome: HashMap<MessageId, DeliveryOutcome> = HashMap::new();
        let mut got_outcome: HashMap<MessageId, DeliveryOutcome> = HashMap::new();
        let mut open = true;
        let mut collect = |evs: Evs, delivered: &mut Vec<String>, errors_seen: &mut usize| {
            for (id, outcome) in evs.outcomes {
                assert!(got_outcome.insert(id, outcome).is_none(), "{id:?} resolved twice");
            }
            for e in evs.events {
                match e {
                    SessionEvent::Message(Message::Text(t)) => delivered.push(t.to_string()),
                    SessionEvent::Error(_) => *errors_seen += 1,
                    _ => {}
                }
            }
        };
        for op in ops {
            if !open {
                break;
            }
            let evs = match op {
                Op::Text(n) => {
                    expect_delivered.push(format!("t{n}"));
                    p.peer_sends(&format!(r#"{{"type":"text","content":"t{n}"}}"#))
                }
                Op::Json(n) => {
                    expect_delivered.push(format!(r#"{{"n":{n}}}"#));
                    p.peer_sends(&format!(r#"{{"type":"json","content":{{"n":{n}}}}}"#))
                }
                Op::AckRequest { id, scala } => {
                    acks_expected += 1;
                    if seen_ids.insert(id) {
                        expect_delivered.push(format!("r{id}"));
                    }
                    let field = if scala { "message" } else { "content" };
                    p.peer_sends(&format!(
                        r#"{{"type":"ack_request","id":{id},"{field}":{{"type":"text","content":"r{id}"}}}}"#
                    ))
                }
                Op::Garbage(n) => {
                    garbage_sent += 1;
                    p.peer_sends(GARBAGE[usize::from(n) % GARBAGE.len()])
                }
                Op::AckServer(n) => {
                    let wire = u64::from(n) + 1;
                    if let Some(&mid) = wire_ids.get(usize::from(n)) {
                        if awaiting.remove(&mid).is_some() {
                            expected_outcome.insert(mid, DeliveryOutcome::Acked);
                        }
                    } else {
                        // Never used: reported, nothing else happens.
                        garbage_sent += 1;
                    }
                    p.peer_sends(&format!(r#"{{"type":"ack","id":{wire}}}"#))
                }
                Op::ServerSend { ack_ms, json } => {
                    let ack = ack_ms.map(|ms| Duration::from_millis(u64::from(ms)));
                    let id = if json {
                        p.server.send_json(p.now, "[1]", ack).unwrap()
                    } else {
                        p.server.send(p.now, Message::text("s"), ack).unwrap()
                    };
                    match ack {
                        None => {
                            expected_outcome.insert(id, DeliveryOutcome::Written);
                        }
                        Some(d) => {
                            wire_ids.push(id);
                            awaiting.insert(id, (wire_ids.len() as u64, p.now + d));
                        }
                    }
                    p.pump();
                    events(&mut p.server)
                }
                Op::Advance(ms) => {
                    let now = p.now + Duration::from_millis(u64::from(ms));
                    awaiting.retain(|id, (_, deadline)| {
                        if *deadline <= now {
                            expected_outcome.insert(*id, DeliveryOutcome::AckFailed);
                            false
                        } else {
                            true
                        }
                    });
                    p.advance(Duration::from_millis(u64::from(ms)))
                }
                Op::Eof => {
                    open = false;
                    p.server.handle_eof(p.now);
                    events(&mut p.server)
                }
            };
            collect(evs, &mut delivered, &mut errors_seen);
            prop_assert_eq!(&delivered, &expect_delivered);
            prop_assert_eq!(errors_seen, garbage_sent);
        }
        if open {
            p.server.handle_eof(p.now);
            collect(events(&mut p.server), &mut delivered, &mut errors_seen);
        }
        for (id, _) in std::mem::take(&mut awaiting) {
            expected_outcome.insert(id, DeliveryOutcome::Dropped(DropReason::Disconnected));
        }
        prop_assert!(p.server.is_finished());
        prop_assert_eq!(p.server.unacked(), 0);
        prop_assert_eq!(got_outcome, expected_outcome);
        let acks = p.peer_got.iter().filter(|t| t.starts_with(r#"{"type":"ack","#)).count();
        prop_assert_eq!(acks, acks_expected);
    }
}
