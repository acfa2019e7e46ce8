//! Tests of compressed messages: round trips with and without context
//! takeover, fragmentation, the decompression bomb guard, RSV1 misuse and
//! corrupt data.
//
// Compiled only under #[cfg(test)] (see `mod tests` in deflate.rs), so the
// sans-IO check in .ci/run skips this file like other test modules.

use super::*;

// ------------------------------------------------------------ messages

#[test]
fn round_trip_compresses_above_the_threshold_only() {
    let mut p = Pair::new(deflate_config(), deflate_config());
    let big = json(16 << 10);
    p.client.send_text(&big).unwrap();
    p.client.send_text("small").unwrap();
    p.client.send_binary(big.as_bytes()).unwrap();
    let (wire, events) = p.pump_to_server();
    let f = frames(&wire);
    assert_eq!(f.len(), 3);
    assert_eq!(f[0].0.rsv, RSV1_BIT);
    assert!(f[0].1.len() < big.len() / 3, "{} bytes", f[0].1.len());
    assert_eq!(f[1].0.rsv, 0, "below the threshold: uncompressed");
    assert_eq!(f[1].1, b"small");
    assert_eq!(f[2].0.rsv, RSV1_BIT);
    assert_eq!(
        messages(&events),
        [
            Message::text(big.clone()),
            Message::text("small"),
            Message::binary(big.clone().into_bytes())
        ]
    );
    // And back, from the server (zero-copy sized payloads too).
    for m in messages(&events) {
        p.server.send(m).unwrap();
    }
    let (wire, events) = p.pump_to_client();
    assert_eq!(frames(&wire)[0].0.rsv, RSV1_BIT);
    assert_eq!(messages(&events).len(), 3);
    assert_eq!(messages(&events)[2], Message::binary(big.into_bytes()));
}

const RSV1_BIT: u8 = 0b100;

#[test]
fn context_takeover_shrinks_repeats_and_no_context_takeover_resets() {
    let msg = json(4 << 10);
    for local_nct in [false, true] {
        let mut client = deflate_config();
        client.deflate.as_mut().unwrap().local_no_context_takeover = local_nct;
        let mut p = Pair::new(client, deflate_config());
        assert!(
            !p.server
                .permessage_deflate()
                .unwrap()
                .remote_no_context_takeover
        );
        let mut sizes = Vec::new();
        for _ in 0..3 {
            p.client.send_text(&msg).unwrap();
            let (wire, events) = p.pump_to_server();
            sizes.push(frames(&wire)[0].1.len());
            assert_eq!(messages(&events), [Message::text(msg.clone())]);
        }
        if local_nct {
            assert!(sizes.iter().all(|&s| s == sizes[0]), "{sizes:?}");
        } else {
            // The repeat is one back-reference away.
            assert!(sizes[1] < sizes[0] / 10, "{sizes:?}");
        }
    }
    // The server resets when the client asks it to.
    let mut client = deflate_config();
    client.deflate.as_mut().unwrap().remote_no_context_takeover = true;
    let mut p = Pair::new(client, deflate_config());
    assert!(
        p.server
            .permessage_deflate()
            .unwrap()
            .local_no_context_takeover
    );
    let mut sizes = Vec::new();
    for _ in 0..3 {
        p.server.send_text(&msg).unwrap();
        let (wire, events) = p.pump_to_client();
        sizes.push(frames(&wire)[0].1.len());
        assert_eq!(messages(&events), [Message::text(msg.clone())]);
    }
    assert!(sizes.iter().all(|&s| s == sizes[0]), "{sizes:?}");
}

