//! A deterministic in-memory simulation: a client and a server
//! [`Connection`] joined by two one-way wires with a fixed latency, on a fake
//! clock that jumps to the next due packet or timer when nothing else can
//! happen. Nothing here sleeps or reads the real clock after the start. The
//! wires and the clock are `hookup_sim`'s, shared with `reliable_sim`.

mod common;

use std::io::IoSlice;
use std::time::{Duration, Instant};

use common::{closed_str, decode_frames, ev_str, frame_to, http_status};
use hookup_proto::bytes::Bytes;
use hookup_proto::http::{HeaderMap, HeaderValue, header};
use hookup_proto::{
    Accept, ClientRequest, CloseCode, Closed, Config, Connection, Error, Event, HandshakeError,
    Initiator, Message, MessageKind, ProtocolError, Role, State, UsageError,
};
use hookup_sim::{Chunk, Clock, Netem, Rng, Wire};

type Handler = Box<dyn FnMut(&mut Connection, &Event, Instant)>;

/// How a side writes its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteMode {
    /// `poll_transmit`, everything at once.
    Poll,
    /// `transmit_vectored` + `advance_transmit`, at most this many bytes per
    /// step (a partial write).
    Vectored(usize),
}

struct Side {
    name: &'static str,
    conn: Connection,
    handler: Handler,
    log: Vec<(Duration, Event)>,
    write: WriteMode,
    /// The transport is closed on this side: nothing more is read or written.
    transport_closed: bool,
}

impl Side {
    fn new(name: &'static str, conn: Connection, handler: Handler) -> Self {
        Self {
            name,
            conn,
            handler,
            log: Vec::new(),
            write: WriteMode::Poll,
            transport_closed: false,
        }
    }

    /// Drains events (calling the handler on each) in the documented order.
    fn drain(&mut self, start: Instant, now: Instant) -> bool {
        let mut any = false;
        while let Some(ev) = self.conn.poll_event() {
            if let Some((_, Event::Closed(_))) = self.log.last() {
                panic!("{}: event after Closed: {ev:?}", self.name);
            }
            (self.handler)(&mut self.conn, &ev, now);
            self.log.push((now - start, ev));
            any = true;
        }
        any
    }

    fn events(&self) -> Vec<String> {
        self.log.iter().map(|(_, e)| ev_str(e)).collect()
    }

    fn closed(&self) -> (Duration, &Closed) {
        match self.log.last() {
            Some((t, Event::Closed(c))) => (*t, c),
            _ => panic!("{}: not closed: {:?}", self.name, self.events()),
        }
    }

