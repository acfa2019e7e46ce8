//! permessage-deflate over real sockets: a tokio `Server` and `connect_with`
//! negotiating it through `Config.proto.deflate`, echoing large and small
//! messages, and a compressed message that inflates past the server's
//! `max_message_size` (close 1009).

use std::time::Duration;

use hookup_tokio::proto::DeflateConfig;
use hookup_tokio::proto::http::header::SEC_WEBSOCKET_EXTENSIONS;
use hookup_tokio::{ClientConfig, ClientRequest, CloseCode, Config, Message, Server, connect_with};

/// An echo server on a free port; `deflate` turns the extension on.
async fn echo_server(deflate: bool, max_message_size: usize) -> String {
    let mut config = Config::default();
    config.proto.max_message_size = max_message_size;
    if deflate {
        config.proto.deflate = Some(DeflateConfig::default());
    }
    let server = Server::new()
        .config(config)
        .route("/echo", |mut ws, _req| async move {
            while let Some(Ok(m)) = ws.recv().await {
                if m.is_data() && ws.send(m).await.is_err() {
                    break;
                }
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("ws://{}/echo", server.local_addr().unwrap());
    tokio::spawn(server.run());
    url
}

fn client_config(deflate: bool) -> ClientConfig {
    let mut config = ClientConfig::default();
    if deflate {
        config.ws.proto.deflate = Some(DeflateConfig::default());
    }
    config
}

fn json(n: usize) -> String {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            r#"{{"id":{i},"name":"item {}","ok":true}},"#,
            i * 31 % 97
        ));
        i += 1;
    }
    s.push(']');
    s
}

#[tokio::test]
async fn negotiates_and_echoes_compressed_messages() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let url = echo_server(true, 64 << 20).await;
        let (mut ws, response) =
            connect_with(ClientRequest::new(&url).unwrap(), &client_config(true))
                .await
                .unwrap();
        assert_eq!(
            response.headers.get(SEC_WEBSOCKET_EXTENSIONS).unwrap(),
            "permessage-deflate"
        );
        let messages = [
            Message::text(json(200_000)),
            Message::text("small"),
            Message::binary(json(3000).into_bytes()),
            Message::text(json(200_000)),
            Message::text(""),
        ];
        for m in &messages {
            ws.send(m.clone()).await.unwrap();
        }
        for m in &messages {
            assert_eq!(&ws.recv().await.unwrap().unwrap(), m);
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn one_side_without_deflate_means_no_extension() {
    tokio::time::timeout(Duration::from_secs(30), async {
        for (server, client) in [(true, false), (false, true)] {
            let url = echo_server(server, 64 << 20).await;
            let (mut ws, response) =
                connect_with(ClientRequest::new(&url).unwrap(), &client_config(client))
                    .await
                    .unwrap();
            assert!(response.headers.get(SEC_WEBSOCKET_EXTENSIONS).is_none());
            let m = Message::text(json(10_000));
            ws.send(m.clone()).await.unwrap();
            assert_eq!(ws.recv().await.unwrap().unwrap(), m);
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_small_message_inflating_past_the_limit_closes_1009() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let url = echo_server(true, 1 << 20).await;
        let (mut ws, _) = connect_with(ClientRequest::new(&url).unwrap(), &client_config(true))
            .await
            .unwrap();
        // 8 MiB of zeros: about 8 KiB on the wire, 8 times the limit inflated.
        ws.send(Message::binary(vec![0u8; 8 << 20])).await.unwrap();
        let mut code = None;
        while let Some(item) = ws.recv().await {
            match item {
                Ok(Message::Close(frame)) => code = frame.map(|f| f.code),
                Ok(_) => panic!("no echo expected"),
                Err(_) => break,
            }
        }
        assert_eq!(code, Some(CloseCode::MESSAGE_TOO_BIG));
    })
    .await
    .unwrap();
}
