//! The legacy `jsonProtocol` codec and the legacy server session on
//! arbitrary text.
//!
//! Input: bytes, read as UTF-8 (lossily).
//! * `Envelope::parse`: no panic. A parsed envelope renders as JSON that
//!   serde_json accepts, whose `type` is the envelope's, and which parses
//!   back to the same envelope and renders again to the same text; a text
//!   payload survives serde_json's reading of the rendering; a json payload
//!   is one JSON value by serde_json too.
//! * `RawJson::new` agrees with serde_json on whether the input is one JSON
//!   value (numbers beyond `f64` refused by both), wherever it does not hit
//!   the nesting bound.
//! * The input split at `\n` into text messages, sent by an old client to a
//!   legacy server session: no panic; the connection stays open; each
//!   message yields at most one delivered message and at most one error,
//!   never both; every message that parses as an ack request is acked
//!   (`{"type":"ack","id":n}`) exactly once, and nothing else is answered.
#![no_main]

use std::time::Instant;

use hookup_proto::reliable::legacy::{Envelope, LegacyError, Payload, RawJson};
use hookup_proto::reliable::{Session, SessionConfig, SessionEvent};
use hookup_proto::{Config, Connection, Event, Message, Role};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_codec(&text);
    check_session(&text);
});

/// serde_json's reading (which `RawJson::new` and `Envelope::parse` use,
/// so numbers beyond `f64` are refused by both).
fn serde(text: &str) -> Option<Result<serde_json::Value, serde_json::Error>> {
    Some(serde_json::from_str(text))
}

fn check_codec(text: &str) {
    match RawJson::new(text) {
        Ok(raw) => {
            assert!(
                serde(text).is_some_and(|r| r.is_ok()),
                "we accept what serde_json rejects"
            );
            assert_eq!(raw.as_str(), text.trim_matches([' ', '\t', '\n', '\r']));
        }
        Err(LegacyError::TooDeep) => {}
        Err(_) => {
            // serde_json nests at most 128 deep; ours stops at 64 first.
            assert!(
                serde(text).is_some_and(|r| r.is_err()),
                "we reject what serde_json accepts"
            );
        }
    }
    let Ok(env) = Envelope::parse(text) else {
        return;
    };
    let rendered = env.to_string();
    let back = Envelope::parse(&rendered).expect("rendering does not parse");
    assert_eq!(back, env);
    assert_eq!(back.to_string(), rendered);
    let Some(value) = serde(&rendered) else {
        return;
    };
    let value = value.expect("rendering is not JSON");
    let kind = match &env {
        Envelope::Message(Payload::Text(_)) => "text",
        Envelope::Message(Payload::Json(_)) => "json",
        Envelope::AckRequest { .. } => "ack_request",
        Envelope::Ack { .. } => "ack",
        Envelope::NeedsAck { .. } => "needs_ack",
        other => panic!("unknown envelope {other:?}"),
    };
    assert_eq!(value["type"].as_str(), Some(kind));
    let payload = match &env {
        Envelope::Message(p) => Some((p, &value["content"])),
        Envelope::AckRequest { payload, .. } | Envelope::NeedsAck { payload, .. } => {
            Some((payload, &value["content"]["content"]))
        }
        _ => None,
    };
    match payload {
        Some((Payload::Text(t), v)) => assert_eq!(v.as_str(), Some(&**t)),
        Some((Payload::Json(j), v)) => {
            let parsed = serde(j.as_str()).expect("in range").expect("json payload");
            assert_eq!(&parsed, v);
        }
        None => {}
    }
}

fn check_session(text: &str) {
    let now = Instant::now();
    let mut config = SessionConfig::default();
    config.ping_interval = None;
    let conn = Connection::new_open(Role::Server, Config::default(), now);
    let mut server = Session::legacy_server(conn, config, now);
    while server.poll_event().is_some() {}
    let mut peer = Connection::new_open(Role::Client, Config::default(), now);
    for msg in text.split('\n') {
        let expect_ack = match Envelope::parse(msg) {
            Ok(Envelope::AckRequest { id, .. }) => Some(id),
            _ => None,
        };
        peer.send_text(msg).expect("peer send");
        let mut buf = Vec::new();
        peer.poll_transmit(&mut buf);
        server.handle_input(now, &buf);
        let (mut delivered, mut errors) = (0, 0);
        while let Some(ev) = server.poll_event() {
            match ev {
                SessionEvent::Message(_) => delivered += 1,
                SessionEvent::Error(_) => errors += 1,
                other => panic!("unexpected event {other:?}"),
            }
        }
        assert!(
            delivered + errors <= 1,
            "{delivered} messages, {errors} errors"
        );
        assert!(server.connection().is_some_and(Connection::is_open));
        buf.clear();
        server.poll_transmit(&mut buf);
        peer.handle_input(now, &buf);
        let mut replies = Vec::new();
        while let Some(ev) = peer.poll_event() {
            match ev {
                Event::Message(Message::Text(t)) => replies.push(t.to_string()),
                other => panic!("unexpected peer event {other:?}"),
            }
        }
        let expected: Vec<String> = expect_ack
            .map(|id| format!("{{\"type\":\"ack\",\"id\":{id}}}"))
            .into_iter()
            .collect();
        assert_eq!(replies, expected);
    }
}