#[test]
fn small_windows_round_trip_and_window_8_sends_uncompressed() {
    for bits in [8u8, 9, 12] {
        let mut client = deflate_config();
        client.deflate.as_mut().unwrap().remote_max_window_bits = bits;
        client.deflate.as_mut().unwrap().local_max_window_bits = bits;
        let mut p = Pair::new(client, deflate_config());
        assert_eq!(
            p.server.permessage_deflate().unwrap().local_max_window_bits,
            bits
        );
        let msg = json(64 << 10);
        p.server.send_text(&msg).unwrap();
        let (wire, events) = p.pump_to_client();
        assert_eq!(
            frames(&wire)[0].0.rsv,
            if bits == 8 { 0 } else { RSV1_BIT },
            "bits {bits}"
        );
        assert_eq!(messages(&events), [Message::text(msg.clone())]);
        p.client.send_text(&msg).unwrap();
        let (wire, events) = p.pump_to_server();
        // The client clamps its own window to 9 and offers 9.
        assert_eq!(frames(&wire)[0].0.rsv, RSV1_BIT);
        assert_eq!(messages(&events), [Message::text(msg)]);
    }
}

#[test]
fn fragmented_compressed_messages_both_ways() {
    let text = json(10 << 10);
    let (a, b) = text.as_bytes().split_at(4000);
    for stream in [false, true] {
        let mut server = deflate_config();
        server.stream_fragments = stream;
        let mut p = Pair::new(deflate_config(), server);
        p.client.send_fragment(MessageKind::Text, a, false).unwrap();
        p.client.send_fragment(MessageKind::Text, b, false).unwrap();
        p.client.send_ping(p.now, b"between").unwrap();
        p.client
            .send_fragment(MessageKind::Text, b"", true)
            .unwrap();
        let (wire, events) = p.pump_to_server();
        let f = frames(&wire);
        let rsv: Vec<_> = f.iter().map(|(h, _)| h.rsv).collect();
        assert_eq!(rsv, [RSV1_BIT, 0, 0, 0], "RSV1 on the first frame only");
        if stream {
            let mut got = Vec::new();
            for e in &events {
                if let Event::Fragment(f) = e {
                    got.extend_from_slice(&f.data);
                }
            }
            assert_eq!(got, text.as_bytes());
            assert!(matches!(events.last(), Some(Event::Fragment(f)) if f.fin));
        } else {
            assert_eq!(messages(&events), [Message::text(text.clone())]);
        }
        // A fragmented message whose first fragment is small goes uncompressed.
        p.client
            .send_fragment(MessageKind::Binary, b"x", false)
            .unwrap();
        p.client
            .send_fragment(MessageKind::Binary, a, true)
            .unwrap();
        let (wire, _) = p.pump_to_server();
        assert!(frames(&wire).iter().all(|(h, _)| h.rsv == 0));
    }
}

#[test]
fn many_messages_over_one_context_in_odd_read_sizes() {
    let mut p = Pair::new(deflate_config(), deflate_config());
    let mut sent = Vec::new();
    for i in 0..50 {
        let m = json(100 + i * 97);
        p.client.send_text(&m).unwrap();
        sent.push(Message::text(m));
    }
    let wire = p.client_out();
    let mut events = Vec::new();
    for chunk in wire.chunks(333) {
        p.server.handle_input(p.now, chunk);
        events.extend(drain(&mut p.server));
    }
    assert_eq!(messages(&events), sent);
}

#[test]
fn empty_message_and_send_parts() {
    let mut client = deflate_config();
    client.deflate.as_mut().unwrap().threshold = 0;
    let mut p = Pair::new(client, deflate_config());
    p.client.send_text("").unwrap();
    p.client
        .send_parts(MessageKind::Binary, &[b"header:", json(500).as_bytes()])
        .unwrap();
    let (wire, events) = p.pump_to_server();
    assert!(frames(&wire).iter().all(|(h, _)| h.rsv == RSV1_BIT));
    let mut expect = b"header:".to_vec();
    expect.extend_from_slice(json(500).as_bytes());
    assert_eq!(
        messages(&events),
        [Message::text(""), Message::binary(expect)]
    );
}

#[test]
fn a_final_block_ends_the_stream_and_the_next_message_starts_anew() {
    let mut server = open_server(Config::default());
    let now = Instant::now();
    for text in ["first message", "second message"] {
        let mut c = Compress::new_with_window_bits(Compression::new(6), false, 15);
        let mut out = Vec::with_capacity(256);
        c.compress_vec(text.as_bytes(), &mut out, FlushCompress::Finish)
            .unwrap();
        server.handle_input(now, &client_frame(true, RSV1_BIT, OpCode::Text, &out));
        let ev = drain(&mut server);
        assert_eq!(messages(&ev), [Message::text(text)], "{ev:?}");
    }
}

