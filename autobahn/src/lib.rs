//! Runners that put hookup under the Autobahn TestSuite (through kosoku):
//! `autobahn-client` walks a fuzzing server's cases with a hookup-tokio
//! client, `autobahn-client-async-std` with a hookup-async-std one (through
//! [`walk`], which works for any adapter built on `hookup-driver`), and
//! `autobahn-server-async-std` is hookup-async-std's echo server.
//! hookup-tokio's server side is `hookup serve` (its `/echo` endpoint).

use std::future::Future;

use hookup_driver::{ClientConfig, Message, Transport, WebSocket};

/// Client settings for the fuzzing server's cases (messages up to 64 MiB).
pub fn client_config() -> ClientConfig {
    let mut config = ClientConfig::default();
    config.ws.proto.max_message_size = 64 << 20;
    config.ws.proto.max_frame_size = 64 << 20;
    config
}

/// Echoes every data message until the connection ends.
pub async fn echo<S, R: Transport<S>>(ws: &mut WebSocket<S, R>) {
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

/// Walks a fuzzing server (`kosoku -m fuzzingserver`) at `base`: asks for
/// the number of cases, runs each as an echo client, then asks it to write
/// the reports. `open` connects to a URL with [`client_config`].
pub async fn walk<S, R, F, Fut>(
    base: &str,
    agent: &str,
    open: F,
) -> Result<(), Box<dyn std::error::Error>>
where
    R: Transport<S>,
    F: Fn(String) -> Fut,
    Fut: Future<Output = hookup_driver::Result<WebSocket<S, R>>>,
{
    let base = base.trim_end_matches('/');
    let mut ws = open(format!("{base}/getCaseCount")).await?;
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
        match open(url).await {
            Ok(mut ws) => echo(&mut ws).await,
            Err(e) => eprintln!("case {case}: {e}"),
        }
    }

    // The fuzzing server answers updateReports with a 101 and drops the
    // connection; either way the request has been made.
    let _ = open(format!("{base}/updateReports?agent={agent}")).await;
    Ok(())
}
