//! Walks a fuzzing server (`kosoku -m fuzzingserver`) with a
//! hookup-async-std client on async-std: asks for the number of cases,
//! runs each as an echo client, then asks it to write the reports.
//!
//! Usage: `autobahn-client-async-std BASE_URL AGENT` (for example
//! `ws://127.0.0.1:9001 hookup-async-std`).

use hookup_async_std::{ClientRequest, connect_with};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .ok_or("usage: autobahn-client-async-std BASE_URL AGENT")?;
    let agent = args.next().unwrap_or_else(|| "hookup-async-std".into());
    let config = &autobahn::client_config();
    async_std::task::block_on(autobahn::walk(&base, &agent, |url| async move {
        Ok(connect_with(ClientRequest::new(&url)?, config).await?.0)
    }))
}
