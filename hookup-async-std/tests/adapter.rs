//! The shared behavioural scenarios (the `hookup-testkit` crate) run against hookup-async-std on two executors, in the clear
//! (`plain`) and under TLS with a certificate generated at test time
//! (`tls`):
//!
//! * `on_async_std::*`: the scenario on `async_std::task::block_on`, the
//!   servers' connections spawned with `async_std::task::spawn`
//!   (`Server::spawn_with`);
//! * `on_smol::*`: the scenario on `smol::block_on`, each server one
//!   `smol::spawn` task that drives its connections itself (no spawner).
//!
//! And cross-adapter interop, each side on its own runtime:
//!
//! * `async_std_client_tokio_server::*`: hookup-async-std's client (on
//!   async-std) against hookup-tokio's servers (on a tokio runtime);
//! * `tokio_client_async_std_server::*`: hookup-tokio's client (on tokio)
//!   against hookup-async-std's servers (on async-std).

use hookup_testkit as common;
use hookup_testkit::tokio_adapter;
use hookup_testkit::{all_scenarios, hookup_server, interop_scenarios};

use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use common::hookup::{Harness, Tls, Ws, failure, tls_configs};
use common::{Client, Connected, Failure, Probe, Res};
use hookup_async_std::{
    AsyncIo, ClientConfig, ClientRequest, ConnectionFuture, MaybeTlsStream, Server,
};

/// An executor the scenarios run on.
trait Exec: Send + Sync + 'static {
    /// Whether servers hand their connections to [`Exec::detach`]
    /// (otherwise `BoundServer::run` drives them itself).
    const SPAWN_CONNECTIONS: bool;
    fn block_on<T>(f: impl Future<Output = T>) -> T;
    /// Starts `f` at once; the future returned resolves to its output.
    fn spawn<T: Send + 'static>(
        f: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T> + Send;
    fn detach(f: ConnectionFuture);
}

struct AsyncStd;
struct Smol;

impl Exec for AsyncStd {
    const SPAWN_CONNECTIONS: bool = true;
    fn block_on<T>(f: impl Future<Output = T>) -> T {
        async_std::task::block_on(f)
    }
    fn spawn<T: Send + 'static>(
        f: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T> + Send {
        async_std::task::spawn(f)
    }
    fn detach(f: ConnectionFuture) {
        async_std::task::spawn(f);
    }
}

impl Exec for Smol {
    const SPAWN_CONNECTIONS: bool = false;
    fn block_on<T>(f: impl Future<Output = T>) -> T {
        smol::block_on(f)
    }
    fn spawn<T: Send + 'static>(
        f: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T> + Send {
        smol::spawn(f)
    }
    fn detach(f: ConnectionFuture) {
        smol::spawn(f).detach();
    }
}

type Sock = Ws<MaybeTlsStream, AsyncIo>;

/// hookup-async-std's client; spawns on the executor `E`.
struct AsClient<E> {
    config: ClientConfig,
    exec: PhantomData<fn() -> E>,
}

impl<E: Exec> Client for AsClient<E> {
    type Socket = Sock;
    async fn connect(&self, url: &str, protocols: &[&str]) -> Res<Connected<Sock>> {
        let mut req = ClientRequest::new(url).map_err(|e| Failure::Usage(e.to_string()))?;
        for p in protocols {
            req = req
                .protocol(*p)
                .map_err(|e| Failure::Usage(e.to_string()))?;
        }
        let (ws, resp) = hookup_async_std::connect_with(req, &self.config)
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
        E::spawn(f)
    }
}

impl<E: Exec> common::reliable::Reliable for AsClient<E> {
    type Rt = AsyncIo;
    fn client_config(&self) -> ClientConfig {
        self.config.clone()
    }
}

fn client<E>(tls: Option<&Tls>) -> AsClient<E> {
    AsClient {
        config: common::hookup::client_config(tls),
        exec: PhantomData,
    }
}

/// hookup-async-std servers (main and limited) as tasks of `E`, running
/// until `stop` changes.
async fn start_servers<E: Exec>(
    tls: Option<&Tls>,
    probe: &Arc<Probe>,
    stop: &tokio::sync::watch::Receiver<()>,
) -> [SocketAddr; 2] {
    let mut addrs = Vec::new();
    for config in common::hookup::server_configs() {
        let mut s = hookup_server!(Server::new(), config, probe);
        if E::SPAWN_CONNECTIONS {
            s = s.spawn_with(E::detach);
        }
        if let Some(t) = tls {
            s = s.tls(t.server.clone());
        }
        let bound = s.bind("127.0.0.1:0").await.expect("bind");
        addrs.push(bound.local_addr().unwrap());
        let mut stop = stop.clone();
        E::detach(Box::pin(async move {
            let _ = bound
                .run_until(async move {
                    let _ = stop.changed().await;
                })
                .await;
        }));
    }
    addrs.try_into().unwrap()
}