    fn messages(&self) -> Vec<Message> {
        self.log
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

struct Pair {
    clock: Clock,
    /// One-way delay of both wires.
    latency: Duration,
    /// The wires' draws (with a fixed latency and no chunking, they decide
    /// nothing).
    rng: Rng,
    client: Side,
    server: Side,
    c2s: Wire,
    s2c: Wire,
}

fn accept_all() -> Handler {
    Box::new(|conn, ev, _| {
        if let Event::Request(_) = ev {
            conn.accept(Accept::new()).unwrap();
        }
    })
}

fn echo() -> Handler {
    Box::new(|conn, ev, _| match ev {
        Event::Request(_) => conn.accept(Accept::new()).unwrap(),
        // A message that arrived in the same read as the peer's close (or a
        // protocol error) is delivered after the connection closed: the
        // echo is then refused, as it must be.
        Event::Message(m) => {
            if let Err(e) = conn.send(m.clone()) {
                assert!(
                    conn.is_closed() || conn.state() == State::ClosingLocal,
                    "{e}"
                );
            }
        }
        _ => {}
    })
}

fn nothing() -> Handler {
    Box::new(|_, _, _| {})
}

fn config(seed: u8) -> Config {
    let mut c = Config::default();
    c.rng_seed = Some([seed; 32]);
    c
}

const LATENCY: Duration = Duration::from_millis(10);

impl Pair {
    fn with(
        client: Config,
        server: Config,
        request: &ClientRequest,
        server_handler: Handler,
    ) -> Self {
        let start = Instant::now();
        Self {
            clock: Clock::new(start),
            latency: LATENCY,
            rng: Rng::new(0),
            client: Side::new(
                "client",
                Connection::client(request, client, start),
                nothing(),
            ),
            server: Side::new("server", Connection::server(server, start), server_handler),
            c2s: Wire::recording(),
            s2c: Wire::recording(),
        }
    }

    fn new(server_handler: Handler) -> Self {
        let req = ClientRequest::new("ws://example.com/socket").unwrap();
        Self::with(config(1), config(2), &req, server_handler)
    }

    /// A pair that has completed the opening handshake.
    fn open(server_handler: Handler) -> Self {
        let mut p = Self::new(server_handler);
        p.drive_until(100, |p| p.client.conn.is_open());
        assert!(p.server.conn.is_open());
        p
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Runs a command on the client, then drains its events.
    fn client<R>(&mut self, f: impl FnOnce(&mut Connection, Instant) -> R) -> R {
        let r = f(&mut self.client.conn, self.clock.now());
        self.client.drain(self.clock.start(), self.now());
        r
    }

    fn server<R>(&mut self, f: impl FnOnce(&mut Connection, Instant) -> R) -> R {
        let r = f(&mut self.server.conn, self.clock.now());
        self.server.drain(self.clock.start(), self.now());
        r
    }

    /// Closes a side's transport abruptly (the peer sees EOF).
    fn abort(&mut self, role: Role) {
        let (side, wire) = match role {
            Role::Client => (&mut self.client, &mut self.c2s),
            _ => (&mut self.server, &mut self.s2c),
        };
        side.transport_closed = true;
        wire.close(&mut self.rng, &Netem::fixed(self.latency), &self.clock);
    }

    /// Writes a side's output to its wire; closes its transport once it is
    /// Closed and everything is written.
    fn flush(
        side: &mut Side,
        wire: &mut Wire,
        rng: &mut Rng,
        netem: &Netem,
        clock: &Clock,
    ) -> bool {
        if side.transport_closed {
            return false;
        }
        let mut progress = false;
        let mut packet = Vec::new();
        match side.write {
            WriteMode::Poll => {
                side.conn.poll_transmit(&mut packet);
            }
            WriteMode::Vectored(limit) => {
                let mut slices = [IoSlice::new(&[]); 4];
                let n = side.conn.transmit_vectored(&mut slices);
                for s in &slices[..n] {
                    let room = limit - packet.len();
                    packet.extend_from_slice(&s[..s.len().min(room)]);
                    if packet.len() == limit {
                        break;
                    }
                }
                side.conn.advance_transmit(packet.len());
            }
        }
        if !packet.is_empty() {
            progress = true;
            wire.write(rng, netem, clock, &packet);
        }
        if side.conn.is_closed() && side.conn.transmit_len() == 0 {
            side.transport_closed = true;
            progress = true;
            wire.close(rng, netem, clock);
        }
        progress
    }

    /// Delivers every packet due on `wire` to `side`.
    fn deliver(side: &mut Side, wire: &mut Wire, now: Instant, start: Instant) -> bool {
        let mut progress = false;
        while wire.due(now) {
            if side.transport_closed {
                wire.in_flight.clear();
                return progress;
            }
            if !side.conn.wants_read() && !side.conn.is_closed() {
                // Backpressure or a pending decision: leave it on the wire.
                return progress;
            }
            match wire.pop_due(now).unwrap() {
                Chunk::Data(b) => side.conn.handle_input(now, &b),
                Chunk::Eof => side.conn.handle_eof(now),
            }
            side.drain(start, now);
            progress = true;
        }
        progress
    }

    fn fire_timers(side: &mut Side, now: Instant, start: Instant) -> bool {
        if side.transport_closed {
            return false;
        }
        match side.conn.poll_timeout() {
            Some(t) if t <= now => {
                side.conn.handle_timeout(now);
                side.drain(start, now);
                true
            }
            _ => false,
        }
    }

    /// One round: write out, deliver what is due, fire due timers; when
    /// nothing happened, advance the clock to the next packet or timer.
    /// Returns false when nothing can ever happen again.
    fn step(&mut self) -> bool {
        let (now, start) = (self.now(), self.clock.start());
        let netem = Netem::fixed(self.latency);
        self.client.drain(start, now);
        self.server.drain(start, now);
        let mut progress = false;
        let (rng, clock) = (&mut self.rng, &self.clock);
        progress |= Self::flush(&mut self.client, &mut self.c2s, rng, &netem, clock);
        progress |= Self::flush(&mut self.server, &mut self.s2c, rng, &netem, clock);
        progress |= Self::deliver(&mut self.server, &mut self.c2s, now, start);
        progress |= Self::deliver(&mut self.client, &mut self.s2c, now, start);
        progress |= Self::fire_timers(&mut self.client, now, start);
        progress |= Self::fire_timers(&mut self.server, now, start);
        if progress {
            return true;
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if !self.server.transport_closed && self.server.conn.wants_read() {
            consider(self.c2s.next_at());
        }
        if !self.client.transport_closed && self.client.conn.wants_read() {
            consider(self.s2c.next_at());
        }
        for side in [&self.client, &self.server] {
            if !side.transport_closed {
                consider(side.conn.poll_timeout());
            }
        }
        match next {
            Some(t) => {
                assert!(self.clock.advance_to(t), "time must move forward");
                true
            }
            None => false,
        }
    }

    /// Steps until nothing can happen; panics after `max` steps (livelock).
    fn drive_bounded(&mut self, max: usize) {
        for _ in 0..max {
            if !self.step() {
                return;
            }
        }
        panic!(
            "no quiescence after {max} steps at {:?}: client {:?} {:?}, server {:?} {:?}",
            self.elapsed(),
            self.client.conn.state(),
            self.client.events(),
            self.server.conn.state(),
            self.server.events()
        );
    }

    /// Steps until `cond` holds; panics after `max` steps or at quiescence.
    fn drive_until(&mut self, max: usize, cond: impl Fn(&Self) -> bool) {
        for _ in 0..max {
            if cond(self) {
                return;
            }
            if !self.step() {
                break;
            }
        }
        assert!(
            cond(self),
            "condition not reached (at {:?}): client {:?} {:?}, server {:?} {:?}",
            self.elapsed(),
            self.client.conn.state(),
            self.client.events(),
            self.server.conn.state(),
            self.server.events()
        );
    }
}

fn closed_with(c: &Closed) -> String {
    closed_str(c)
}

// ------------------------------------------------------------------ handshake

#[test]
fn handshake_completes_at_one_round_trip() {
    let mut p = Pair::new(accept_all());
    p.drive_bounded(100);
    assert_eq!(p.client.events(), ["connected"]);
    assert_eq!(p.server.events(), ["request:GET /socket", "connected"]);
    assert_eq!(p.client.log[0].0, 2 * LATENCY);
    assert_eq!(p.server.log[0].0, LATENCY);
    assert!(p.client.conn.is_open() && p.server.conn.is_open());
    // Neither side keeps a timer once open: the handshake timers are gone.
    assert_eq!(p.client.conn.poll_timeout(), None);
    assert_eq!(p.server.conn.poll_timeout(), None);
}

#[test]
fn handshake_with_subprotocol_and_extra_headers() {
    let req = ClientRequest::new("ws://example.com:8080/chat?room=7")
        .unwrap()
        .protocol("v2.chat")
        .unwrap()
        .protocol("v1.chat")
        .unwrap()
        .header("Authorization", "Bearer t0ken")
        .unwrap()
        .header("X-Trace", "abc")
        .unwrap();
    let handler: Handler = Box::new(|conn, ev, _| {
        if let Event::Request(r) = ev {
            assert_eq!(r.path(), "/chat");
            assert_eq!(r.query(), Some("room=7"));
            assert_eq!(r.headers()[header::HOST], "example.com:8080");
            assert_eq!(r.headers()[header::AUTHORIZATION], "Bearer t0ken");
            assert_eq!(r.headers()["x-trace"], "abc");
            assert_eq!(r.subprotocols(), ["v2.chat", "v1.chat"]);
            // The server supports only v1.
            let chosen = r
                .subprotocols()
                .iter()
                .find(|p| *p == "v1.chat")
                .unwrap()
                .clone();
            let a = Accept::new()
                .subprotocol(chosen)
                .header(header::SERVER, HeaderValue::from_static("hookup"))
                .header(header::SET_COOKIE, HeaderValue::from_static("a=1"))
                .header(header::SET_COOKIE, HeaderValue::from_static("b=2"));
            conn.accept(a).unwrap();
        }
    });
    let mut p = Pair::with(config(1), config(2), &req, handler);
    p.drive_bounded(100);
    assert_eq!(p.client.events(), ["connected:v1.chat"]);
    assert_eq!(
        p.server.events(),
        ["request:GET /chat?room=7", "connected:v1.chat"]
    );
    let Event::Connected(resp) = &p.client.log[0].1 else {
        panic!()
    };
    assert_eq!(resp.subprotocol.as_deref(), Some("v1.chat"));
    assert_eq!(resp.headers[header::SERVER], "hookup");
    let cookies: Vec<_> = resp.headers.get_all(header::SET_COOKIE).iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
}

#[test]
fn frames_in_the_same_chunk_as_the_101_are_not_lost() {
    // The server greets as soon as it accepts: the 101 and the frame leave
    // in one write and arrive in one read.
    let handler: Handler = Box::new(|conn, ev, now| match ev {
        Event::Request(_) => conn.accept(Accept::new()).unwrap(),
        Event::Connected(_) => {
            conn.send_text("welcome").unwrap();
            conn.send_ping(now, b"p").unwrap();
        }
        _ => {}
    });
    let mut p = Pair::new(handler);
    p.drive_bounded(100);
    assert_eq!(p.s2c.sent.len(), 1, "one write for the head and the frames");
    let chunk = &p.s2c.sent[0].1;
    assert!(chunk.starts_with(b"HTTP/1.1 101"));
    assert!(chunk.len() > chunk.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4);
    assert_eq!(p.client.events(), ["connected", "text:welcome", "ping:p"]);
    // And the client's automatic pong reached the server.
    assert!(p.server.events().iter().any(|e| e.starts_with("pong:p")));
}

#[test]
fn frames_in_the_same_chunk_as_the_request_are_not_lost() {
    let now = Instant::now();
    let req = ClientRequest::new("ws://example.com/").unwrap();
    let mut client = Connection::client(&req, config(1), now);
    let mut chunk = Vec::new();
    client.poll_transmit(&mut chunk);
    // An eager client pipelines frames right behind its request.
    chunk.extend(frame_to(Role::Server, true, 0x1, b"early"));
    chunk.extend(frame_to(Role::Server, true, 0x9, b"ping"));
    let mut server = Connection::server(config(2), now);
    server.handle_input(now, &chunk);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    assert_eq!(server.state(), State::AwaitingDecision);
    assert!(
        !server.wants_read(),
        "no reading while the application decides"
    );
    assert!(server.poll_event().is_none());
    // More bytes arriving while the decision is pending are kept too.
    server.handle_input(now, &frame_to(Role::Server, true, 0x2, b"\x01\x02"));
    assert!(server.poll_event().is_none());
    server.accept(Accept::new()).unwrap();
    let events: Vec<String> = std::iter::from_fn(|| server.poll_event())
        .map(|e| ev_str(&e))
        .collect();
    assert_eq!(
        events,
        ["connected", "text:early", "ping:ping", "binary:0x0102"]
    );
    let mut out = Vec::new();
    server.poll_transmit(&mut out);
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(out.starts_with(b"HTTP/1.1 101"));
    assert_eq!(decode_frames(&out[head_end..]), ["pong:ping"]);
    // The client takes the whole answer in one read.
    client.handle_input(now, &out);
    let events: Vec<String> = std::iter::from_fn(|| client.poll_event())
        .map(|e| ev_str(&e))
        .collect();
    assert_eq!(events, ["connected", "pong:ping"]);
}

#[test]
fn client_handshake_timeout() {
    let mut p = Pair::new(accept_all());
    p.c2s.blackhole = true; // the request never arrives
    p.drive_bounded(100);
    let (t, c) = p.client.closed();
    assert_eq!(t, Duration::from_secs(10));
    assert_eq!(c.error, Some(Error::Handshake(HandshakeError::Timeout)));
    assert_eq!((c.initiator, c.clean), (None, false));
    assert_eq!(p.client.events(), [closed_with(c)]);
    // The server also gave up after its own handshake timeout.
    let (t, c) = p.server.closed();
    assert_eq!(t, Duration::from_secs(10));
    assert_eq!(c.error, Some(Error::Handshake(HandshakeError::Timeout)));
}

#[test]
fn server_handshake_timeout_answers_408() {
    let mut cc = config(1);
    cc.handshake_timeout = None;
    let mut sc = config(2);
    sc.handshake_timeout = Some(Duration::from_secs(3));
    let req = ClientRequest::new("ws://example.com/").unwrap();
    let mut p = Pair::with(cc, sc, &req, accept_all());
    // The client's request is lost, but the client is still listening.
    p.c2s.blackhole = true;
    p.drive_bounded(100);
    let (t, c) = p.server.closed();
    assert_eq!(t, Duration::from_secs(3));
    assert_eq!(c.error, Some(Error::Handshake(HandshakeError::Timeout)));
    let resp = String::from_utf8(p.s2c.bytes()).unwrap();
    assert!(resp.starts_with("HTTP/1.1 408 "), "{resp}");
    let (t, c) = p.client.closed();
    assert_eq!(t, Duration::from_secs(3) + LATENCY);
    assert_eq!(c.error, Some(Error::Handshake(HandshakeError::Status(408))));
}

#[test]
fn server_reject_with_custom_status_headers_and_body() {
    let handler: Handler = Box::new(|conn, ev, _| {
        if let Event::Request(r) = ev {
            assert!(r.is_websocket());
            let mut h = HeaderMap::new();
            h.insert("x-reason", HeaderValue::from_static("no token"));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999")); // replaced
            conn.reject(http_status(403), &h, b"forbidden!").unwrap();
            assert!(conn.is_closed());
            assert_eq!(
                conn.accept(Accept::new()).unwrap_err(),
                UsageError::NoPendingRequest
            );
        }
    });
    let mut p = Pair::new(handler);
    p.drive_bounded(100);
    let resp = String::from_utf8(p.s2c.bytes()).unwrap();
    assert!(resp.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{resp}");
    assert!(resp.contains("\r\nx-reason: no token\r\n"), "{resp}");
    assert!(resp.contains("\r\nContent-Length: 10\r\n"), "{resp}");
    assert!(!resp.contains("999"), "{resp}");
    assert!(resp.contains("\r\nConnection: close\r\n"), "{resp}");
    assert!(resp.ends_with("\r\n\r\nforbidden!"), "{resp}");
    let (_, c) = p.server.closed();
    assert_eq!((c.clean, c.error.clone(), c.initiator), (true, None, None));
    let (_, c) = p.client.closed();
    assert_eq!(c.error, Some(Error::Handshake(HandshakeError::Status(403))));
    assert!(!c.clean);
    assert_eq!(c.code(), CloseCode::ABNORMAL);
}

/// The request target is in origin form ("/" when the URL has no path,
/// RFC 6455 §3 resource name), whatever the URL looks like.
#[test]
fn request_target_for_urls() {
    let cases = [
        ("ws://example.com", "/", None),
        ("ws://example.com/", "/", None),
        ("ws://example.com?x=1", "/", Some("x=1")),
        ("ws://example.com/?x=1", "/", Some("x=1")),
        ("ws://example.com/a/b?c=d&e", "/a/b", Some("c=d&e")),
        ("wss://[::1]:9001/p", "/p", None),
    ];
    for (url, path, query) in cases {
        let handler: Handler = Box::new(move |conn, ev, _| {
            if let Event::Request(r) = ev {
                assert_eq!((r.path(), r.query()), (path, query), "{url}");
                conn.accept(Accept::new()).unwrap();
            }
        });
        let req = ClientRequest::new(url).unwrap();
        let mut p = Pair::with(config(1), config(2), &req, handler);
        p.drive_bounded(100);
        let head = String::from_utf8(p.c2s.sent[0].1.clone()).unwrap();
        let target = head.split(' ').nth(1).unwrap();
        assert!(target.starts_with('/'), "{url}: {head}");
        assert_eq!(p.client.events(), ["connected"], "{url}");
    }
}

#[test]
fn plain_http_request_answered_via_reject() {
    let now = Instant::now();
    let mut server = Connection::server(config(2), now);
    server.handle_input(
        now,
        b"GET /health?full=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
    );
    let Some(Event::Request(r)) = server.poll_event() else {
        panic!("no request")
    };
    assert!(!r.is_websocket());
    assert_eq!((r.path(), r.query()), ("/health", Some("full=1")));
    assert_eq!(
        server.accept(Accept::new()).unwrap_err(),
        UsageError::NotAnUpgrade
    );
    // The failed accept left the request pending.
    assert_eq!(server.state(), State::AwaitingDecision);
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    server.reject(http_status(200), &h, b"ok").unwrap();
    let ev = server.poll_event().unwrap();
    assert_eq!(ev_str(&ev), "closed:recv=-:sent=-:clean=true:err=none");
    assert!(server.poll_event().is_none());
    let mut out = Vec::new();
    server.poll_transmit(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
    assert_eq!(
        server.reject(http_status(200), &h, b"").unwrap_err(),
        UsageError::NoPendingRequest
    );
}

// ------------------------------------------------------------------ messages

#[test]
fn text_and_binary_echo() {
    let mut p = Pair::open(echo());
    let sent = vec![
        Message::text("hello"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::text(""),
        Message::binary(Vec::new()),
        Message::text("κόσμε ✓ 🎉"),
        Message::binary(vec![7u8; 70_000]),
        Message::text("x".repeat(126)),
    ];
    for m in &sent {
        p.client(|c, _| c.send(m.clone()).unwrap());
    }
    p.drive_bounded(200);
    assert_eq!(p.client.messages(), sent);
    assert_eq!(p.server.messages(), sent);
    // Client frames are masked, server frames are not.
    let c_frames: Vec<u8> = p.c2s.sent[1..]
        .iter()
        .flat_map(|(_, b)| b.clone())
        .collect();
    assert!(common::all_masked(&c_frames));
    let head_len = p.s2c.sent[0].1.len();
    let s_frames = &p.s2c.bytes()[head_len..];
    assert!(!common::all_masked(s_frames));
}

#[test]
fn fragmentation_both_ways() {
    let handler: Handler = Box::new(|conn, ev, _| match ev {
        Event::Request(_) => conn.accept(Accept::new()).unwrap(),
        Event::Message(m) => {
            // Echo in fragments of 3 bytes.
            let kind = if m.is_text() {
                MessageKind::Text
            } else {
                MessageKind::Binary
            };
            let b = m.as_bytes();
            let chunks: Vec<&[u8]> = if b.is_empty() {
                vec![&[][..]]
            } else {
                b.chunks(3).collect()
            };
            for (i, c) in chunks.iter().enumerate() {
                conn.send_fragment(kind, c, i + 1 == chunks.len()).unwrap();
            }
        }
        _ => {}
    });
    let mut p = Pair::open(handler);
    p.client(|c, now| {
        c.send_fragment(MessageKind::Text, "κό".as_bytes(), false)
            .unwrap();
        // A split code point and a ping between fragments.
        c.send_fragment(MessageKind::Text, &"σμε".as_bytes()[..1], false)
            .unwrap();
        c.send_ping(now, b"mid").unwrap();
        c.send_fragment(MessageKind::Binary, &"σμε".as_bytes()[1..], true)
            .unwrap();
        c.send_fragment(MessageKind::Binary, b"ab", false).unwrap();
        c.send_fragment(MessageKind::Binary, b"", false).unwrap();
        c.send_fragment(MessageKind::Binary, b"cdefgh", true)
            .unwrap();
    });
    p.drive_bounded(200);
    assert_eq!(
        p.server.messages(),
        [Message::text("κόσμε"), Message::binary(&b"abcdefgh"[..])]
    );
    assert_eq!(p.client.messages(), p.server.messages());
    let frames = decode_frames(&p.c2s.bytes()[p.c2s.sent[0].1.len()..]);
    assert_eq!(
        frames,
        [
            "text:0xcebacf8c+more",
            "cont:0xcf+more",
            "ping:mid",
            "cont:0x83cebcceb5",
            "binary:ab+more",
            "cont:+more",
            "cont:cdefgh",
        ]
    );
    assert!(
        p.client
            .events()
            .iter()
            .any(|e| e.starts_with("pong:mid:rtt="))
    );
}

#[test]
fn large_messages_one_mib() {
    let mut p = Pair::open(echo());
    p.server.write = WriteMode::Vectored(64 << 10);
    p.client.write = WriteMode::Vectored(100_000);
    let big: Vec<u8> = (0..1usize << 20).map(|i| (i * 7 + i / 251) as u8).collect();
    let text: String = "abcdefghij🎉".repeat((1 << 20) / 14);
    p.client(|c, _| {
        c.send_binary(&big).unwrap();
        c.send_text(&text).unwrap();
    });
    p.drive_bounded(500);
    assert_eq!(
        p.client.messages(),
        [Message::binary(big), Message::text(text)]
    );
}

#[test]
fn server_send_is_zero_copy_and_partial_writes_resume() {
    let now = Instant::now();
    let mut server = Connection::new_open(Role::Server, config(2), now);
    let payload = Bytes::from(vec![0x5a; 100_000]);
    server.send_text("before").unwrap();
    server.send(Message::Binary(payload.clone())).unwrap();
    server.send_text("after").unwrap();
    assert_eq!(server.transmit_len(), 2 + 6 + 10 + 100_000 + 2 + 5);
    {
        let mut slices = [IoSlice::new(&[]); 8];
        let n = server.transmit_vectored(&mut slices);
        assert!(n >= 2);
        // The payload is handed out as the caller's own buffer: not copied.
        assert!(
            slices[..n]
                .iter()
                .any(|s| s.as_ptr() == payload.as_ptr() && s.len() == payload.len()),
            "payload was copied"
        );
        let total: usize = slices[..n].iter().map(|s| s.len()).sum();
        assert_eq!(total, server.transmit_len());
        // A tiny destination array gets only the first slices.
        let mut one = [IoSlice::new(&[]); 1];
        assert_eq!(server.transmit_vectored(&mut one), 1);
        assert_eq!(server.transmit_vectored(&mut []), 0);
    }
    // Write it out with awkward partial writes, queueing a ping midway.
    let mut wrote = Vec::new();
    let sizes = [1usize, 3, 7, 4, 50_000, 1, 49_990, 2, 9, 1000];
    for (i, &want) in sizes.iter().cycle().enumerate() {
        if server.transmit_len() == 0 {
            break;
        }
        if i == 4 {
            server.send_ping(now, b"late").unwrap();
        }
        let mut slices = [IoSlice::new(&[]); 8];
        let n = server.transmit_vectored(&mut slices);
        let mut w = 0;
        for s in &slices[..n] {
            let take = s.len().min(want - w);
            wrote.extend_from_slice(&s[..take]);
            w += take;
            if w == want {
                break;
            }
        }
        server.advance_transmit(w);
    }
    assert_eq!(
        decode_frames(&wrote),
        [
            "text:before",
            "binary:repeat(0x5a,100000)",
            "text:after",
            "ping:late"
        ]
    );
    let mut rest = Vec::new();
    assert!(!server.poll_transmit(&mut rest));
    // A client copies (and masks) instead.
    let mut client = Connection::new_open(Role::Client, config(1), now);
    client.send(Message::Binary(payload.clone())).unwrap();
    let mut slices = [IoSlice::new(&[]); 8];
    let n = client.transmit_vectored(&mut slices);
    assert!(slices[..n].iter().all(|s| s.as_ptr() != payload.as_ptr()));
}

#[test]
fn partial_vectored_writes_then_poll_transmit_agree() {
    // The same output, taken all at once or in partial writes mixed with
    // poll_transmit, is the same bytes.
    let now = Instant::now();
    let build = || {
        let mut s = Connection::new_open(Role::Server, config(2), now);
        s.send_text("a").unwrap();
        s.send(Message::binary(vec![1u8; 20_000])).unwrap();
        s.send_text("b").unwrap();
        s
    };
    let mut whole = Vec::new();
    build().poll_transmit(&mut whole);
    for cut in [
        0usize,
        1,
        3,
        4,
        5,
        10_003,
        20_004,
        20_005,
        20_006,
        whole.len(),
    ] {
        let mut s = build();
        let mut got = Vec::new();
        let mut slices = [IoSlice::new(&[]); 8];
        let n = s.transmit_vectored(&mut slices);
        let flat: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
        got.extend_from_slice(&flat[..cut]);
        s.advance_transmit(cut);
        assert_eq!(s.transmit_len(), whole.len() - cut);
        s.send_text("c").unwrap();
        // poll_transmit appends to a non-empty buffer.
        s.poll_transmit(&mut got);
        let mut expected = whole.clone();
        expected.extend_from_slice(&[0x81, 0x01, b'c']);
        assert_eq!(got, expected, "cut at {cut}");
        assert_eq!(s.transmit_len(), 0);
    }
}

/// With `zero_copy_threshold` at 0 even an empty payload is "large": it
/// must not leave an empty slice at the front of the output, or a writer
/// that writes the first slice (`poll_write`) writes 0 bytes (WriteZero).
#[test]
fn empty_zero_copy_payload_leaves_no_empty_slice() {
    let now = Instant::now();
    let mut c = config(2);
    c.zero_copy_threshold = 0;
    let mut server = Connection::new_open(Role::Server, c, now);
    server.send(Message::binary(Bytes::new())).unwrap();
    server.send(Message::text("")).unwrap();
    let mut wrote = Vec::new();
    let mut write_first_slice = |server: &mut Connection| {
        while server.transmit_len() > 0 {
            let mut first = [IoSlice::new(&[])];
            assert_eq!(server.transmit_vectored(&mut first), 1);
            assert!(
                !first[0].is_empty(),
                "first slice empty with {} bytes queued",
                server.transmit_len()
            );
            wrote.extend_from_slice(&first[0]);
            let n = first[0].len();
            server.advance_transmit(n);
        }
    };
    write_first_slice(&mut server);
    server.send_text("x").unwrap();
    write_first_slice(&mut server);
    assert_eq!(decode_frames(&wrote), ["binary:", "text:", "text:x"]);
    let mut slices = [IoSlice::new(&[]); 4];
    assert_eq!(server.transmit_vectored(&mut slices), 0);
}

#[test]
#[should_panic(expected = "advance_transmit")]
fn advance_transmit_past_the_end_panics() {
    let mut s = Connection::new_open(Role::Server, config(2), Instant::now());
    s.send_text("abc").unwrap();
    s.advance_transmit(6);
}

// ------------------------------------------------------------------ ping

#[test]
fn ping_pong_rtt_is_the_simulated_round_trip() {
    for latency in [
        Duration::from_millis(1),
        Duration::from_millis(37),
        Duration::from_secs(2),
    ] {
        let mut p = Pair::new(accept_all());
        p.latency = latency;
        p.drive_until(100, |p| p.client.conn.is_open());
        let sent_at = p.elapsed();
        p.client(|c, now| c.send_ping(now, b"rtt?").unwrap());
        p.drive_bounded(100);
        assert_eq!(p.server.events().last().unwrap(), "ping:rtt?");
        let (t, ev) = p.client.log.last().unwrap();
        match ev {
            Event::Pong { payload, rtt } => {
                assert_eq!(&payload[..], b"rtt?");
                assert_eq!(*rtt, Some(2 * latency));
                assert_eq!(*t, sent_at + 2 * latency);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn several_pings_match_their_pongs() {
    let mut p = Pair::open(accept_all());
    p.client(|c, now| c.send_ping(now, b"1").unwrap());
    p.drive_until(10, |p| p.elapsed() >= Duration::from_millis(25));
    p.client(|c, now| {
        c.send_ping(now, b"2").unwrap();
        c.send_ping(now, b"").unwrap();
    });
    p.drive_bounded(100);
    let pongs: Vec<String> = p
        .client
        .events()
        .into_iter()
        .filter(|e| e.starts_with("pong"))
        .collect();
    assert_eq!(
        pongs,
        ["pong:1:rtt=20ms", "pong:2:rtt=20ms", "pong::rtt=20ms"]
    );
    // An unsolicited pong carries no rtt.
    p.server(|s, _| s.send_pong(b"unsolicited").unwrap());
    p.drive_bounded(100);
    assert_eq!(p.client.events().last().unwrap(), "pong:unsolicited");
}

#[test]
fn auto_pong_off_sends_no_pong() {
    let mut sc = config(2);
    sc.auto_pong = false;
    let req = ClientRequest::new("ws://example.com/").unwrap();
    let mut p = Pair::with(config(1), sc.clone(), &req, accept_all());
    p.drive_until(100, |p| p.client.conn.is_open());
    let before = p.s2c.sent.len();
    p.client(|c, now| c.send_ping(now, b"anyone?").unwrap());
    p.drive_bounded(100);
    assert_eq!(p.server.events().last().unwrap(), "ping:anyone?");
    assert_eq!(p.s2c.sent.len(), before, "the server sent something");
    assert!(!p.client.events().iter().any(|e| e.starts_with("pong")));

    // The application answers itself.
    let handler: Handler = Box::new(|conn, ev, _| match ev {
        Event::Request(_) => conn.accept(Accept::new()).unwrap(),
        Event::Ping(p) => conn.send_pong(p).unwrap(),
        _ => {}
    });
    let mut p = Pair::with(config(1), sc, &req, handler);
    p.drive_until(100, |p| p.client.conn.is_open());
    p.client(|c, now| c.send_ping(now, b"anyone?").unwrap());
    p.drive_bounded(100);
    assert_eq!(p.client.events().last().unwrap(), "pong:anyone?:rtt=20ms");
}

// ------------------------------------------------------------------ closing

#[test]
fn close_initiated_by_client() {
    let mut p = Pair::open(echo());
    p.client(|c, _| c.send_text("last words").unwrap());
    let t0 = p.elapsed();
    p.client(|c, now| c.close(now, CloseCode::NORMAL, "bye").unwrap());
    assert_eq!(p.client.conn.state(), State::ClosingLocal);
    assert_eq!(
        p.client.conn.poll_timeout(),
        Some(p.now() + Duration::from_secs(5))
    );
    p.drive_bounded(100);
    // The server echoes the code (without the reason) and closes at once.
    let (ts, s) = p.server.closed();
    assert_eq!(ts, t0 + LATENCY);
    assert_eq!(
        closed_with(s),
        "closed:recv=1000(\"bye\"):sent=1000:clean=true:err=none"
    );
    assert_eq!(s.initiator, Some(Initiator::Remote));
    // The close arrived behind the message: it takes effect once the
    // application has drained the message, so the echo leaves before the
    // close reply.
    assert_eq!(
        p.server.events()[2..],
        ["text:last words".to_string(), closed_with(s)]
    );
    // The server's close reaches the client, which ends on the server's EOF,
    // not on its close timer.
    let (tc, c) = p.client.closed();
    assert_eq!(tc, t0 + 2 * LATENCY);
    assert_eq!(
        closed_with(c),
        "closed:recv=1000:sent=1000(\"bye\"):clean=true:err=none"
    );
    assert_eq!(c.initiator, Some(Initiator::Local));
    assert_eq!(c.code(), CloseCode::NORMAL);
    // A client that sent its close still receives data until the peer's.
    assert_eq!(p.client.messages().len(), 1);
    assert!(p.client.transport_closed && p.server.transport_closed);
    assert_eq!(
        decode_frames(&p.s2c.bytes()[p.s2c.sent[0].1.len()..]),
        ["text:last words", "close:1000"]
    );
}

#[test]
fn close_initiated_by_server() {
    let mut p = Pair::open(accept_all());
    let t0 = p.elapsed();
    p.server(|s, now| s.close(now, CloseCode::GOING_AWAY, "restart").unwrap());
    // Data may still come in while closing; sending data may not.
    assert_eq!(
        p.server(|s, _| s.send_text("x")).unwrap_err(),
        UsageError::NotOpen
    );
    p.client(|c, _| c.send_text("in flight").unwrap());
    p.drive_bounded(100);
    let (tc, c) = p.client.closed();
    let (ts, s) = p.server.closed();
    assert_eq!(ts, t0 + 2 * LATENCY, "server ends on the echo");
    assert_eq!(tc, t0 + 3 * LATENCY, "client ends on the server's EOF");
    assert_eq!(
        closed_with(s),
        "closed:recv=1001:sent=1001(\"restart\"):clean=true:err=none"
    );
    assert_eq!(s.initiator, Some(Initiator::Local));
    assert_eq!(
        closed_with(c),
        "closed:recv=1001(\"restart\"):sent=1001:clean=true:err=none"
    );
    assert_eq!(c.initiator, Some(Initiator::Remote));
    assert_eq!(p.server.messages(), [Message::text("in flight")]);
}

#[test]
fn client_gives_up_waiting_for_the_servers_eof() {
    let mut p = Pair::open(accept_all());
    p.server(|s, now| s.close(now, CloseCode::NORMAL, "").unwrap());
    // Let the close reach the client, then lose everything the server sends
    // afterwards, including its EOF.
    p.drive_until(100, |p| p.client.conn.state() == State::ClosingRemote);
    let t_remote = p.elapsed();
    p.s2c.blackhole = true;
    p.drive_bounded(100);
    let (tc, c) = p.client.closed();
    assert_eq!(tc, t_remote + Duration::from_secs(5));
    // Both close frames were exchanged: still a clean close.
    assert_eq!(
        closed_with(c),
        "closed:recv=1000:sent=1000:clean=true:err=none"
    );
}

#[test]
fn close_timeout_when_the_peer_never_answers() {
    for (role, timeout) in [
        (Role::Client, Duration::from_secs(5)),
        (Role::Server, Duration::from_millis(1500)),
    ] {
        let req = ClientRequest::new("ws://example.com/").unwrap();
        let (mut cc, mut sc) = (config(1), config(2));
        cc.close_timeout = timeout;
        sc.close_timeout = timeout;
        let mut p = Pair::with(cc, sc, &req, accept_all());
        p.drive_until(100, |p| p.client.conn.is_open() && p.server.conn.is_open());
        let t0 = p.elapsed();
        match role {
            Role::Client => {
                p.c2s.blackhole = true;
                p.client(|c, now| c.close(now, CloseCode::NORMAL, "").unwrap());
            }
            _ => {
                p.s2c.blackhole = true;
                p.server(|s, now| s.close(now, CloseCode::NORMAL, "").unwrap());
            }
        }
        p.drive_bounded(100);
        let side = if role == Role::Client {
            &p.client
        } else {
            &p.server
        };
        let (t, c) = side.closed();
        assert_eq!(t, t0 + timeout, "{role:?}");
        assert_eq!(c.error, Some(Error::CloseTimeout(timeout)));
        assert_eq!(
            closed_with(c),
            format!("closed:recv=-:sent=1000:clean=false:err=CloseTimeout({timeout:?})")
        );
        assert_eq!(c.initiator, Some(Initiator::Local));
        assert!(side.conn.poll_timeout().is_none());
    }
}

#[test]
fn eof_mid_message_is_abnormal() {
    let mut p = Pair::open(accept_all());
    p.client(|c, _| {
        c.send_fragment(MessageKind::Text, b"half a mess", false)
            .unwrap()
    });
    p.drive_bounded(100);
    p.abort(Role::Client);
    p.drive_bounded(100);
    let (_, s) = p.server.closed();
    assert_eq!(closed_with(s), "closed:recv=-:sent=-:clean=false:err=Eof");
    assert_eq!(s.code(), CloseCode::ABNORMAL);
    assert_eq!(s.initiator, None);
    assert!(p.server.messages().is_empty());
}

#[test]
fn eof_during_closing_local_is_abnormal() {
    let mut p = Pair::open(accept_all());
    p.c2s.blackhole = true;
    p.client(|c, now| c.close(now, CloseCode::NORMAL, "").unwrap());
    p.abort(Role::Server);
    p.drive_bounded(100);
    let (t, c) = p.client.closed();
    assert!(t < Duration::from_secs(1));
    assert_eq!(
        closed_with(c),
        "closed:recv=-:sent=1000:clean=false:err=Eof"
    );
}

#[test]
fn max_message_size_closes_with_1009() {
    let mut sc = config(2);
    sc.max_message_size = 1000;
    let req = ClientRequest::new("ws://example.com/").unwrap();
    let mut p = Pair::with(config(1), sc, &req, echo());
    p.drive_until(100, |p| p.client.conn.is_open());
    p.client(|c, _| c.send_binary(&[1; 1000]).unwrap()); // exactly the limit: fine
    p.drive_bounded(100);
    assert_eq!(p.client.messages().len(), 1);
    p.client(|c, _| {
        c.send_fragment(MessageKind::Binary, &[2; 600], false)
            .unwrap();
        c.send_fragment(MessageKind::Binary, &[2; 401], true)
            .unwrap();
    });
    p.drive_bounded(100);
    let (_, s) = p.server.closed();
    assert_eq!(
        s.error,
        Some(Error::Protocol(ProtocolError::MessageTooLarge {
            size: 1001,
            max: 1000
        }))
    );
    assert_eq!(s.sent.as_ref().unwrap().code, CloseCode::MESSAGE_TOO_BIG);
    // The client got the echo of the first message, then close 1009.
    let (_, c) = p.client.closed();
    assert_eq!(
        c.received.as_ref().unwrap().code,
        CloseCode::MESSAGE_TOO_BIG
    );
    assert_eq!(c.code(), CloseCode::MESSAGE_TOO_BIG);
    assert_eq!(c.initiator, Some(Initiator::Remote));
    assert_eq!(p.client.messages(), [Message::binary(vec![1u8; 1000])]);
}

#[test]
fn stream_fragments_mode() {
    let mut sc = config(2);
    sc.stream_fragments = true;
    sc.max_message_size = 10;
    let req = ClientRequest::new("ws://example.com/").unwrap();
    let mut p = Pair::with(config(1), sc, &req, accept_all());
    p.drive_until(100, |p| p.client.conn.is_open());
    p.client(|c, now| {
        c.send_fragment(MessageKind::Text, "ab".as_bytes(), false)
            .unwrap();
        c.send_ping(now, b"").unwrap();
        c.send_fragment(MessageKind::Text, &"é".as_bytes()[..1], false)
            .unwrap();
        c.send_fragment(MessageKind::Text, &"é".as_bytes()[1..], true)
            .unwrap();
        c.send_text("whole").unwrap(); // unfragmented: still a Message
        c.send_fragment(MessageKind::Binary, &[1, 2], false)
            .unwrap();
        c.send_fragment(MessageKind::Binary, &[3], true).unwrap();
        // The limit still holds over the fragments: 6 + 5 > 10.
        c.send_fragment(MessageKind::Binary, &[0; 6], false)
            .unwrap();
        c.send_fragment(MessageKind::Binary, &[0; 5], true).unwrap();
    });
    p.drive_bounded(100);
    assert_eq!(
        p.server.events()[2..],
        [
            "fragment:text:more:ab",
            "ping:",
            "fragment:text:more:0xc3",
            "fragment:text:fin:0xa9",
            "text:whole",
            "fragment:binary:more:0x0102",
            "fragment:binary:fin:0x03",
            "fragment:binary:more:0x000000000000",
            "closed:recv=-:sent=1009:clean=false:err=Protocol(MessageTooLarge { size: 11, max: 10 })",
        ]
    );
}

#[test]
fn backpressure_wants_read() {
    let now = Instant::now();
    let mut c = config(2);
    c.max_buffered_bytes = 1000;
    let mut server = Connection::new_open(Role::Server, c, now);
    assert!(server.wants_read());
    let mut input = Vec::new();
    for _ in 0..3 {
        input.extend(frame_to(Role::Server, true, 0x2, &[9; 400]));
    }
    input.extend(frame_to(
        Role::Server,
        true,
        0x9,
        b"control frames weigh nothing",
    ));
    server.handle_input(now, &input[..2 * 408]);
    assert!(server.wants_read(), "800 < 1000 bytes queued");
    server.handle_input(now, &input[2 * 408..]);
    assert!(!server.wants_read(), "1200 bytes of payload queued");
    // Draining one message is enough to go below the limit.
    assert!(matches!(server.poll_event(), Some(Event::Message(_))));
    assert!(server.wants_read());
    while server.poll_event().is_some() {}
    assert!(server.wants_read());
    // Streamed fragments count too; a single message may go past the limit.
    let mut c = config(2);
    c.max_buffered_bytes = 1000;
    c.stream_fragments = true;
    let mut server = Connection::new_open(Role::Server, c, now);
    server.handle_input(now, &frame_to(Role::Server, false, 0x2, &[1; 999]));
    assert!(server.wants_read());
    server.handle_input(now, &frame_to(Role::Server, true, 0x0, &[1; 1]));
    assert!(!server.wants_read());
    while server.poll_event().is_some() {}
    assert!(server.wants_read());
    server.handle_input(now, &frame_to(Role::Server, true, 0x2, &[1; 5000]));
    assert!(!server.wants_read());
    server.poll_event();
    assert!(server.wants_read());
}

#[test]
fn backpressure_in_the_simulation_holds_the_wire() {
    // A server application that does not drain its events: the harness
    // stops delivering once wants_read is false, then resumes.
    let mut sc = config(2);
    sc.max_buffered_bytes = 10_000;
    let req = ClientRequest::new("ws://example.com/").unwrap();
    let mut p = Pair::with(config(1), sc, &req, accept_all());
    p.drive_until(100, |p| p.client.conn.is_open());
    // Take the server's events away from the harness by hand.
    for _ in 0..10 {
        p.client(|c, _| c.send_binary(&[0; 4000]).unwrap());
        // Deliver by hand without draining the server.
        let mut buf = Vec::new();
        p.client.conn.poll_transmit(&mut buf);
        if p.server.conn.wants_read() {
            p.server.conn.handle_input(p.now(), &buf);
        } else {
            // The transport would hold these bytes.
            p.c2s.in_flight.push_back((p.now(), Chunk::Data(buf)));
        }
    }
    assert!(!p.server.conn.wants_read());
    assert!(!p.c2s.in_flight.is_empty());
    p.drive_bounded(100);
    assert_eq!(p.server.messages().len(), 10);
    assert!(p.server.conn.wants_read());
}

#[test]
fn seeded_rng_gives_reproducible_bytes() {
    let run = |client_seed: Option<[u8; 32]>| {
        let mut cc = Config::default();
        cc.rng_seed = client_seed;
        let req = ClientRequest::new("ws://example.com/").unwrap();
        let mut p = Pair::with(cc, config(2), &req, echo());
        p.drive_until(100, |p| p.client.conn.is_open());
        p.client(|c, now| {
            c.send_text("same").unwrap();
            c.send_binary(&[1, 2, 3]).unwrap();
            c.send_ping(now, b"p").unwrap();
            c.close(now, CloseCode::NORMAL, "done").unwrap();
        });
        p.drive_bounded(100);
        (
            p.c2s.bytes(),
            p.s2c.bytes(),
            p.client.events(),
            p.server.events(),
        )
    };
    let a = run(Some([3; 32]));
    let b = run(Some([3; 32]));
    assert_eq!(a, b, "same seed, same bytes");
    let c = run(Some([4; 32]));
    assert_ne!(a.0, c.0, "another seed, other keys and masks");
    assert_eq!(a.2, c.2, "but the same events");
    assert_eq!(a.3, c.3);
    let d = run(None);
    let e = run(None);
    assert_ne!(d.0, e.0, "unseeded runs differ");
    assert_eq!(d.2, e.2);
    // The seeded handshake key is stable, so the request is too.
    let key_line = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .find(|l| l.starts_with("Sec-WebSocket-Key"))
            .unwrap()
            .to_string()
    };
    assert_eq!(key_line(&a.0), key_line(&b.0));
    assert_ne!(key_line(&a.0), key_line(&c.0));
}

#[test]
fn handshake_timeout_then_late_accept_does_not_reopen() {
    // A server application that is slow to decide: the handshake times out
    // while the request waits for accept/reject.
    let now = Instant::now();
    let mut c = config(2);
    c.handshake_timeout = Some(Duration::from_secs(1));
    let mut server = Connection::server(c, now);
    let req = ClientRequest::new("ws://example.com/").unwrap();
    let mut client = Connection::client(&req, config(1), now);
    let mut buf = Vec::new();
    client.poll_transmit(&mut buf);
    server.handle_input(now, &buf);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.handle_timeout(now + Duration::from_secs(1));
    let ev = server.poll_event().unwrap();
    assert_eq!(
        ev_str(&ev),
        "closed:recv=-:sent=-:clean=false:err=Handshake(Timeout)"
    );
    assert!(server.is_closed());
    // The decision arrives too late: refused, and the connection stays closed.
    assert_eq!(
        server.accept(Accept::new()).unwrap_err(),
        UsageError::NoPendingRequest
    );
    assert!(server.is_closed());
    assert!(server.poll_event().is_none(), "no event after Closed");
    assert!(
        server
            .reject(http_status(500), &HeaderMap::new(), b"")
            .is_err()
    );
    assert!(server.poll_event().is_none(), "no event after Closed");
    let mut out = Vec::new();
    assert!(
        !server.poll_transmit(&mut out),
        "nothing sent after Closed: {out:?}"
    );
}

#[test]
fn timers_fire_only_when_due_and_time_never_goes_back() {
    let mut p = Pair::open(accept_all());
    p.c2s.blackhole = true;
    p.client(|c, now| c.close(now, CloseCode::NORMAL, "").unwrap());
    let deadline = p.client.conn.poll_timeout().unwrap();
    // Early calls are harmless.
    p.client
        .conn
        .handle_timeout(deadline - Duration::from_nanos(1));
    assert_eq!(p.client.conn.state(), State::ClosingLocal);
    assert_eq!(p.client.conn.poll_timeout(), Some(deadline));
    // A stale `now` (earlier than one already seen) does not fire either.
    p.client.conn.handle_timeout(p.clock.start());
    assert_eq!(p.client.conn.state(), State::ClosingLocal);
    p.client.conn.handle_timeout(deadline);
    assert!(p.client.conn.is_closed());
}
