//! `echo-server <impl> <addr>` — one WebSocket (or raw TCP) echo server.
//! `echo-server --list` prints the impls compiled in, one per line; `--list-deflate` the
//! ones that accept permessage-deflate.
//!
//! Stops by itself after ECHO_SERVER_MAX_SECS (default 900) so a forgotten server never
//! lingers; the driver kills it long before that.

use std::time::Duration;

use hookup_bench::servers;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--list") {
        for name in servers::IMPLS {
            println!("{name}");
        }
        return;
    }
    if args.first().map(String::as_str) == Some("--list-deflate") {
        for name in servers::DEFLATE_IMPLS {
            println!("{name}");
        }
        return;
    }
    let [impl_name, addr] = args.as_slice() else {
        eprintln!(
            "usage: echo-server <impl> <addr>   (impls: {})",
            servers::IMPLS.join(", ")
        );
        std::process::exit(2);
    };
    let addr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bad addr {addr:?}: {e}");
            std::process::exit(2);
        }
    };
    let max_secs: u64 = std::env::var("ECHO_SERVER_MAX_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(900);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(max_secs));
        eprintln!("echo-server: ECHO_SERVER_MAX_SECS={max_secs} reached, exiting");
        std::process::exit(0);
    });
    if let Err(e) = servers::run(impl_name, addr) {
        eprintln!("echo-server {impl_name}: {e}");
        std::process::exit(1);
    }
}
