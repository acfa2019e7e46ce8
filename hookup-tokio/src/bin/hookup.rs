//! The `hookup` command: a WebSocket server (`hookup serve`) and a
//! line-oriented client (`hookup connect URL`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hookup_tokio::proto::http::{HeaderValue, StatusCode, header};
use hookup_tokio::{ClientConfig, ClientRequest, CloseCode, Config, Message, Server, connect_with};
use tokio::io::AsyncBufReadExt;
use tokio::sync::broadcast;

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

const CHAT_PAGE: &str = include_str!("chat.html");

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
    rt.block_on(async {
        match cli.command {
            Command::Serve {
                listen,
                tls_cert,
                tls_key,
                max_message_size,
            } => serve(listen, tls_cert.zip(tls_key), max_message_size).await,
            Command::Connect {
                url,
                linger,
                protocols,
                ca_cert,
            } => connect(url, linger, protocols, ca_cert).await,
        }
    })
}

async fn serve(
    listen: String,
    tls: Option<(PathBuf, PathBuf)>,
    max_message_size: usize,
) -> ExitCode {
    let mut config = Config::default();
    config.proto.max_message_size = max_message_size;
    config.proto.max_frame_size = max_message_size;
    let (chat, _) = broadcast::channel::<Message>(1024);
    let mut server = Server::new()
        .config(config)
        .route("/echo", |mut ws, _req| async move {
            while let Some(Ok(m)) = ws.recv().await {
                if m.is_data() && ws.send(m).await.is_err() {
                    break;
                }
            }
        })
        .route("/chat", move |ws, _req| {
            let chat = chat.clone();
            async move { chat_client(ws, chat).await }
        })
        .http(|req| {
            if req.path() == "/" {
                let mut r = hookup_tokio::text_response(StatusCode::OK, CHAT_PAGE);
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                r
            } else {
                hookup_tokio::text_response(StatusCode::NOT_FOUND, "not found\n")
            }
        });
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    if let Some((cert, key)) = tls {
        match hookup_tokio::tls::server_config_from_pem(&cert, &key) {
            Ok(c) => server = server.tls(c),
            Err(e) => {
                eprintln!("hookup: TLS: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let bound = match server.bind(&listen).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("hookup: cannot listen on {listen}: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = bound.local_addr().map_or(listen, |a| a.to_string());
    tracing::info!("serving {scheme}://{addr}/echo, {scheme}://{addr}/chat and the chat page at /");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match bound.run_until(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookup: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn chat_client(
    ws: hookup_tokio::WebSocket<hookup_tokio::MaybeTlsStream>,
    chat: broadcast::Sender<Message>,
) {
    let mut rx = chat.subscribe();
    let (mut read, mut write) = ws.split();
    let forward = async move {
        loop {
            match rx.recv().await {
                Ok(m) => {
                    if write.send(m).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("chat client lagged, {n} messages skipped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    let receive = async move {
        while let Some(Ok(m)) = read.recv().await {
            if let Message::Text(_) = m {
                let _ = chat.send(m);
            }
        }
    };
    tokio::select! {
        _ = forward => {}
        _ = receive => {}
    }
}

async fn connect(
    url: String,
    linger: Duration,
    protocols: Vec<String>,
    ca_cert: Option<PathBuf>,
) -> ExitCode {
    let mut request = match ClientRequest::new(&url) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookup: {e}");
            return ExitCode::from(2);
        }
    };
    for p in protocols {
        request = match request.protocol(p) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("hookup: {e}");
                return ExitCode::from(2);
            }
        };
    }
    #[allow(unused_mut)]
    let mut config = ClientConfig::default();
    if let Some(ca) = ca_cert {
        use hookup_tokio::tls::client_config_trusting;
        let certs = rustls_pem_certs(&ca);
        match certs.and_then(|c| client_config_trusting(&c).map_err(|e| e.to_string())) {
            Ok(c) => config.tls = Some(c),
            Err(e) => {
                eprintln!("hookup: {}: {e}", ca.display());
                return ExitCode::from(2);
            }
        }
    }
    let (ws, response) = match connect_with(request, &config).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("hookup: {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match &response.subprotocol {
        Some(p) => eprintln!("connected to {url} (subprotocol {p})"),
        None => eprintln!("connected to {url}"),
    }
    let (mut read, mut write) = ws.split();
    let reader = tokio::spawn(async move {
        let mut stdout = std::io::stdout();
        while let Some(item) = read.recv().await {
            match item {
                Ok(Message::Text(t)) => {
                    let _ = writeln!(stdout, "{t}");
                }
                Ok(Message::Binary(b)) => {
                    let _ = writeln!(stdout, "{}", String::from_utf8_lossy(&b));
                }
                Ok(Message::Close(f)) => {
                    let (code, reason) = f.map_or((CloseCode::NO_STATUS, String::new()), |f| {
                        (f.code, f.reason)
                    });
                    eprintln!("closed by peer: {code} {reason}");
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = stdout.flush();
                    return Err(e);
                }
            }
            let _ = stdout.flush();
        }
        Ok(())
    });
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut failed = false;
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                if let Err(e) = write.send(Message::text(line)).await {
                    eprintln!("hookup: send failed: {e}");
                    failed = true;
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!("hookup: reading stdin: {e}");
                failed = true;
                break;
            }
        }
    }
    if !failed {
        // Give outstanding replies a moment, then close cleanly.
        tokio::time::sleep(linger).await;
        if let Err(e) = write.close(CloseCode::NORMAL, "").await {
            eprintln!("hookup: close failed: {e}");
            failed = true;
        }
    }
    match tokio::time::timeout(Duration::from_secs(10), reader).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => {
            eprintln!("hookup: {e}");
            failed = true;
        }
        _ => failed = true,
    }
    if failed {
        ExitCode::FAILURE
    } else {
        eprintln!("closed (1000)");
        ExitCode::SUCCESS
    }
}

fn rustls_pem_certs(
    path: &std::path::Path,
) -> Result<Vec<hookup_tokio::tls::CertificateDer<'static>>, String> {
    hookup_tokio::tls::certs_from_pem(path)
}
