//! `hookup serve`: /echo (plain or reliable), /chat (broadcast) and the chat
//! page at /.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookup_tokio::proto::http::{HeaderValue, StatusCode, header};
use hookup_tokio::proto::reliable::SessionConfig;
use hookup_tokio::reliable::{self, ReliableConfig, ReliableEvent, ReliablePeer, SharedStore};
use hookup_tokio::{CloseCode, Config, Limits, MaybeTlsStream, Message, Server, WebSocket};
use tokio::sync::mpsc;

const CHAT_PAGE: &str = include_str!("chat.html");

pub(crate) struct ServeOptions {
    pub(crate) max_message_size: usize,
    pub(crate) reliable: bool,
    pub(crate) sink: Option<PathBuf>,
    pub(crate) session_ttl: Duration,
    pub(crate) journal_dir: Option<PathBuf>,
    /// Reliable sessions alive at once created from one IP address.
    pub(crate) max_sessions_per_ip: usize,
    /// permessage-deflate with this compression threshold.
    pub(crate) deflate: Option<usize>,
    pub(crate) limits: Limits,
    /// Largest /chat message.
    pub(crate) chat_max_message_size: usize,
    /// Messages queued per /chat client.
    pub(crate) chat_queue: usize,
    /// Origins allowed besides the listen address's host ("*": any).
    pub(crate) allowed_origins: Vec<String>,
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

/// The client's address of an accepted connection.
fn peer_addr(stream: &MaybeTlsStream) -> Option<SocketAddr> {
    match stream {
        MaybeTlsStream::Plain(tcp) => tcp.peer_addr().ok(),
        MaybeTlsStream::ServerTls(tls) => tls.get_ref().0.peer_addr().ok(),
        _ => None,
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
        let addr = peer_addr(ws.get_ref());
        let mut peer = ReliablePeer::new(ws, store, config);
        if let Some(addr) = addr {
            // The per-address quota of new sessions.
            peer = peer.with_peer_addr(addr);
        }
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
            // While more received messages wait, the echo is only queued
            // (`feed`): a burst is answered with one write. The last one is
            // sent, and `recv` writes out whatever is queued before it waits.
            let queued = if ws.connection().has_events() {
                ws.feed(m).await
            } else {
                ws.send(m).await
            };
            if queued.is_err() {
                break;
            }
        }
    }
}

