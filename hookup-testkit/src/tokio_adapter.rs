//! hookup-tokio under the suite: its client and its servers. Used by
//! hookup-tokio's adapter tests and by hookup-async-std's interop tests
//! (both through this crate).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hookup_tokio::{ClientConfig, ClientRequest, MaybeTlsStream, Server, Tokio};

use crate::hookup::{Harness, Tls, Ws, failure};
use crate::{Client, Connected, Failure, Probe, Res};

pub type Sock = Ws<MaybeTlsStream, Tokio>;

/// A multi-threaded tokio runtime (2 workers), one per test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// hookup-tokio's client; spawns on the current tokio runtime.
pub struct TokioClient {
    pub config: ClientConfig,
}

impl Client for TokioClient {
    type Socket = Sock;
    async fn connect(&self, url: &str, protocols: &[&str]) -> Res<Connected<Sock>> {
        let mut req = ClientRequest::new(url).map_err(|e| Failure::Usage(e.to_string()))?;
        for p in protocols {
            req = req
                .protocol(*p)
                .map_err(|e| Failure::Usage(e.to_string()))?;
        }
        let (ws, resp) = hookup_tokio::connect_with(req, &self.config)
            .await
            .map_err(failure)?;
        Ok(Connected {
            socket: Ws(ws),
            subprotocol: resp.subprotocol,
            headers: resp.headers,
        })
    }
    fn spawn<F>(&self, f: F) -> impl Future<Output = F::Output> + Send
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = tokio::spawn(f);
        async move { task.await.expect("task") }
    }
}

impl crate::reliable::Reliable for TokioClient {
    type Rt = Tokio;
    fn client_config(&self) -> ClientConfig {
        self.config.clone()
    }
}

/// hookup-tokio servers (main and limited) on the current tokio runtime,
/// running until `stop` changes.
pub async fn start_servers(
    tls: Option<Tls>,
    probe: Arc<Probe>,
    stop: tokio::sync::watch::Receiver<()>,
) -> [SocketAddr; 2] {
    let mut addrs = Vec::new();
    for config in crate::hookup::server_configs() {
        let mut s = crate::hookup_server!(Server::new(), config, probe);
        if let Some(t) = &tls {
            s = s.tls(t.server.clone());
        }
        let bound = s.bind("127.0.0.1:0").await.expect("bind");
        addrs.push(bound.local_addr().unwrap());
        let mut stop = stop.clone();
        tokio::spawn(bound.run_until(async move {
            let _ = stop.changed().await;
        }));
    }
    addrs.try_into().unwrap()
}

/// hookup-tokio's client against hookup-tokio's servers, on the current
/// tokio runtime.
pub async fn harness(tls: bool) -> Harness<TokioClient> {
    let probe = Arc::new(Probe::default());
    let tls = tls.then(crate::hookup::tls_configs);
    let (stop, stopped) = tokio::sync::watch::channel(());
    let addrs = start_servers(tls.clone(), probe.clone(), stopped).await;
    let client = TokioClient {
        config: crate::hookup::client_config(tls.as_ref()),
    };
    Harness::new(client, addrs, tls.as_ref(), probe, stop)
}
