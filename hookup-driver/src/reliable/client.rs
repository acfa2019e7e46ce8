//! [`ReliableClient`]: a handle, and the task that drives its session.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use futures_util::StreamExt as _;
use hookup_proto::ClientRequest;
use hookup_proto::reliable::{
    Action, DropReason, MessageId, Outcome, SendError, Session, SessionEvent,
};

use super::journal::JournalFile;
use super::{Delivery, Finished, ReliableConfig, ReliableEvent};
use crate::net::{Net, timeout};
use crate::ws::{Io, Timer};
use crate::{ClientConfig, Message, Result};

enum Cmd {
    Send {
        msg: Message,
        ack: Option<Duration>,
        accepted: oneshot::Sender<std::result::Result<Delivery, SendError>>,
    },
    Shutdown,
    Abort,
}

/// A client that keeps its session across network failures: it reconnects
/// with backoff, resumes, replays what the server has not acknowledged, and
/// drops duplicates. Runs in its own task (see the [module](super) for
/// where); this is its handle. `R` is the adapter's runtime.
pub struct ReliableClient<R> {
    cmd: mpsc::UnboundedSender<Cmd>,
    events: mpsc::Receiver<ReliableEvent>,
    done: Option<oneshot::Receiver<Finished>>,
    runtime: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for ReliableClient<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReliableClient")
            .field("finished", &self.cmd.is_closed())
            .finish_non_exhaustive()
    }
}