/// hookup-async-std's client against its servers, all on `E`.
async fn harness<E: Exec>(tls: bool) -> Harness<AsClient<E>> {
    let probe = Arc::new(Probe::default());
    let tls = tls.then(tls_configs);
    let (stop, stopped) = tokio::sync::watch::channel(());
    let addrs = start_servers::<E>(tls.as_ref(), &probe, &stopped).await;
    Harness::new(client(tls.as_ref()), addrs, tls.as_ref(), probe, stop)
}

/// Runs `scenario` against hookup-async-std on `E`.
macro_rules! on {
    ($exec:ty, $tls:expr, $name:ident) => {{
        let _lock = $crate::common::test_lock(stringify!($name));
        <$exec as $crate::Exec>::block_on(async {
            let h = $crate::harness::<$exec>($tls).await;
            $crate::common::$name(&h.target).await;
        });
    }};
}

macro_rules! on_async_std {
    ($($name:ident),* $(,)?) => {
        mod on_async_std {
            mod plain { $( #[test] fn $name() { on!(crate::AsyncStd, false, $name) } )* }
            mod tls { $( #[test] fn $name() { on!(crate::AsyncStd, true, $name) } )* }
            #[test]
            fn ping_flood_memory_bounded() {
                on!(crate::AsyncStd, false, ping_flood_memory_bounded)
            }
        }
    };
}

macro_rules! on_smol {
    ($($name:ident),* $(,)?) => {
        mod on_smol {
            mod plain { $( #[test] fn $name() { on!(crate::Smol, false, $name) } )* }
            mod tls { $( #[test] fn $name() { on!(crate::Smol, true, $name) } )* }
            #[test]
            fn ping_flood_memory_bounded() {
                on!(crate::Smol, false, ping_flood_memory_bounded)
            }
        }
    };
}

all_scenarios!(on_async_std);
all_scenarios!(on_smol);

// ------------------------------------------------------------------ interop

/// hookup-async-std's client (on async-std) against hookup-tokio's servers
/// (on a tokio runtime of their own).
fn async_std_client_tokio_server(
    tls: bool,
    name: &str,
    scenario: impl AsyncFnOnce(&common::Target<AsClient<AsyncStd>>),
) {
    let _lock = common::test_lock(name);
    let rt = tokio_adapter::runtime();
    AsyncStd::block_on(async {
        let probe = Arc::new(Probe::default());
        let tls = tls.then(tls_configs);
        let (stop, stopped) = tokio::sync::watch::channel(());
        let addrs = rt
            .spawn(tokio_adapter::start_servers(
                tls.clone(),
                probe.clone(),
                stopped,
            ))
            .await
            .expect("tokio servers");
        let h = Harness::new(client(tls.as_ref()), addrs, tls.as_ref(), probe, stop);
        scenario(&h.target).await;
    });
}

/// hookup-tokio's client (on tokio) against hookup-async-std's servers
/// (their connections spawned on async-std).
fn tokio_client_async_std_server(
    tls: bool,
    name: &str,
    scenario: impl AsyncFnOnce(&common::Target<tokio_adapter::TokioClient>),
) {
    let _lock = common::test_lock(name);
    tokio_adapter::runtime().block_on(async {
        let probe = Arc::new(Probe::default());
        let tls = tls.then(tls_configs);
        let (stop, stopped) = tokio::sync::watch::channel(());
        let addrs = start_servers::<AsyncStd>(tls.as_ref(), &probe, &stopped).await;
        let client = tokio_adapter::TokioClient {
            config: common::hookup::client_config(tls.as_ref()),
        };
        let h = Harness::new(client, addrs, tls.as_ref(), probe, stop);
        scenario(&h.target).await;
    });
}

macro_rules! interop {
    ($($name:ident),* $(,)?) => {
        mod async_std_client_tokio_server {
            mod plain { $( #[test] fn $name() {
                crate::async_std_client_tokio_server(false, stringify!($name), crate::common::$name)
            } )* }
            mod tls { $( #[test] fn $name() {
                crate::async_std_client_tokio_server(true, stringify!($name), crate::common::$name)
            } )* }
        }
        mod tokio_client_async_std_server {
            mod plain { $( #[test] fn $name() {
                crate::tokio_client_async_std_server(false, stringify!($name), crate::common::$name)
            } )* }
            mod tls { $( #[test] fn $name() {
                crate::tokio_client_async_std_server(true, stringify!($name), crate::common::$name)
            } )* }
        }
    };
}

interop_scenarios!(interop);
