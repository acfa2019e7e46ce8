//! Walks a fuzzing server (`kosoku -m fuzzingserver`) with a
//! hookup-async-std client on async-std: asks for the number of cases,
//! runs each as an echo client, then asks it to write the reports (see
//! [`autobahn::walk`]).
//!
//! Usage: `autobahn-client-async-std [--deflate [--deflate-threshold N]]
//! [--parallelism N] BASE_URL [AGENT]` (for example
//! `ws://127.0.0.1:9001 hookup-async-std`); the options are those of
//! `autobahn-client`.

use autobahn::ClientArgs;
use hookup_async_std::{ClientRequest, connect_with};

const USAGE: &str = "usage: autobahn-client-async-std [--deflate [--deflate-threshold N]] \
                     [--parallelism N] BASE_URL [AGENT]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = ClientArgs::parse(std::env::args().skip(1), "hookup-async-std")
        .map_err(|e| format!("{e}\n{USAGE}"))?;
    let config = &autobahn::client_config(args.deflate);
    async_std::task::block_on(autobahn::walk(
        &args.base,
        &args.agent,
        args.parallelism,
        |url| async move { Ok(connect_with(ClientRequest::new(&url)?, config).await?.0) },
    ))
}