// ------------------------------------------------------------ failures

#[test]
fn decompression_bomb_closes_1009_with_bounded_memory() {
    let max = 1 << 20;
    let bomb = compress_raw(&vec![0u8; 32 << 20]);
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());

    // The codec on its own: it stops one byte past the limit.
    let mut d = Deflate::new(DeflateParams::default(), None);
    d.begin(MessageKind::Binary);
    let mut utf8 = Utf8Validator::default();
    let err = d.inflate(&bomb, true, max, &mut utf8).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::MessageTooLarge {
            size: max as u64 + 1,
            max
        }
    );
    assert!(d.rx.as_ref().unwrap().out.capacity() <= max + 1);

    // A connection fails as the compressed bytes arrive, long before the
    // whole (small) frame has: the first 16 KiB inflate past 1 MiB.
    let mut config = Config::default();
    config.max_message_size = max;
    let mut server = open_server(config);
    let frame = client_frame(true, RSV1_BIT, OpCode::Binary, &bomb);
    let now = Instant::now();
    let mut fed = 0;
    let mut events = Vec::new();
    for chunk in frame.chunks(4096) {
        server.handle_input(now, chunk);
        fed += chunk.len();
        events.extend(drain(&mut server));
        if server.is_closed() {
            break;
        }
    }
    assert!(
        fed < frame.len() / 2,
        "failed after {fed} of {} bytes",
        frame.len()
    );
    let (code, err) = protocol_error(&events);
    assert_eq!(code, CloseCode::MESSAGE_TOO_BIG);
    assert!(matches!(err, ProtocolError::MessageTooLarge { .. }));
}

#[test]
fn the_limit_applies_to_the_decompressed_size_across_fragments() {
    let mut config = Config::default();
    config.max_message_size = 10_000;
    let data = json(12_000);
    let compressed = compress_raw(data.as_bytes());
    assert!(compressed.len() < 10_000);
    let (a, b) = compressed.split_at(compressed.len() / 2);
    let mut server = open_server(config.clone());
    server.handle_input(
        Instant::now(),
        &client_frame(false, RSV1_BIT, OpCode::Text, a),
    );
    server.handle_input(
        Instant::now(),
        &client_frame(true, 0, OpCode::Continuation, b),
    );
    let (code, _) = protocol_error(&drain(&mut server));
    assert_eq!(code, CloseCode::MESSAGE_TOO_BIG);

    // Exactly at the limit is fine.
    config.max_message_size = data.len();
    let mut server = open_server(config);
    server.handle_input(
        Instant::now(),
        &client_frame(true, RSV1_BIT, OpCode::Text, &compressed),
    );
    assert_eq!(messages(&drain(&mut server)), [Message::text(data)]);
}

#[test]
fn rsv1_misuse_fails_with_1002() {
    let now = Instant::now();
    let compressed = compress_raw(b"hello");
    let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
        (
            [
                client_frame(false, 0, OpCode::Text, b"he"),
                client_frame(true, RSV1_BIT, OpCode::Continuation, b"llo"),
            ]
            .concat(),
            ProtocolError::CompressedContinuation,
        ),
        (
            [
                client_frame(false, RSV1_BIT, OpCode::Text, &compressed),
                client_frame(true, RSV1_BIT, OpCode::Continuation, b""),
            ]
            .concat(),
            ProtocolError::CompressedContinuation,
        ),
        (
            client_frame(true, RSV1_BIT, OpCode::Ping, b"p"),
            ProtocolError::CompressedControlFrame,
        ),
        (
            client_frame(true, RSV1_BIT, OpCode::Close, &[3, 232]),
            ProtocolError::CompressedControlFrame,
        ),
        (
            client_frame(true, 0b010, OpCode::Text, b"x"),
            ProtocolError::ReservedBits(0b010),
        ),
        (
            client_frame(true, 0b110, OpCode::Text, b"x"),
            ProtocolError::ReservedBits(0b110),
        ),
    ];
    for (wire, expected) in cases {
        let mut server = open_server(Config::default());
        server.handle_input(now, &wire);
        let (code, err) = protocol_error(&drain(&mut server));
        assert_eq!((code, err), (CloseCode::PROTOCOL_ERROR, expected));
    }
    // Without the extension negotiated, RSV1 is a reserved bit.
    let mut server = Connection::new_open(Role::Server, Config::default(), now);
    server.handle_input(
        now,
        &client_frame(true, RSV1_BIT, OpCode::Text, &compressed),
    );
    assert_eq!(
        protocol_error(&drain(&mut server)),
        (
            CloseCode::PROTOCOL_ERROR,
            ProtocolError::ReservedBits(RSV1_BIT)
        )
    );
}

