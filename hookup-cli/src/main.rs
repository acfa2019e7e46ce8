//! The `hookup` command: a WebSocket server (`hookup serve`) and a
//! line-oriented client (`hookup connect URL`).

mod connect;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hookup_tokio::reliable;

use serve::ServeOptions;

#[derive(Parser)]
#[command(name = "hookup", version, about = "Reliable messaging over WebSockets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve /echo (echo every message), /chat (broadcast text to all
    /// clients) and a small chat page at /.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9001")]
        listen: String,
        /// PEM certificate chain: serve wss:// (with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key (with --tls-cert).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Largest message accepted, in bytes (larger: close 1009).
        #[arg(long, default_value_t = 64 << 20)]
        max_message_size: usize,
        /// Offer reliable sessions on /echo: the hookup.v1 subprotocol (acks,
        /// dedup, resume across reconnects), or the original hookup's
        /// jsonProtocol (acked JSON envelopes, no resume) to clients that
        /// offer only that.
        #[arg(long)]
        reliable: bool,
        /// Append every application message received, on any endpoint, as
        /// one line to this file (once and in order per client session).
        #[arg(long)]
        sink: Option<PathBuf>,
        /// How long a disconnected client's session is kept for it to resume.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        session_ttl: Duration,
        /// Keep reliable sessions in files under this directory (one per
        /// session), so that clients resume them after a server crash or
        /// restart (with --reliable).
        #[arg(long, requires = "reliable")]
        journal_dir: Option<PathBuf>,
        /// Reliable sessions alive at once (connected or parked) that were
        /// created from one client IP address (IPv6: one /64); a HELLO
        /// that would create one more is refused with close 4029, resuming
        /// never is (0: no limit).
        #[arg(long, default_value_t = 1_000)]
        max_sessions_per_ip: usize,
        /// Accept permessage-deflate (RFC 7692) from clients that offer it.
        #[arg(long)]
        deflate: bool,
        /// With --deflate: send messages shorter than this uncompressed.
        #[arg(long, default_value_t = 128, requires = "deflate")]
        deflate_threshold: usize,
        /// Connections served at once; more are closed on accept.
        #[arg(long, default_value_t = 10_000)]
        max_connections: usize,
        /// Connections served at once from one IP address (0: no limit).
        #[arg(long, default_value_t = 256)]
        max_connections_per_ip: usize,
        /// Close a connection that sent nothing for this long (a ping is sent
        /// halfway; 0: never).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        idle_timeout: Duration,
        /// Close a connection (1008) that takes longer than this to finish a
        /// message it started (0: never).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        message_timeout: Duration,
        /// Drop a connection whose peer reads nothing of what we send for
        /// this long (0: never).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        write_stall_timeout: Duration,
        /// Bytes of unfinished incoming messages all connections may hold
        /// together; the connection that goes past it is closed with 1009
        /// (0: no shared limit).
        #[arg(long, default_value_t = 256 << 20)]
        max_buffered_input: usize,
        /// Largest /chat message, in bytes (larger: close 1009).
        #[arg(long, default_value_t = 64 << 10)]
        chat_max_message_size: usize,
        /// Messages queued for one /chat client; a client that falls this far
        /// behind is closed with 1008.
        #[arg(long, default_value_t = 64)]
        chat_queue: usize,
        /// Origin allowed to open WebSockets (repeatable; "*": any). Default:
        /// pages served from the listen address's host. Requests without an
        /// Origin header (non-browser clients) are always allowed.
        #[arg(long = "allowed-origin")]
        allowed_origins: Vec<String>,
    },
    /// Send each line of standard input as a text message and print every
    /// message received, one per line.
    Connect {
        /// ws:// or wss:// URL.
        url: String,
        /// How long to wait for replies after the end of input.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        linger: Duration,
        /// Subprotocol to offer (repeatable).
        #[arg(long = "protocol")]
        protocols: Vec<String>,
        /// Trust this PEM certificate for wss:// (instead of the web roots).
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        /// Offer permessage-deflate (RFC 7692) compression.
        #[arg(long, conflicts_with = "reliable")]
        deflate: bool,
        /// Send lines as reliable messages (hookup.v1): reconnect, resume,
        /// and at the end wait until every message is acknowledged.
        #[arg(long)]
        reliable: bool,
        /// Keep unacknowledged messages in this file across crashes (with --reliable).
        #[arg(long, requires = "reliable")]
        journal: Option<PathBuf>,
        /// Ack deadline of each message (with --reliable).
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        ack_timeout: Duration,
        /// Reconnect policy: never, a number of attempts, or forever (with --reliable).
        #[arg(long, default_value = "forever", value_parser = parse_reconnect)]
        reconnect: reliable::Reconnect,
        /// Longest wait for acknowledgements at the end of input (with --reliable).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        wait: Duration,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?} (use ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn parse_reconnect(s: &str) -> Result<reliable::Reconnect, String> {
    use reliable::Reconnect;
    match s {
        "never" => Ok(Reconnect::Never),
        "forever" => Ok(Reconnect::Forever),
        n => n
            .parse()
            .map(Reconnect::AtMost)
            .map_err(|_| format!("invalid reconnect policy {s:?} (never, N or forever)")),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async {
        match cli.command {
            Command::Serve {
                listen,
                tls_cert,
                tls_key,
                max_message_size,
                reliable,
                sink,
                session_ttl,
                journal_dir,
                max_sessions_per_ip,
                deflate,
                deflate_threshold,
                max_connections,
                max_connections_per_ip,
                idle_timeout,
                message_timeout,
                write_stall_timeout,
                max_buffered_input,
                chat_max_message_size,
                chat_queue,
                allowed_origins,
            } => {
                let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
                let mut limits = hookup_tokio::Limits::default();
                limits.max_connections = max_connections;
                limits.max_connections_per_ip = max_connections_per_ip;
                limits.idle_timeout = nonzero(idle_timeout);
                limits.message_timeout = nonzero(message_timeout);
                limits.write_stall_timeout = nonzero(write_stall_timeout);
                limits.max_buffered_input = (max_buffered_input > 0).then_some(max_buffered_input);
                let opts = ServeOptions {
                    max_message_size,
                    reliable,
                    sink,
                    session_ttl,
                    journal_dir,
                    max_sessions_per_ip,
                    deflate: deflate.then_some(deflate_threshold),
                    limits,
                    chat_max_message_size,
                    chat_queue: chat_queue.max(1),
                    allowed_origins,
                };
                serve::serve(listen, tls_cert.zip(tls_key), opts).await
            }
            Command::Connect {
                url,
                linger,
                protocols,
                ca_cert,
                deflate,
                reliable,
                journal,
                ack_timeout,
                reconnect,
                wait,
            } => {
                if reliable {
                    connect::reliable(url, ca_cert, journal, ack_timeout, reconnect, wait).await
                } else {
                    connect::plain(url, linger, protocols, ca_cert, deflate).await
                }
            }
        }
    });
    // A read of standard input may still be pending on a blocking thread
    // (the connection ended first): do not wait for it.
    rt.shutdown_background();
    code
}