// `on_request`'s error type is the HTTP answer (see `select_reliable`).
#[allow(clippy::result_large_err)]
pub(crate) async fn serve(
    listen: String,
    tls: Option<(PathBuf, PathBuf)>,
    opts: ServeOptions,
) -> ExitCode {
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
        store_config.max_sessions_per_ip = opts.max_sessions_per_ip;
        // A session goes by its connection's settings (`config.proto`).
        let session = SessionConfig::default();
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
    let chat = Chat {
        clients: Arc::default(),
        next_id: Arc::default(),
        max_message_size: opts.chat_max_message_size,
        queue: opts.chat_queue,
    };
    let echo_sink = sink.clone();
    let echo_reliable = reliable.clone();
    let origins = Arc::new(Origins::new(&listen, opts.allowed_origins));
    let is_reliable = opts.reliable;
    let server = Server::new()
        .config(config)
        .limits(opts.limits)
        .route("/echo", move |ws, _req| {
            echo(ws, echo_sink.clone(), echo_reliable.clone())
        })
        .route("/chat", move |ws, _req| {
            let chat: Chat = chat.clone();
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
        })
        .on_request(move |req| {
            if let Some(origin) = req.origin()
                && !origins.allows(origin, req)
            {
                tracing::warn!(origin, path = req.path(), "refused: origin not allowed");
                return Err(hookup_tokio::text_response(
                    StatusCode::FORBIDDEN,
                    "origin not allowed (see hookup serve --allowed-origin)\n",
                ));
            }
            if is_reliable {
                select_reliable(req)
            } else {
                Ok(hookup_tokio::Accept::new())
            }
        });
    let mut server = server;
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

/// The origins allowed to open WebSockets: by default pages served from
/// the listen address's host (for a loopback address, any loopback name;
/// for an unspecified one, 0.0.0.0 or ::, the host the request names),
/// plus `--allowed-origin`s.
struct Origins {
    /// Allowed hosts (lowercase, IPv6 in brackets).
    hosts: Vec<String>,
    /// The listen address is unspecified: the request's Host is the server.
    any_local: bool,
    /// Allowed origins as given (lowercase, no trailing slash).
    exact: Vec<String>,
    any: bool,
}

impl Origins {
    fn new(listen: &str, allowed: Vec<String>) -> Self {
        let mut hosts = Vec::new();
        let mut any_local = false;
        match listen.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => {
                hosts.extend(["localhost", "127.0.0.1", "[::1]"].map(String::from));
            }
            Ok(a) if a.ip().is_unspecified() => any_local = true,
            Ok(SocketAddr::V4(a)) => hosts.push(a.ip().to_string()),
            Ok(SocketAddr::V6(a)) => hosts.push(format!("[{}]", a.ip())),
            Err(_) => {
                let host = listen.rsplit_once(':').map_or(listen, |(h, _)| h);
                hosts.push(host.to_ascii_lowercase());
                if host.eq_ignore_ascii_case("localhost") {
                    hosts.extend(["127.0.0.1", "[::1]"].map(String::from));
                }
            }
        }
        let any = allowed.iter().any(|o| o == "*");
        let exact = allowed
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        Self {
            hosts,
            any_local,
            exact,
            any,
        }
    }

    fn allows(&self, origin: &str, req: &hookup_tokio::Request) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.any || self.exact.contains(&origin) {
            return true;
        }
        let Some((_, rest)) = origin.split_once("://") else {
            // "null" (sandboxed pages, file://) and the like.
            return false;
        };
        let host = host_of(rest);
        if self.hosts.iter().any(|h| *h == host) {
            return true;
        }
        self.any_local
            && req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .is_some_and(|h| host_of(&h.to_ascii_lowercase()) == host)
    }
}

/// The host of `host[:port]` (IPv6 literals keep their brackets).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// The /chat room: every client's bounded queue.
#[derive(Clone)]
struct Chat {
    clients: Arc<Mutex<HashMap<u64, ChatClient>>>,
    next_id: Arc<AtomicU64>,
    max_message_size: usize,
    queue: usize,
}

struct ChatClient {
    tx: mpsc::Sender<Message>,
    /// Set when the client fell `queue` messages behind.
    lagged: Arc<AtomicBool>,
}

impl Chat {
    /// Queues `m` for every client; a client whose queue is full is
    /// dropped from the room (and closed with 1008 by its own task).
    fn broadcast(&self, m: &Message) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|id, c| match c.tx.try_send(m.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(client = id, "chat client fell behind: closing it");
                c.lagged.store(true, Ordering::Relaxed);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }
}

async fn chat_client(ws: WebSocket<MaybeTlsStream>, chat: Chat, sink: Sink) {
    let id = chat.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(chat.queue);
    let lagged = Arc::new(AtomicBool::new(false));
    chat.clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            id,
            ChatClient {
                tx,
                lagged: lagged.clone(),
            },
        );
    let (mut read, mut write) = ws.split();
    let max = chat.max_message_size;
    let room = chat.clone();
    let forward = async {
        while let Some(m) = rx.recv().await {
            if lagged.load(Ordering::Relaxed) {
                break;
            }
            if write.send(m).await.is_err() {
                return;
            }
        }
        if lagged.load(Ordering::Relaxed) {
            let reason = format!("too slow: fell {} messages behind", chat.queue);
            let _ = write.close(CloseCode::POLICY_VIOLATION, &reason).await;
        }
    };
    let receive = async {
        while let Some(Ok(m)) = read.recv().await {
            if let Message::Text(t) = &m {
                if t.len() > max {
                    tracing::debug!(len = t.len(), "chat message too big: closing");
                    return Some(format!("chat messages are limited to {max} bytes"));
                }
                sink.write(&m);
                room.broadcast(&m);
            }
        }
        None
    };
    let too_big = tokio::select! {
        () = forward => None,
        r = receive => r,
    };
    chat.clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    if let Some(reason) = too_big {
        let _ = write.close(CloseCode::MESSAGE_TOO_BIG, &reason).await;
    }
}
