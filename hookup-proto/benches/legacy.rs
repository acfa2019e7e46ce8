//! The legacy `jsonProtocol` envelope parser (`legacy::Envelope::parse`)
//! on typical input: an `ack_request` whose inner `json` envelope carries
//! a 1 KiB JSON object, the same with 1 KiB of text (with a few escapes),
//! and a bare `ack`; plus `RawJson::new` on the 1 KiB object (what
//! `Session::send_json` checks). Throughput counts input bytes.
//!
//! Run: `cargo bench -p hookup-proto --bench legacy`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hookup_proto::reliable::legacy::{Envelope, RawJson};

/// A JSON object of about 1 KiB: a batch of small records, as a pub/sub
/// application would send.
fn json_1k() -> String {
    let mut items = Vec::new();
    let mut i = 0;
    loop {
        let item = format!(
            r#"{{"id":{i},"name":"item \"{i}\"","price":{}.25,"tags":["a","b\u00e9"],"ok":true,"next":null}}"#,
            i * 7
        );
        let len: usize = items.iter().map(|s: &String| s.len() + 1).sum();
        if len + item.len() > 960 {
            break;
        }
        items.push(item);
        i += 1;
    }
    format!(
        r#"{{"event":"publish","topic":"orders.eu","data":[{}]}}"#,
        items.join(",")
    )
}

fn bench(c: &mut Criterion) {
    let json = json_1k();
    let ack_request_json = format!(
        r#"{{"type":"ack_request","id":12345,"content":{{"type":"json","content":{json}}}}}"#
    );
    let text = "Lorem ipsum dolor sit amet, \"consectetur\" adipiscing elit.\n".repeat(17);
    let ack_request_text = Envelope::AckRequest {
        id: 12345,
        payload: hookup_proto::reliable::legacy::Payload::Text(text.as_str().into()),
    }
    .to_string();
    let ack = r#"{"type":"ack","id":12345}"#;
    assert!(matches!(
        Envelope::parse(&ack_request_json),
        Ok(Envelope::AckRequest { id: 12345, .. })
    ));
    assert!(Envelope::parse(&ack_request_text).is_ok());
    let mut g = c.benchmark_group("legacy");
    for (name, input) in [
        ("parse_ack_request_json_1k", ack_request_json.as_str()),
        ("parse_ack_request_text_1k", ack_request_text.as_str()),
        ("parse_ack", ack),
    ] {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| Envelope::parse(black_box(input)).is_ok())
        });
    }
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("raw_json_new_1k", |b| {
        b.iter(|| RawJson::new(black_box(&json)).is_ok())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
