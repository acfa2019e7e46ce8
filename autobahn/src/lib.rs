//! Runners that put hookup under the Autobahn TestSuite (through kosoku):
//! `autobahn-client` walks a fuzzing server's cases with a hookup-tokio
//! client, `autobahn-client-async-std` with a hookup-async-std one (both
//! through [`walk`], which works for any adapter built on `hookup-driver`),
//! and `autobahn-server-async-std` is hookup-async-std's echo server.
//! hookup-tokio's server side is `hookup serve` (its `/echo` endpoint).
//!
//! The runners share their command lines ([`ClientArgs`], [`ServerArgs`]):
//! `--deflate` turns permessage-deflate on (cases 12.x and 13.x),
//! `--deflate-threshold N` sets the size under which messages go out
//! uncompressed (default 0: kosoku's text cases need every echo
//! compressed), and a client's `--parallelism N` runs that many cases at a
//! time.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use hookup_driver::{ClientConfig, Config, Message, Transport, WebSocket};
use hookup_proto::DeflateConfig;

/// Largest message and frame the runners accept (Autobahn's 9.x cases send
/// up to 16 MiB).
pub const MAX_MESSAGE: usize = 64 << 20;

/// The permessage-deflate settings of the runners: compress every message
/// of at least `threshold` bytes. A client also offers
/// `client_no_context_takeover` (and then honours it), as Autobahn's own
/// client does: kosoku's 13.2, 13.5 and 13.6 servers accept only offers
/// that include it.
pub fn deflate_config(threshold: usize, client: bool) -> DeflateConfig {
    let mut d = DeflateConfig::default();
    d.threshold = threshold;
    d.local_no_context_takeover = client;
    d
}

/// Client settings for the fuzzing server's cases (messages up to
/// [`MAX_MESSAGE`]); `deflate`: offer permessage-deflate with this
/// threshold.
pub fn client_config(deflate: Option<usize>) -> ClientConfig {
    let mut config = ClientConfig::default();
    config.ws.proto.max_message_size = MAX_MESSAGE;
    config.ws.proto.max_frame_size = MAX_MESSAGE;
    config.ws.proto.deflate = deflate.map(|t| deflate_config(t, true));
    config
}

/// Server settings for kosoku's cases (messages up to [`MAX_MESSAGE`]);
/// `deflate`: accept permessage-deflate with this threshold.
pub fn server_config(deflate: Option<usize>) -> Config {
    let mut config = Config::default();
    config.proto.max_message_size = MAX_MESSAGE;
    config.proto.max_frame_size = MAX_MESSAGE;
    config.proto.deflate = deflate.map(|t| deflate_config(t, false));
    config
}

/// Parses `--deflate`, `--deflate-threshold N` and, when `parallelism` is
/// given, `--parallelism N`; returns the positional arguments.
fn parse_flags(
    args: impl IntoIterator<Item = String>,
    parallelism: Option<&mut usize>,
    deflate: &mut Option<usize>,
) -> Result<Vec<String>, String> {
    let mut threshold = None;
    let mut on = false;
    let mut positional = Vec::new();
    let mut parallel = None;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            let v = args.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{name}: not a number: {v:?}"))
        };
        match a.as_str() {
            "--deflate" => on = true,
            "--deflate-threshold" => threshold = Some(number("--deflate-threshold")?),
            "--parallelism" if parallelism.is_some() => {
                let n = number("--parallelism")?;
                if n == 0 {
                    return Err("--parallelism must be at least 1".into());
                }
                parallel = Some(n);
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => positional.push(a),
        }
    }
    if threshold.is_some() && !on {
        return Err("--deflate-threshold needs --deflate".into());
    }
    *deflate = on.then(|| threshold.unwrap_or(0));
    if let (Some(p), Some(n)) = (parallelism, parallel) {
        *p = n;
    }
    Ok(positional)
}

/// A client runner's command line:
/// `[--deflate [--deflate-threshold N]] [--parallelism N] BASE_URL [AGENT]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientArgs {
    /// The fuzzing server, e.g. `ws://127.0.0.1:9001`.
    pub base: String,
    /// The agent name the reports are filed under.
    pub agent: String,
    /// `Some(threshold)`: offer permessage-deflate.
    pub deflate: Option<usize>,
    /// Cases run at the same time (default 1).
    pub parallelism: usize,
}

impl ClientArgs {
    /// Parses `args` (without the program name); `default_agent` when no
    /// AGENT is given.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        default_agent: &str,
    ) -> Result<Self, String> {
        let mut parallelism = 1;
        let mut deflate = None;
        let pos = parse_flags(args, Some(&mut parallelism), &mut deflate)?;
        let mut pos = pos.into_iter();
        let base = pos.next().ok_or("missing BASE_URL")?;
        let agent = pos.next().unwrap_or_else(|| default_agent.into());
        if let Some(extra) = pos.next() {
            return Err(format!("unexpected argument {extra:?}"));
        }
        Ok(Self {
            base,
            agent,
            deflate,
            parallelism,
        })
    }
}

/// A server runner's command line: `[--deflate [--deflate-threshold N]] ADDR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerArgs {
    /// Where to listen, e.g. `127.0.0.1:9001`.
    pub addr: String,
    /// `Some(threshold)`: accept permessage-deflate.
    pub deflate: Option<usize>,
}

