//! Glue for the adapters built on `hookup-driver` (hookup-tokio,
//! hookup-async-std): their `WebSocket`, halves, `Message` and `Error` in
//! the suite's vocabulary, the servers' policies as `Accept`/HTTP answers,
//! and test TLS configurations. Generic over the driver's runtime, so one
//! impl serves every such adapter.

use std::sync::Arc;

use hookup_driver::tls::{ClientConfig, PrivateKeyDer, ServerConfig};
use hookup_driver::{
    Error, HttpResponse, Message, ReadHalf, Runtime, Transport, WebSocket, WriteHalf,
};
use hookup_proto::http::{HeaderName, HeaderValue, StatusCode, header};
use hookup_proto::{Accept, CloseCode, Closed, Request};

use super::{Decision, Failure, Msg, Res};

pub fn to_msg(m: Message) -> Msg {
    match m {
        Message::Text(t) => Msg::Text(t.as_str().to_owned()),
        Message::Binary(b) => Msg::Binary(b),
        Message::Ping(p) => Msg::Ping(p),
        Message::Pong { payload, rtt } => Msg::Pong { payload, rtt },
        Message::Close(f) => Msg::Close(f),
        other => panic!("unknown message {other:?}"),
    }
}

pub fn from_msg(m: Msg) -> Message {
    match m {
        Msg::Text(t) => Message::text(t),
        Msg::Binary(b) => Message::Binary(b),
        Msg::Ping(p) => Message::Ping(p),
        Msg::Pong { payload, rtt } => Message::Pong { payload, rtt },
        Msg::Close(f) => Message::Close(f),
    }
}

pub fn failure(e: Error) -> Failure {
    match e {
        Error::Io(e) => Failure::Io(e),
        Error::Protocol(p) => Failure::Protocol(p),
        Error::Handshake(h) => Failure::Handshake(h),
        Error::Usage(u) => Failure::Usage(u.to_string()),
        Error::Closed(c) => Failure::Closed(c),
        Error::Connect(s) => Failure::Connect(s),
        Error::Rejected { status } => Failure::Rejected(status),
        other => Failure::Other(other.to_string()),
    }
}

fn item(i: Option<hookup_driver::Result<Message>>) -> Option<Res<Msg>> {
    i.map(|r| r.map(to_msg).map_err(failure))
}

/// A driver WebSocket as a [`Socket`](super::Socket).
pub struct Ws<S, R: Runtime>(pub WebSocket<S, R>);
pub struct WsRead<S, R: Runtime>(pub ReadHalf<S, R>);
pub struct WsWrite<S, R: Runtime>(pub WriteHalf<S, R>);

impl<S, R> super::Socket for Ws<S, R>
where
    S: Send + 'static,
    R: Transport<S>,
    R::Sleep: Send,
{
    type Reader = WsRead<S, R>;
    type Writer = WsWrite<S, R>;
    async fn send(&mut self, m: Msg) -> Res<()> {
        self.0.send(from_msg(m)).await.map_err(failure)
    }
    async fn feed(&mut self, m: Msg) -> Res<()> {
        self.0.feed(from_msg(m)).await.map_err(failure)
    }
    async fn flush(&mut self) -> Res<()> {
        self.0.flush().await.map_err(failure)
    }
    async fn recv(&mut self) -> Option<Res<Msg>> {
        item(self.0.recv().await)
    }
    async fn close(&mut self, code: CloseCode, reason: &str) -> Res<Closed> {
        self.0.close(code, reason).await.map_err(failure)
    }
    fn closed(&self) -> Option<Closed> {
        self.0.closed().cloned()
    }
    fn split(self) -> (WsRead<S, R>, WsWrite<S, R>) {
        let (r, w) = self.0.split();
        (WsRead(r), WsWrite(w))
    }
}

impl<S, R> super::Reader for WsRead<S, R>
where
    S: Send + 'static,
    R: Transport<S>,
    R::Sleep: Send,
{
    async fn recv(&mut self) -> Option<Res<Msg>> {
        item(self.0.recv().await)
    }
}

impl<S, R> super::Writer for WsWrite<S, R>
where
    S: Send + 'static,
    R: Transport<S>,
    R::Sleep: Send,
{
    async fn send(&mut self, m: Msg) -> Res<()> {
        self.0.send(from_msg(m)).await.map_err(failure)
    }
    async fn close(&mut self, code: CloseCode, reason: &str) -> Res<()> {
        self.0.close(code, reason).await.map_err(failure)
    }
}