#[test]
fn invalid_utf8_in_compressed_text_fails_fast_with_1007() {
    // Valid text, then a surrogate, then lots more: the error must come as
    // soon as the bad bytes are inflated, not at the end of the frame.
    let mut text = json(2000).into_bytes();
    text.extend_from_slice(&[0xED, 0xA0, 0x80]);
    text.extend(std::iter::repeat_n(b'a', 1 << 20));
    let compressed = compress_raw(&text);
    let frame = client_frame(true, RSV1_BIT, OpCode::Text, &compressed);
    let mut server = open_server(Config::default());
    let now = Instant::now();
    let mut fed = 0;
    let mut events = Vec::new();
    for chunk in frame.chunks(64) {
        server.handle_input(now, chunk);
        fed += chunk.len();
        events.extend(drain(&mut server));
        if server.is_closed() {
            break;
        }
    }
    assert!(fed < frame.len(), "failed only at the end");
    assert_eq!(
        protocol_error(&events),
        (CloseCode::INVALID_PAYLOAD, ProtocolError::InvalidUtf8)
    );

    // A code point cut off at the end of the message.
    let frame = client_frame(
        true,
        RSV1_BIT,
        OpCode::Text,
        &compress_raw(&[b'a', 0xE2, 0x82]),
    );
    let mut server = open_server(Config::default());
    server.handle_input(now, &frame);
    assert_eq!(
        protocol_error(&drain(&mut server)),
        (CloseCode::INVALID_PAYLOAD, ProtocolError::InvalidUtf8)
    );
}

#[test]
fn corrupt_deflate_data_fails_with_1007() {
    let mut server = open_server(Config::default());
    // BTYPE 11 (reserved) in the first block header.
    server.handle_input(
        Instant::now(),
        &client_frame(true, RSV1_BIT, OpCode::Binary, &[0xff, 0xff, 0xff]),
    );
    let (code, err) = protocol_error(&drain(&mut server));
    assert_eq!(code, CloseCode::INVALID_PAYLOAD);
    assert!(
        matches!(err, ProtocolError::InvalidCompressedData(_)),
        "{err:?}"
    );
}

#[test]
fn messages_before_a_bad_compressed_frame_are_answered_first() {
    let mut server = open_server(Config::default());
    let wire = [
        client_frame(true, RSV1_BIT, OpCode::Text, &compress_raw(b"hello")),
        client_frame(true, RSV1_BIT, OpCode::Ping, b""),
    ]
    .concat();
    server.handle_input(Instant::now(), &wire);
    let events = drain(&mut server);
    assert_eq!(messages(&events), [Message::text("hello")]);
    assert_eq!(
        protocol_error(&events).1,
        ProtocolError::CompressedControlFrame
    );
}

#[test]
fn plain_connections_are_unaffected() {
    let mut p = Pair::new(Config::default(), Config::default());
    let big = json(20 << 10);
    p.client.send_text(&big).unwrap();
    let (wire, events) = p.pump_to_server();
    assert_eq!(frames(&wire)[0].0.rsv, 0);
    assert_eq!(frames(&wire)[0].1.len(), big.len());
    assert_eq!(messages(&events), [Message::text(big)]);
    let _ = Bytes::new();
}
