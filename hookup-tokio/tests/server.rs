//! The tokio `Server` as `hookup_driver::Server<Tokio>`: connections go to
//! `tokio::spawn` by default, or to a spawner given with `spawn_with`; its
//! `Debug` output names the routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hookup_tokio::{CloseCode, Message, Server};

fn echo(server: Server) -> Server {
    server.route("/echo", |mut ws, _req| async move {
        while let Some(Ok(m)) = ws.recv().await {
            if m.is_data() && ws.send(m).await.is_err() {
                break;
            }
        }
    })
}

/// Connects `n` clients one after the other and checks each gets its echo.
async fn echo_clients(url: &str, n: usize) {
    for i in 0..n {
        let mut ws = hookup_tokio::connect(url).await.expect("connect");
        let text = format!("hello {i}");
        ws.send(text.as_str()).await.expect("send");
        let m = ws.recv().await.expect("a reply").expect("no error");
        assert_eq!(m, Message::text(text));
        ws.close(CloseCode::NORMAL, "").await.expect("close");
    }
}

#[tokio::test]
async fn connections_go_to_the_spawner_given() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let spawned = Arc::new(AtomicUsize::new(0));
        let count = spawned.clone();
        let server = echo(Server::new())
            .spawn_with(move |f| {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(f);
            })
            .bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("ws://{}/echo", server.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        echo_clients(&url, 3).await;
        assert_eq!(spawned.load(Ordering::SeqCst), 3);
        stop.send(()).unwrap();
        run.await.unwrap().expect("run_until ends cleanly");
    })
    .await
    .expect("within 30 s");
}

#[tokio::test]
async fn connections_are_tokio_tasks_by_default() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let server = echo(Server::new()).bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/echo", server.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        // A connection that outlives `run_until`: it was a task of its own.
        let mut ws = hookup_tokio::connect(&url).await.expect("connect");
        stop.send(()).unwrap();
        run.await.unwrap().expect("run_until ends cleanly");
        ws.send("still here").await.expect("send");
        let m = ws.recv().await.expect("a reply").expect("no error");
        assert_eq!(m, Message::text("still here"));
        ws.close(CloseCode::NORMAL, "").await.expect("close");
    })
    .await
    .expect("within 30 s");
}

#[test]
fn debug_names_the_routes() {
    let server = echo(Server::new());
    let s = format!("{server:?}");
    assert!(s.contains("\"/echo\""), "{s}");
    assert!(s.contains("spawner: false"), "{s}");
}
