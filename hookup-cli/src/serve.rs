//! `hookup serve`: /echo (plain or reliable), /chat (broadcast) and the chat
//! page at /.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookup_tokio::proto::http::{HeaderValue, StatusCode, header};
use hookup_tokio::proto::reliable::SessionConfig;
use hookup_tokio::reliable::{self, ReliableConfig, ReliableEvent, ReliablePeer, SharedStore};
use hookup_tokio::{Config, MaybeTlsStream, Message, Server, WebSocket};
use tokio::sync::broadcast;

const CHAT_PAGE: &str = include_str!("chat.html");

pub(crate) struct ServeOptions {
    pub(crate) max_message_size: usize,
    pub(crate) reliable: bool,
    pub(crate) sink: Option<PathBuf>,
    pub(crate) session_ttl: Duration,
    pub(crate) journal_dir: Option<PathBuf>,
    /// permessage-deflate with this compression threshold.
    pub(crate) deflate: Option<usize>,
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