impl ServerArgs {
    /// Parses `args` (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut deflate = None;
        let pos = parse_flags(args, None, &mut deflate)?;
        match <[String; 1]>::try_from(pos) {
            Ok([addr]) => Ok(Self { addr, deflate }),
            Err(_) => Err("expected exactly one ADDR".into()),
        }
    }
}

/// Echoes every data message until the connection ends.
pub async fn echo<S, R: Transport<S>>(ws: &mut WebSocket<S, R>) {
    while let Some(item) = ws.recv().await {
        match item {
            Ok(m) if m.is_data() => {
                if ws.send(m).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

/// Polls all `tasks` (in this one task) until every one has finished.
async fn join_all<F: Future<Output = ()>>(tasks: Vec<F>) {
    let mut tasks: Vec<Option<Pin<Box<F>>>> =
        tasks.into_iter().map(|t| Some(Box::pin(t))).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in &mut tasks {
            if let Some(t) = slot {
                if t.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
}

/// Walks a fuzzing server (`kosoku -m fuzzingserver`) at `base`: asks for
/// the number of cases, runs each as an echo client, `parallelism` cases
/// at a time (kosoku files each result under the case number in the URL,
/// so the order in which they finish does not matter), then asks it to
/// write the reports. `open` connects to a URL (with [`client_config`]).
pub async fn walk<S, R, F, Fut>(
    base: &str,
    agent: &str,
    parallelism: usize,
    open: F,
) -> Result<(), Box<dyn std::error::Error>>
where
    R: Transport<S>,
    F: Fn(String) -> Fut,
    Fut: Future<Output = hookup_driver::Result<WebSocket<S, R>>>,
{
    let base = base.trim_end_matches('/');
    let mut ws = open(format!("{base}/getCaseCount")).await?;
    let mut count = None;
    while let Some(item) = ws.recv().await {
        match item {
            Ok(Message::Text(t)) => count = Some(t.parse::<u32>()?),
            Ok(_) => {}
            Err(e) if count.is_some() => eprintln!("getCaseCount: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    let count = count.ok_or("no case count received")?;
    eprintln!("{count} cases, {parallelism} at a time");

    // Workers take the next case number in turn, so at most `parallelism`
    // cases run at once and each runs exactly once.
    let next = Cell::new(1u32);
    let (next, open) = (&next, &open);
    let workers = (0..parallelism.max(1))
        .map(|_| async move {
            loop {
                let case = next.get();
                if case > count {
                    break;
                }
                next.set(case + 1);
                let url = format!("{base}/runCase?case={case}&agent={agent}");
                match open(url).await {
                    Ok(mut ws) => echo(&mut ws).await,
                    Err(e) => eprintln!("case {case}: {e}"),
                }
            }
        })
        .collect();
    join_all(workers).await;

    // The fuzzing server answers updateReports with a 101 and drops the
    // connection; either way the request has been made.
    let _ = open(format!("{base}/updateReports?agent={agent}")).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn client_args() {
        let a = ClientArgs::parse(args("ws://h:1"), "x").unwrap();
        assert_eq!((a.base.as_str(), a.agent.as_str()), ("ws://h:1", "x"));
        assert_eq!((a.deflate, a.parallelism), (None, 1));
        let a = ClientArgs::parse(args("--deflate --parallelism 2 ws://h:1 ag"), "x").unwrap();
        assert_eq!(
            (a.deflate, a.parallelism, a.agent.as_str()),
            (Some(0), 2, "ag")
        );
        let a = ClientArgs::parse(args("ws://h:1 --deflate-threshold 7 --deflate"), "x").unwrap();
        assert_eq!(a.deflate, Some(7));
        for bad in [
            "",
            "--deflate-threshold 3 ws://h:1",
            "--parallelism 0 ws://h:1",
            "--parallelism x ws://h:1",
            "--bogus ws://h:1",
            "ws://h:1 a b",
            "ws://h:1 --parallelism",
        ] {
            assert!(ClientArgs::parse(args(bad), "x").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn server_args() {
        let a = ServerArgs::parse(args("127.0.0.1:1")).unwrap();
        assert_eq!((a.addr.as_str(), a.deflate), ("127.0.0.1:1", None));
        let a = ServerArgs::parse(args("--deflate 127.0.0.1:1")).unwrap();
        assert_eq!(a.deflate, Some(0));
        let a = ServerArgs::parse(args("--deflate --deflate-threshold 128 a:1")).unwrap();
        assert_eq!(a.deflate, Some(128));
        for bad in [
            "",
            "a:1 b:2",
            "--parallelism 2 a:1",
            "--deflate-threshold 1 a:1",
        ] {
            assert!(ServerArgs::parse(args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn configs() {
        assert!(client_config(None).ws.proto.deflate.is_none());
        let d = client_config(Some(5)).ws.proto.deflate.unwrap();
        assert_eq!((d.threshold, d.local_no_context_takeover), (5, true));
        let d = server_config(Some(0)).proto.deflate.unwrap();
        assert_eq!((d.threshold, d.local_no_context_takeover), (0, false));
        assert_eq!(server_config(None).proto.max_message_size, MAX_MESSAGE);
    }
}