impl<R: Net> ReliableClient<R>
where
    R::Sleep: Send,
{
    /// Starts a client for `url` (its first connection attempt begins at once).
    /// With a journal, messages left in it by an earlier process are sent first.
    pub fn connect(url: &str, config: ReliableConfig) -> Result<Self> {
        Self::connect_request(ClientRequest::new(url)?, config)
    }

    /// Starts a client for a full request (headers, subprotocols).
    pub fn connect_request(request: ClientRequest, config: ReliableConfig) -> Result<Self> {
        let capacity = config.event_capacity.max(1);
        let (cmd_tx, cmd_rx) = mpsc::unbounded();
        // A bounded channel holds its buffer plus one item per sender.
        let (ev_tx, ev_rx) = mpsc::channel(capacity - 1);
        let (done_tx, done_rx) = oneshot::channel();
        let mut session_config = config.session.clone();
        // Acks are counted from the releases (an abort or a give-up empties
        // the outbox, so its length no longer tells what was acknowledged).
        session_config.report_releases = true;
        let mut session = Session::client(request, session_config, R::now());
        let mut journal = None;
        let mut jmap = HashMap::new();
        let mut received = 0;
        if let Some(path) = &config.journal {
            let mut j = JournalFile::open(path, config.fsync)?;
            let mut requeued_all = true;
            for (jid, msg) in j
                .journal
                .live()
                .map(|(id, m)| (id, m.clone()))
                .collect::<Vec<_>>()
            {
                match session.send(R::now(), msg, None) {
                    Ok(id) => {
                        jmap.insert(id, jid);
                    }
                    Err(e) => {
                        tracing::warn!("journal: message {jid} not requeued: {e}");
                        j.done(jid)?;
                        requeued_all = false;
                    }
                }
            }
            // Resume the earlier process's session: the server, if it still
            // has it, then knows what arrived of the requeued messages (and
            // drops repeats), and replays what this client did not receive.
            // A message left out would leave a hole in its numbering: start
            // a new session then.
            let sid = j.journal.session_id().to_vec();
            if !sid.is_empty() && requeued_all {
                received = j.journal.received_count();
                session.restore(&sid, j.journal.acked_count(), received);
                tracing::info!(
                    "journal: resuming the session of an earlier run ({} acknowledged, {received} received)",
                    j.journal.acked_count()
                );
            } else if !sid.is_empty() {
                j.session(b"")?;
            }
            if !jmap.is_empty() {
                tracing::info!(
                    "journal: {} unacknowledged messages from an earlier run requeued",
                    jmap.len()
                );
            }
            journal = Some(j);
        }
        let driver = ClientDriver::<R> {
            session,
            io: None,
            closing: false,
            read_eof: false,
            connecting: None,
            timer: Timer::default(),
            cmd: cmd_rx,
            cmd_open: true,
            events: ev_tx,
            backlog: VecDeque::new(),
            capacity,
            pending: HashMap::new(),
            accepted: jmap.len(),
            released: 0,
            journal,
            jmap,
            received,
            received_dirty: false,
            sync_timer: None,
            client: config.client,
            done: Some(done_tx),
            gave_up: false,
        };
        super::spawn::<R>("hookup-reliable", Box::pin(driver));
        Ok(Self {
            cmd: cmd_tx,
            events: ev_rx,
            done: Some(done_rx),
            runtime: PhantomData,
        })
    }

    /// Queues a message. With `ack`, its [`Delivery`] resolves to `Acked` or
    /// `AckFailed` (no ack within `ack` after it was written); without, to
    /// `Written`. Either way the message is kept until the server
    /// acknowledges it and is replayed across reconnects. Fails at once when
    /// the outbox is full or the client has ended.
    pub async fn send(
        &self,
        msg: impl Into<Message>,
        ack: Option<Duration>,
    ) -> std::result::Result<Delivery, SendError> {
        let (tx, rx) = oneshot::channel();
        let cmd = Cmd::Send {
            msg: msg.into(),
            ack,
            accepted: tx,
        };
        // Unbounded, but each `send` waits for its answer: the queue holds
        // at most one command per `send` in progress.
        self.cmd
            .unbounded_send(cmd)
            .map_err(|_| SendError::Closed)?;
        rx.await.unwrap_or(Err(SendError::Closed))
    }

    /// The next event; `None` once the client has finished.
    pub async fn recv(&mut self) -> Option<ReliableEvent> {
        self.events.next().await
    }

    /// Stops accepting messages and waits until every message is
    /// acknowledged (then closes with 1000), the client gives up, or
    /// `deadline` passes (then aborts: the messages still unacknowledged
    /// are dropped, also from the journal). Events still arriving are
    /// discarded. Every [`Delivery`] is resolved when this returns.
    pub async fn shutdown(mut self, deadline: Duration) -> Finished {
        let _ = self.cmd.unbounded_send(Cmd::Shutdown);
        let Some(mut done) = self.done.take() else {
            return Finished {
                unacked: 0,
                gave_up: false,
            };
        };
        let events = &mut self.events;
        let wait = poll_fn(|cx| {
            loop {
                if let Poll::Ready(r) = Pin::new(&mut done).poll(cx) {
                    return Poll::Ready(r.ok());
                }
                match Pin::new(&mut *events).poll_next(cx) {
                    Poll::Ready(Some(_)) => {}
                    // No more events: the driver is finishing.
                    Poll::Ready(None) => return Pin::new(&mut done).poll(cx).map(|r| r.ok()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        });
        if let Some(Some(f)) = timeout::<R, _>(deadline, wait).await {
            return f;
        }
        let _ = self.cmd.unbounded_send(Cmd::Abort);
        let f = async {
            while self.events.next().await.is_some() {}
            done.await.ok()
        };
        timeout::<R, _>(Duration::from_secs(5), f)
            .await
            .flatten()
            .unwrap_or(Finished {
                unacked: usize::MAX,
                gave_up: false,
            })
    }
}

type Connecting<S> = Pin<Box<dyn Future<Output = Result<S>> + Send>>;

struct ClientDriver<R: Net> {
    session: Session,
    io: Option<Io<R::Stream, R>>,
    /// Writing out the last bytes of a finished connection, then shutting it.
    closing: bool,
    read_eof: bool,
    connecting: Option<Connecting<R::Stream>>,
    timer: Timer<R>,
    cmd: mpsc::UnboundedReceiver<Cmd>,
    cmd_open: bool,
    events: mpsc::Sender<ReliableEvent>,
    backlog: VecDeque<ReliableEvent>,
    capacity: usize,
    pending: HashMap<MessageId, oneshot::Sender<Outcome>>,
    journal: Option<JournalFile>,
    /// The journal's interval fsync.
    sync_timer: Option<R::Sleep>,
    jmap: HashMap<MessageId, u64>,
    /// Messages of the current session taken from it (to the journal).
    received: u64,
    received_dirty: bool,
    /// Messages taken into the session (sends and journal requeues), and
    /// how many of them the server acknowledged.
    accepted: usize,
    released: usize,
    client: ClientConfig,
    done: Option<oneshot::Sender<Finished>>,
    gave_up: bool,
}

impl<R: Net> ClientDriver<R>
where
    R::Sleep: Send,
{
    fn journal_done(&mut self, id: MessageId) {
        if let (Some(j), Some(jid)) = (&mut self.journal, self.jmap.remove(&id))
            && let Err(e) = j.done(jid)
        {
            tracing::error!("journal: {e}");
        }
    }

    /// Runs `f` on the journal, if there is one, logging its error.
    fn journal(&mut self, f: impl FnOnce(&mut JournalFile) -> std::io::Result<()>) {
        if let Some(j) = &mut self.journal
            && let Err(e) = f(j)
        {
            tracing::error!("journal: {e}");
        }
    }

    fn handle_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Send { msg, ack, accepted } => {
                let proto = msg.to_proto();
                let r = self.session.send(R::now(), proto, ack).map(|id| {
                    self.accepted += 1;
                    let (tx, delivery) = Delivery::new();
                    self.pending.insert(id, tx);
                    if let Some(j) = &mut self.journal {
                        match j.add(&msg) {
                            Ok(jid) => {
                                self.jmap.insert(id, jid);
                            }
                            Err(e) => tracing::error!("journal: {e}"),
                        }
                    }
                    delivery
                });
                let _ = accepted.send(r);
            }
            Cmd::Shutdown => self.session.shutdown(R::now()),
            Cmd::Abort => self.session.abort(R::now()),
        }
    }

    fn on_event(&mut self, ev: SessionEvent) {
        let out = match ev {
            SessionEvent::Delivery { id, outcome } => {
                if matches!(outcome, Outcome::Dropped(_)) {
                    self.journal_done(id);
                }
                if let Some(tx) = self.pending.remove(&id) {
                    let _ = tx.send(outcome);
                }
                return;
            }
            SessionEvent::Released(id) => {
                self.released += 1;
                let jid = self.jmap.remove(&id);
                self.journal(|j| j.acked(jid));
                return;
            }
            SessionEvent::Connected { resumed, session } => {
                if !resumed {
                    // A new session: every unacknowledged message is
                    // numbered afresh, nothing received yet.
                    self.received = 0;
                    self.received_dirty = false;
                    self.journal(|j| j.session(&session));
                }
                ReliableEvent::Connected { resumed }
            }
            SessionEvent::Reconnecting { attempt, delay } => {
                ReliableEvent::Reconnecting { attempt, delay }
            }
            SessionEvent::Disconnected { code, reason } => {
                ReliableEvent::Disconnected { code, reason }
            }
            SessionEvent::GaveUp => {
                self.gave_up = true;
                // Messages were dropped unacknowledged: the journal no
                // longer matches the session, which is not resumed.
                self.journal(|j| j.session(b""));
                ReliableEvent::GaveUp
            }
            SessionEvent::Closed => {
                self.journal(|j| j.session(b""));
                return;
            }
            SessionEvent::Message(m) => {
                self.received += 1;
                self.received_dirty = true;
                ReliableEvent::Message(m.into())
            }
            SessionEvent::Rtt(r) => ReliableEvent::Rtt(r),
            SessionEvent::Error(e) => ReliableEvent::Error(e.to_string()),
            _ => return,
        };
        self.backlog.push_back(out);
    }

    /// One pass over every source of progress; returns whether anything moved.
    fn step(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while let Some(a) = self.session.poll_action() {
            progress = true;
            match a {
                Action::Connect => {
                    let request = self.session.request().expect("client session").clone();
                    let client = self.client.clone();
                    self.connecting = Some(Box::pin(async move {
                        crate::open_transport::<R>(&request, &client).await
                    }));
                }
                Action::CloseTransport => self.closing = self.io.is_some(),
                _ => {}
            }
        }
        while let Some(ev) = self.session.poll_event() {
            progress = true;
            self.on_event(ev);
        }
        if std::mem::take(&mut self.received_dirty) {
            // In the file before anything more is written to the socket:
            // the ACK for these messages must not be ahead of the journal
            // (a restarted client would tell the server it received less
            // than it acknowledged).
            let n = self.received;
            self.journal(|j| j.received(n));
        }
        while !self.backlog.is_empty() {
            match self.events.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let ev = self.backlog.pop_front().expect("not empty");
                    let _ = self.events.start_send(ev);
                    progress = true;
                }
                // The application dropped its receiver: events go nowhere.
                Poll::Ready(Err(_)) => self.backlog.clear(),
                Poll::Pending => break,
            }
        }
        while self.cmd_open {
            match Pin::new(&mut self.cmd).poll_next(cx) {
                Poll::Ready(Some(cmd)) => {
                    progress = true;
                    self.handle_cmd(cmd);
                }
                Poll::Ready(None) => {
                    // Every handle is gone: finish what was queued, then end.
                    self.cmd_open = false;
                    self.session.shutdown(R::now());
                    progress = true;
                }
                Poll::Pending => break,
            }
        }
        if let Some(f) = &mut self.connecting
            && let Poll::Ready(r) = f.as_mut().poll(cx)
        {
            self.connecting = None;
            progress = true;
            match r {
                Ok(stream) => {
                    self.io = Some(Io::new(stream, self.client.ws.max_read_size));
                    self.read_eof = false;
                    self.closing = false;
                    self.session.handle_connected(R::now());
                }
                Err(e) => self.session.handle_connect_failed(R::now(), &e.to_string()),
            }
        }
        if let Some(io) = &mut self.io {
            if self.closing {
                let done = match io.poll_write_out(&mut self.session, cx) {
                    Poll::Ready(_) => io.poll_shutdown(cx).is_ready(),
                    Poll::Pending => false,
                };
                if done {
                    self.io = None;
                    self.closing = false;
                    progress = true;
                }
            } else {
                if io.has_output(&self.session) {
                    let queued = self.session.transmit_len();
                    match io.poll_write_out(&mut self.session, cx) {
                        Poll::Ready(Err(_)) => {
                            self.read_eof = true;
                            self.session.handle_eof(R::now());
                            return true;
                        }
                        // Room in the write window: more of the outbox may
                        // be queued now, with outcomes to report.
                        Poll::Ready(Ok(())) => progress = true,
                        Poll::Pending => progress |= self.session.transmit_len() != queued,
                    }
                }
                if !self.read_eof && self.session.wants_read() && self.backlog.len() < self.capacity
                {
                    match io.poll_read(&mut self.session, cx) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                            self.read_eof = true;
                            self.session.handle_eof(R::now());
                            progress = true;
                        }
                        Poll::Ready(Ok(_)) => {
                            self.session.handle_read(R::now());
                            progress = true;
                        }
                        Poll::Pending => {}
                    }
                }
            }
        }
        if self.timer.poll(&mut self.session, cx) {
            progress = true;
        }
        if let Some(j) = &mut self.journal
            && let Err(e) = j.poll_sync::<R>(&mut self.sync_timer, cx)
        {
            tracing::error!("journal: {e}");
        }
        progress
    }
}