/// The servers' `on_request` ([`decide`](super::decide) as an `Accept` or
/// an HTTP answer).
// `on_request` answers with an `http::Response` by value (the API's choice).
#[allow(clippy::result_large_err)]
pub fn on_request(req: &Request) -> Result<Accept, HttpResponse> {
    match super::decide(req.path(), req.subprotocols()) {
        Decision::Accept {
            subprotocol,
            headers,
        } => {
            let mut a = Accept::new();
            if let Some(p) = subprotocol {
                a = a.subprotocol(p);
            }
            for (n, v) in headers {
                a = a.header(HeaderName::from_static(n), HeaderValue::from_static(v));
            }
            Ok(a)
        }
        Decision::Reject { status, body } => {
            let status = StatusCode::from_u16(status).unwrap();
            Err(hookup_driver::text_response(status, body))
        }
    }
}

/// The servers' plain-HTTP handler ([`http_answer`](super::http_answer)).
pub fn http(req: &Request) -> HttpResponse {
    let (status, content_type, body) = super::http_answer(req.path());
    let mut r = hookup_driver::text_response(StatusCode::from_u16(status).unwrap(), body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Builds a server under test from an adapter's `Server` (the adapters'
/// servers have the same builder methods): the suite's policies and every
/// path of [`ROUTES`](super::ROUTES) served by
/// [`serve_route`](super::serve_route), and the reliable routes
/// ([`reliable::ROUTES`](super::reliable::ROUTES)) by
/// [`reliable::serve`](super::reliable::serve).
#[macro_export]
macro_rules! hookup_server {
    ($server:expr, $config:expr, $probe:expr) => {{
        let mut s = $server
            .config($config)
            .on_request($crate::hookup::on_request)
            .http($crate::hookup::http);
        for &path in $crate::ROUTES {
            let probe = $probe.clone();
            s = s.route(path, move |ws, _req| {
                $crate::serve_route(path, $crate::hookup::Ws(ws), probe.clone())
            });
        }
        let store = $crate::reliable::LazyStore::default();
        for &(path, mode) in $crate::reliable::ROUTES {
            let store = store.clone();
            s = s.route(path, move |ws, _req| {
                $crate::reliable::serve(mode, ws, store.clone())
            });
        }
        s
    }};
}

/// TLS configurations for `localhost` with a certificate made at test time.
#[derive(Clone)]
pub struct Tls {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

pub fn tls_configs() -> Tls {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der()).expect("private key");
    Tls {
        server: hookup_driver::tls::server_config(vec![cert.clone()], key).expect("server config"),
        client: hookup_driver::tls::client_config_trusting(&[cert]).expect("client config"),
    }
}

/// The two server configurations of a target: the default one and the
/// limited one (`max_message_size = 1024`, 300 ms handshake timeout).
pub fn server_configs() -> [hookup_driver::Config; 2] {
    let mut limited = hookup_driver::Config::default();
    limited.proto.max_message_size = 1024;
    limited.proto.handshake_timeout = Some(std::time::Duration::from_millis(300));
    [hookup_driver::Config::default(), limited]
}

/// The client settings for a target (trusting the test certificate).
pub fn client_config(tls: Option<&Tls>) -> hookup_driver::ClientConfig {
    let mut config = hookup_driver::ClientConfig::default();
    config.tls = tls.map(|t| t.client.clone());
    config
}

/// A target and the switch that stops its servers (when dropped).
pub struct Harness<C> {
    pub target: super::Target<C>,
    _stop: tokio::sync::watch::Sender<()>,
}

impl<C> Harness<C> {
    pub fn new(
        client: C,
        addrs: [std::net::SocketAddr; 2],
        tls: Option<&Tls>,
        probe: Arc<super::Probe>,
        stop: tokio::sync::watch::Sender<()>,
    ) -> Self {
        Self {
            target: target(client, addrs, tls, probe),
            _stop: stop,
        }
    }
}

/// The target for the main and the limited server at `addrs`.
pub fn target<C>(
    client: C,
    addrs: [std::net::SocketAddr; 2],
    tls: Option<&Tls>,
    probe: Arc<super::Probe>,
) -> super::Target<C> {
    let base = |addr: std::net::SocketAddr| match tls {
        Some(_) => format!("wss://localhost:{}", addr.port()),
        None => format!("ws://{addr}"),
    };
    let raw = |addr| super::raw::RawConnector {
        addr,
        tls: tls.map(|t| (t.client.clone(), "localhost".to_owned())),
    };
    super::Target {
        client,
        base: base(addrs[0]),
        limited_base: base(addrs[1]),
        raw: raw(addrs[0]),
        limited_raw: raw(addrs[1]),
        probe,
    }
}
