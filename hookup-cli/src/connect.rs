//! `hookup connect URL`: standard input out as text messages, received
//! messages on standard output; `--reliable` for hookup.v1 sessions.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hookup_tokio::proto::http::header;
use hookup_tokio::reliable::{
    self, DeliveryOutcome, ReliableClient, ReliableConfig, ReliableEvent,
};
use hookup_tokio::{ClientConfig, ClientRequest, CloseCode, Message, connect_with};
use tokio::io::AsyncBufReadExt;

pub(crate) async fn plain(
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
    let mut reader = reader;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut failed = false;
    // The connection may end before the input does (the server closed it,
    // or broke the protocol): then there is nothing left to send to, and
    // the command ends at once instead of waiting on standard input.
    let mut ended = None;
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
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
            },
            result = &mut reader => {
                ended = Some(result);
                break;
            }
        }
    }
    if let Some(result) = ended {
        match result {
            Ok(Err(e)) => eprintln!("hookup: {e}"),
            Ok(Ok(())) => eprintln!("hookup: the connection ended before the end of input"),
            Err(e) => eprintln!("hookup: {e}"),
        }
        return ExitCode::FAILURE;
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

pub(crate) async fn reliable(
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