// The driver pins nothing of its own: the connecting future is boxed and
// the stream is only reached through `&mut`.
impl<R: Net> Unpin for ClientDriver<R> {}

impl<R: Net> Future for ClientDriver<R>
where
    R::Sleep: Send,
{
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Bounded passes per poll, so one busy client cannot hog the thread.
        let mut busy = true;
        for _ in 0..64 {
            if !this.step(cx) {
                busy = false;
                break;
            }
        }
        if this.session.is_finished()
            && this.io.is_none()
            && this.backlog.is_empty()
            && this.connecting.is_none()
        {
            if let Some(j) = &mut this.journal
                && let Err(e) = j.sync()
            {
                tracing::error!("journal: {e}");
            }
            for (_, tx) in this.pending.drain() {
                let _ = tx.send(Outcome::Dropped(DropReason::Shutdown));
            }
            if let Some(done) = this.done.take() {
                let _ = done.send(Finished {
                    unacked: this.accepted.saturating_sub(this.released),
                    gave_up: this.gave_up,
                });
            }
            return Poll::Ready(());
        }
        if this.session.is_finished() && this.io.is_some() && !this.closing {
            this.closing = true;
            cx.waker().wake_by_ref();
        }
        if busy {
            // Passes ran out with work left: come back soon. Otherwise every
            // source that had nothing registered its waker.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}
