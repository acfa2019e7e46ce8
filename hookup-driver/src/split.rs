//! The halves of a split [`WebSocket`](crate::WebSocket): one `Core`
//! behind a mutex, driven by whichever half is polled, with a [`MuxWaker`]
//! so that the other half learns of progress.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_sink::Sink;
use hookup_proto::CloseCode;

use crate::conn::Core;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::mux::MuxWaker;
use crate::{Runtime, Transport};

/// Splits `core` into its two halves.
pub(crate) fn split<S, R: Runtime>(core: Core<S, R>) -> (ReadHalf<S, R>, WriteHalf<S, R>) {
    let mux = Arc::new(MuxWaker::default());
    let shared = Arc::new(Shared {
        core: Mutex::new(core),
        waker: Waker::from(mux.clone()),
        mux,
    });
    (
        ReadHalf {
            shared: shared.clone(),
        },
        WriteHalf { shared },
    )
}

struct Shared<S, R: Runtime> {
    core: Mutex<Core<S, R>>,
    mux: Arc<MuxWaker>,
    waker: Waker,
}

impl<S, R: Runtime> Shared<S, R> {
    fn with<T>(
        &self,
        side: usize,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Core<S, R>, &mut Context<'_>) -> T,
    ) -> T {
        self.mux.register(side, cx.waker());
        let mut cx = Context::from_waker(&self.waker);
        let mut core = self.core.lock().unwrap_or_else(|e| e.into_inner());
        let r = f(&mut core, &mut cx);
        let advanced = std::mem::take(&mut core.advanced);
        drop(core);
        if advanced {
            // What this half read or finished, the other may be waiting for.
            self.mux.wake_other(side);
        }
        r
    }
}

/// The reading half of a split [`WebSocket`](crate::WebSocket).
pub struct ReadHalf<S, R: Runtime> {
    shared: Arc<Shared<S, R>>,
}

/// The writing half of a split [`WebSocket`](crate::WebSocket).
pub struct WriteHalf<S, R: Runtime> {
    shared: Arc<Shared<S, R>>,
}

impl<S, R: Transport<S>> ReadHalf<S, R> {
    /// The next message; `None` once closed. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.shared.with(0, cx, |c, cx| c.poll_next(cx))).await
    }
}

impl<S, R: Transport<S>> Stream for ReadHalf<S, R> {
    type Item = Result<Message>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.shared.with(0, cx, |c, cx| c.poll_next(cx))
    }
}

impl<S, R: Transport<S>> WriteHalf<S, R> {
    /// Sends a message and writes it out.
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<()> {
        let msg = msg.into();
        poll_fn(|cx| self.shared.with(1, cx, |c, cx| c.poll_ready(cx))).await?;
        self.shared
            .core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .start_send(msg)?;
        poll_fn(|cx| self.shared.with(1, cx, |c, cx| c.poll_flush(cx))).await
    }

    /// Closes with `code` and `reason` and drives the closing handshake to
    /// its end (messages still unread by the read half are discarded).
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        {
            let mut core = self.shared.core.lock().unwrap_or_else(|e| e.into_inner());
            if core.conn.is_open() {
                core.conn.close(R::now(), code, reason)?;
            }
        }
        poll_fn(|cx| self.shared.with(1, cx, |c, cx| c.poll_close(cx))).await
    }
}

impl<S, R: Transport<S>> Sink<Message> for WriteHalf<S, R> {
    type Error = Error;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.with(1, cx, |c, cx| c.poll_ready(cx))
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        self.shared
            .core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .start_send(item)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.with(1, cx, |c, cx| c.poll_flush(cx))
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.with(1, cx, |c, cx| c.poll_close(cx))
    }
}
