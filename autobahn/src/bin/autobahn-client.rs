//! Walks a fuzzing server (`kosoku -m fuzzingserver`) with a hookup-tokio
//! client: asks for the number of cases, runs each as an echo client, then
//! asks it to write the reports (see [`autobahn::walk`]).
//!
//! Usage: `autobahn-client [--deflate [--deflate-threshold N]]
//! [--parallelism N] BASE_URL [AGENT]` (for example
//! `ws://127.0.0.1:9001 hookup-tokio`). With `--deflate` it offers
//! permessage-deflate (cases 12.x and 13.x), compressing every message of
//! at least N bytes (default 0) and offering `client_no_context_takeover`
//! as Autobahn's own client does (its 13.2, 13.5 and 13.6 servers ask for
//! no context takeover only when offered). `--parallelism N` runs N cases
//! at a time (default 1).

use autobahn::ClientArgs;
use hookup_tokio::{ClientRequest, connect_with};

const USAGE: &str = "usage: autobahn-client [--deflate [--deflate-threshold N]] \
                     [--parallelism N] BASE_URL [AGENT]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = ClientArgs::parse(std::env::args().skip(1), "hookup-tokio")
        .map_err(|e| format!("{e}\n{USAGE}"))?;
    let config = &autobahn::client_config(args.deflate);
    autobahn::walk(
        &args.base,
        &args.agent,
        args.parallelism,
        |url| async move { Ok(connect_with(ClientRequest::new(&url)?, config).await?.0) },
    )
    .await
}
