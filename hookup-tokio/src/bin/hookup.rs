//! The `hookup` command: a WebSocket server (`hookup serve`) and a
//! line-oriented client (`hookup connect URL`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hookup_tokio::proto::http::{HeaderValue, StatusCode, header};
use std::sync::{Arc, Mutex};

use hookup_tokio::proto::reliable::SessionConfig;
use hookup_tokio::reliable::{
    self, DeliveryOutcome, ReliableClient, ReliableConfig, ReliableEvent, ReliablePeer, SharedStore,
};
use hookup_tokio::{
    ClientConfig, ClientRequest, CloseCode, Config, MaybeTlsStream, Message, Server, WebSocket,
    connect_with,
};
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
        /// Accept permessage-deflate (RFC 7692) from clients that offer it.
        #[arg(long)]
        deflate: bool,
        /// With --deflate: send messages shorter than this uncompressed.
        #[arg(long, default_value_t = 128, requires = "deflate")]
        deflate_threshold: usize,
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
                reliable,
                sink,
                session_ttl,
                journal_dir,
                deflate,
                deflate_threshold,
            } => {
                let opts = ServeOptions {
                    max_message_size,
                    reliable,
                    sink,
                    session_ttl,
                    journal_dir,
                    deflate: deflate.then_some(deflate_threshold),
                };
                serve(listen, tls_cert.zip(tls_key), opts).await
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
                    reliable_connect(url, ca_cert, journal, ack_timeout, reconnect, wait).await
                } else {
                    connect(url, linger, protocols, ca_cert, deflate).await
                }
            }
        }
    })
}

struct ServeOptions {
    max_message_size: usize,
    reliable: bool,
    sink: Option<PathBuf>,
    session_ttl: Duration,
    journal_dir: Option<PathBuf>,
    /// permessage-deflate with this compression threshold.
    deflate: Option<usize>,
}

/// Appends received messages to a file, one line each (newlines escaped).
#[derive(Clone)]
struct Sink(Option<Arc<Mutex<std::fs::File>>>);

impl Sink {
    fn write(&self, m: &Message) {
        let Some(f) = &self.0 else { return };
        let text = match m {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            _ => return,
        };
        let mut line = text.replace('\\', "\\\\").replace('\n', "\\n");
        line.push('\n');
        let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::error!("sink: {e}");
        }
    }
}

async fn echo(
    mut ws: WebSocket<MaybeTlsStream>,
    sink: Sink,
    reliable: Option<(SharedStore, SessionConfig)>,
) {
    if let Some((store, config)) = reliable
        && matches!(
            ws.subprotocol(),
            Some(reliable::SUBPROTOCOL | reliable::LEGACY_SUBPROTOCOL)
        )
    {
        let mut peer = ReliablePeer::new(ws, store, config);
        while let Some(ev) = peer.recv().await {
            if let ReliableEvent::Message(m) = ev {
                sink.write(&m);
                if let Err(e) = peer.send(m, None) {
                    tracing::warn!("echo not queued: {e}");
                }
            }
        }
        return;
    }
    while let Some(Ok(m)) = ws.recv().await {
        if m.is_data() {
            sink.write(&m);
            if ws.send(m).await.is_err() {
                break;
            }
        }
    }
}

