//! What the `hookup` command's end-to-end tests share: the binary, a guard
//! that kills and reaps a child, and `hookup serve` on a free port.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_hookup");

/// Kills and reaps the child when dropped (also when a test panics).
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `hookup serve` on a free port, once it accepts connections.
pub fn serve() -> (Guard, u16) {
    serve_with(&[])
}

/// `hookup serve` with extra flags on a free port, once it listens.
pub fn serve_with(extra: &[&str]) -> (Guard, u16) {
    let port = free_port();
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hookup serve");
    let mut guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (guard, port);
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!("hookup serve exited early: {status}");
        }
        assert!(Instant::now() < deadline, "hookup serve never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
}
