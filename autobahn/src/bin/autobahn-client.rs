//! Walks a fuzzing server (`kosoku -m fuzzingserver`): asks for the number of
//! cases, runs each as an echo client, then asks it to write the reports.
//!
//! Usage: `autobahn-client [--deflate] BASE_URL AGENT` (for example
//! `ws://127.0.0.1:9001 hookup-tokio`). With `--deflate` it offers
//! permessage-deflate (cases 12.x and 13.x), compressing every message and
//! offering `client_no_context_takeover` as Autobahn's own client does (its
//! 13.2, 13.5 and 13.6 servers ask for no context takeover only when offered).

use hookup_tokio::proto::DeflateConfig;
use hookup_tokio::{ClientConfig, ClientRequest, Message, connect_with};

async fn open(
    url: &str,
    deflate: bool,
) -> hookup_tokio::Result<hookup_tokio::WebSocket<hookup_tokio::MaybeTlsStream>> {
    let mut config = ClientConfig::default();
    config.ws.proto.max_message_size = 64 << 20;
    config.ws.proto.max_frame_size = 64 << 20;
    if deflate {
        let mut d = DeflateConfig::default();
        d.threshold = 0;
        d.local_no_context_takeover = true;
        config.ws.proto.deflate = Some(d);
    }
    Ok(connect_with(ClientRequest::new(url)?, &config).await?.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let deflate = args.iter().any(|a| a == "--deflate");
    let mut args = args.into_iter().filter(|a| a != "--deflate");
    let base = args
        .next()
        .ok_or("usage: autobahn-client [--deflate] BASE_URL AGENT")?;
    let agent = args.next().unwrap_or_else(|| "hookup-tokio".into());
    let base = base.trim_end_matches('/');

    let mut ws = open(&format!("{base}/getCaseCount"), deflate).await?;
    let mut count = None;
    while let Some(item) = ws.recv().await {
        match item {
            Ok(Message::Text(t)) => count = Some(t.parse::<u32>()?),
            Ok(_) => {}
            Err(e) if count.is_some() => eprintln!("getCaseCount: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    let count = count.ok_or("no case count received")?;
    eprintln!("{count} cases");

    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        let mut ws = match open(&url, deflate).await {
            Ok(ws) => ws,
            Err(e) => {
                eprintln!("case {case}: {e}");
                continue;
            }
        };
        while let Some(item) = ws.recv().await {
            match item {
                Ok(m) if m.is_data() => {
                    if ws.send(m).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }

    // The fuzzing server answers updateReports with a 101 and drops the
    // connection; either way the request has been made.
    let _ = open(&format!("{base}/updateReports?agent={agent}"), deflate).await;
    Ok(())
}