async fn serve(listen: String, tls: Option<(PathBuf, PathBuf)>, opts: ServeOptions) -> ExitCode {
    let mut config = Config::default();
    config.proto.max_message_size = opts.max_message_size;
    config.proto.max_frame_size = opts.max_message_size;
    if let Some(threshold) = opts.deflate {
        let mut deflate = hookup_tokio::proto::DeflateConfig::default();
        deflate.threshold = threshold;
        config.proto.deflate = Some(deflate);
    }
    let sink = match &opts.sink {
        None => Sink(None),
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Sink(Some(Arc::new(Mutex::new(f)))),
            Err(e) => {
                eprintln!("hookup: sink {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
    };
    let reliable = if opts.reliable {
        let mut store_config = hookup_tokio::proto::reliable::StoreConfig::default();
        store_config.ttl = opts.session_ttl;
        let mut session = SessionConfig::default();
        session.connection = config.proto.clone();
        let store = match &opts.journal_dir {
            None => SharedStore::new(store_config),
            Some(dir) => {
                let fsync = ReliableConfig::default().fsync;
                match SharedStore::with_journal_dir(store_config, dir, fsync) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("hookup: journal directory {}: {e}", dir.display());
                        return ExitCode::from(2);
                    }
                }
            }
        };
        Some((store, session))
    } else {
        None
    };
    let (chat, _) = broadcast::channel::<Message>(1024);
    let echo_sink = sink.clone();
    let echo_reliable = reliable.clone();
    let mut server = Server::new()
        .config(config)
        .route("/echo", move |ws, _req| {
            echo(ws, echo_sink.clone(), echo_reliable.clone())
        })
        .route("/chat", move |ws, _req| {
            let chat = chat.clone();
            let sink = sink.clone();
            async move { chat_client(ws, chat, sink).await }
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
    if opts.reliable {
        server = server.on_request(select_reliable);
    }
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

/// Selects `hookup.v1` on /echo when the client offers it, else the
/// original hookup's `jsonProtocol` (legacy mode) when that is offered.
// The error type is the HTTP answer `on_request` asks for.
#[allow(clippy::result_large_err)]
fn select_reliable(
    req: &hookup_tokio::Request,
) -> Result<hookup_tokio::Accept, hookup_tokio::HttpResponse> {
    let offered = |name: &str| req.subprotocols().iter().any(|p| p == name);
    let chosen = [reliable::SUBPROTOCOL, reliable::LEGACY_SUBPROTOCOL]
        .into_iter()
        .find(|p| offered(p));
    Ok(match chosen {
        Some(p) if req.path() == "/echo" => hookup_tokio::Accept::new().subprotocol(p),
        _ => hookup_tokio::Accept::new(),
    })
}

async fn chat_client(ws: WebSocket<MaybeTlsStream>, chat: broadcast::Sender<Message>, sink: Sink) {
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
                sink.write(&m);
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
    deflate: bool,
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
    if deflate {
        config.ws.proto.deflate = Some(hookup_tokio::proto::DeflateConfig::default());
    }
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
    if let Some(ext) = response.headers.get(header::SEC_WEBSOCKET_EXTENSIONS) {
        eprintln!("extensions: {}", String::from_utf8_lossy(ext.as_bytes()));
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

fn client_tls(ca_cert: Option<PathBuf>) -> Result<ClientConfig, String> {
    #[allow(unused_mut)]
    let mut config = ClientConfig::default();
    if let Some(ca) = ca_cert {
        let certs = rustls_pem_certs(&ca)?;
        let tls = hookup_tokio::tls::client_config_trusting(&certs)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
        config.tls = Some(tls);
    }
    Ok(config)
}

async fn reliable_connect(
    url: String,
    ca_cert: Option<PathBuf>,
    journal: Option<PathBuf>,
    ack_timeout: Duration,
    reconnect: reliable::Reconnect,
    wait: Duration,
) -> ExitCode {
    let mut config = ReliableConfig::default();
    config.client = match client_tls(ca_cert) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hookup: {e}");
            return ExitCode::from(2);
        }
    };
    config.session.reconnect = reconnect;
    config.session.report_releases = journal.is_some();
    config.journal = journal;
    let mut client = match ReliableClient::connect(&url, config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hookup: {url}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut gave_up = false;
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    match client.send(line, Some(ack_timeout)).await {
                        Ok(delivery) => {
                            tokio::spawn(async move {
                                if let DeliveryOutcome::AckFailed = delivery.await {
                                    eprintln!("no ack within {ack_timeout:?} (still queued)");
                                }
                            });
                        }
                        Err(e) => {
                            eprintln!("hookup: message not queued: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                }
                Ok(None) => stdin_open = false,
                Err(e) => {
                    eprintln!("hookup: reading stdin: {e}");
                    stdin_open = false;
                }
            },
            ev = client.recv() => match ev {
                Some(ReliableEvent::Message(m)) => {
                    if let Some(t) = m.as_text() {
                        let _ = writeln!(stdout, "{t}");
                    } else {
                        let _ = writeln!(stdout, "{}", String::from_utf8_lossy(m.as_bytes()));
                    }
                    let _ = stdout.flush();
                }
                Some(ReliableEvent::Connected { resumed }) => {
                    eprintln!("connected to {url}{}", if resumed { " (session resumed)" } else { "" });
                }
                Some(ReliableEvent::Disconnected { code, reason }) => eprintln!("disconnected: {code} {reason}"),
                Some(ReliableEvent::Reconnecting { attempt, delay }) => {
                    eprintln!("reconnecting (attempt {attempt}) in {delay:?}");
                }
                Some(ReliableEvent::GaveUp) => {
                    eprintln!("hookup: gave up reconnecting");
                    gave_up = true;
                    break;
                }
                Some(ReliableEvent::Error(e)) => eprintln!("error: {e}"),
                Some(_) => {}
                None => break,
            },
        }
        if !stdin_open {
            break;
        }
    }
    let finished = client.shutdown(wait).await;
    if finished.unacked == 0 && !gave_up && !finished.gave_up {
        eprintln!("all messages acknowledged; closed (1000)");
        ExitCode::SUCCESS
    } else if finished.unacked == usize::MAX {
        eprintln!("hookup: gave up waiting for acknowledgements after {wait:?}");
        ExitCode::FAILURE
    } else {
        eprintln!(
            "hookup: {} messages were not acknowledged",
            finished.unacked
        );
        ExitCode::FAILURE
    }
}

fn rustls_pem_certs(
    path: &std::path::Path,
) -> Result<Vec<hookup_tokio::tls::CertificateDer<'static>>, String> {
    hookup_tokio::tls::certs_from_pem(path)
}
