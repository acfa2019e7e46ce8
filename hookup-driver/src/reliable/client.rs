//! [`ReliableClient`]: a handle, and the task that drives its session.
//!
//! The session lives behind a mutex shared by the handle and the task (as
//! quinn shares its connection state): [`ReliableClient::send`] queues a
//! message into the session itself and wakes the task, which writes
//! everything queued since its last pass in one vectored write.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use futures_util::StreamExt as _;
use futures_util::task::AtomicWaker;
use hookup_proto::ClientRequest;
use hookup_proto::reliable::{
    Action, DeliveryOutcome, DropReason, MessageId, ResumeKey, SendError, Session, SessionEvent,
};

use super::journal_file::JournalFile;
use super::{Delivery, Finished, ReliableConfig, ReliableEvent};
use crate::net::{Net, timeout};
use crate::{ClientConfig, Message, Result};
use crate::{Io, Timer};

/// Messages a `send` may queue before the task has taken them (written
/// them out, or at least run a pass): past this, `send` waits for the task.
/// Bounds the batch, and lets the task read acks in between. Each hand-off
/// to the task costs a wakeup and a runtime pass: at 256 messages that was
/// a fifth of the client's CPU time per 1 KiB message.
const BATCH_MESSAGES: usize = 1024;

/// Payload bytes a `send` may queue before the task has taken them, in
/// write buffers (`write_buffer_size`).
const BATCH_BUFFERS: usize = 4;

/// A map keyed by message id (sequential numbers: a multiplicative hash
/// spreads them; SipHash's DoS resistance is not needed for our own ids).
type IdMap<V> = HashMap<MessageId, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// What a [`ReliableClient`] handle and its task share: the client's
/// state under a lock, the task's waker and the send batch bound.
struct SharedClient {
    state: Mutex<ClientState>,
    /// The task's waker.
    task: AtomicWaker,
    /// Payload bytes a `send` may queue before the task has taken them.
    batch_bytes: usize,
}

impl SharedClient {
    fn lock(&self) -> MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The client's state, behind [`SharedClient`]'s lock: the session, the
/// deliveries waiting for outcomes, the journal file, and what `send`
/// queued since the task's last pass.
struct ClientState {
    session: Session,
    pending: IdMap<oneshot::Sender<DeliveryOutcome>>,
    journal: Option<JournalFile>,
    jmap: IdMap<u64>,
    /// Messages taken into the session (sends and journal requeues).
    accepted: usize,
    /// The task has ended (or was dropped): nothing more is taken.
    ended: bool,
    /// The handle was dropped without `shutdown`: the task shuts down.
    handle_gone: bool,
    /// `shutdown` gave up waiting and aborted: the transport is dropped
    /// without writing out what is still queued for it.
    aborted: bool,
    /// Messages (and their payload bytes) queued by `send` since the task's
    /// last pass.
    queued: usize,
    queued_bytes: usize,
    /// `send`s waiting for the task to take what was queued.
    senders: Vec<Waker>,
    /// The clock as of the task's last pass (or the last send with an ack
    /// deadline): a send without a deadline needs no fresher time (the
    /// session's clock only moves forward, and nothing of such a send is
    /// timed), which saves reading the clock per message. (An older message
    /// with a deadline that this send's pass writes out starts its timer at
    /// this time: early by at most the time since the task last ran, which
    /// it does whenever the socket takes more, so it errs towards
    /// `AckFailed`, never towards waiting longer than asked.)
    now: Instant,
}

impl ClientState {
    /// Queues `msg` (journaled first: see `ClientDriver::step` for why the
    /// order holds) and registers its delivery.
    fn send<R: Net>(
        &mut self,
        proto: hookup_proto::Message,
        ack: Option<Duration>,
    ) -> std::result::Result<Delivery, SendError> {
        if self.ended {
            return Err(SendError::Closed);
        }
        let len = proto.len();
        // The journal's copy (a reference count, not the bytes).
        let record = self.journal.is_some().then(|| proto.clone());
        let now = if ack.is_some() {
            self.now = R::now();
            self.now
        } else {
            self.now
        };
        let id = self.session.send(now, proto, ack)?;
        self.accepted += 1;
        self.queued += 1;
        self.queued_bytes += len;
        // The session queued the message's bytes for the socket, but the
        // task cannot write them before this lock is released: the record
        // is in the file first.
        if let (Some(j), Some(record)) = (&mut self.journal, record) {
            match j.add(&record) {
                Ok(jid) => {
                    self.jmap.insert(id, jid);
                }
                Err(e) => tracing::error!("journal: {e}"),
            }
        }
        // A message written at once without an ack deadline is resolved
        // already (sending may also have dropped or written older ones,
        // whose outcomes come first: this message's is the last).
        let mine = loop {
            match self.session.poll_outcome() {
                Some((oid, outcome)) if oid == id => break Some(outcome),
                Some((oid, outcome)) => self.resolve(oid, outcome),
                None => break None,
            }
        };
        Ok(match mine {
            // The common case, built from a constant.
            Some(DeliveryOutcome::Written) => Delivery::ready(DeliveryOutcome::Written),
            Some(outcome) => {
                if matches!(outcome, DeliveryOutcome::Dropped(_)) {
                    self.journal_done(id);
                }
                Delivery::ready(outcome)
            }
            None => {
                let (tx, delivery) = Delivery::waiting();
                self.pending.insert(id, tx);
                delivery
            }
        })
    }

    /// A message's outcome: its delivery resolves, a dropped one leaves the
    /// journal.
    fn resolve(&mut self, id: MessageId, outcome: DeliveryOutcome) {
        if matches!(outcome, DeliveryOutcome::Dropped(_)) {
            self.journal_done(id);
        }
        if !self.pending.is_empty()
            && let Some(tx) = self.pending.remove(&id)
        {
            let _ = tx.send(outcome);
        }
    }

    /// Resolves the outcomes the session reported since the last drain.
    fn drain_outcomes(&mut self) -> bool {
        let mut any = false;
        while let Some((id, outcome)) = self.session.poll_outcome() {
            any = true;
            self.resolve(id, outcome);
        }
        any
    }

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

    /// The task took what was queued: waiting `send`s may go on.
    fn taken(&mut self) {
        self.queued = 0;
        self.queued_bytes = 0;
        for w in self.senders.drain(..) {
            w.wake();
        }
    }
}

/// A client that keeps its session across network failures: it reconnects
/// with backoff, resumes, replays what the server has not acknowledged, and
/// drops duplicates. Runs in its own task (see the [module](super) for
/// where); this is its handle. `R` is the adapter's runtime.
pub struct ReliableClient<R> {
    shared: Arc<SharedClient>,
    events: mpsc::Receiver<ReliableEvent>,
    done: Option<oneshot::Receiver<Finished>>,
    runtime: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for ReliableClient<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let finished = {
            let st = self.shared.lock();
            st.ended || st.session.is_finished()
        };
        f.debug_struct("ReliableClient")
            .field("finished", &finished)
            .finish_non_exhaustive()
    }
}

impl<R> Drop for ReliableClient<R> {
    fn drop(&mut self) {
        // Every handle is gone (unless `shutdown` ran): finish what was
        // queued, then end.
        if self.done.is_some() {
            self.shared.lock().handle_gone = true;
            self.shared.task.wake();
        }
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
        // A bounded channel holds its buffer plus one item per sender.
        let (ev_tx, ev_rx) = mpsc::channel(capacity - 1);
        let (done_tx, done_rx) = oneshot::channel();
        let mut session_config = config.session.clone();
        // A journal deletes the records of what the server acknowledged.
        session_config.report_releases = config.journal.is_some();
        let connection = crate::entropy::seeded(&config.client.ws.proto);
        let mut session = Session::client(request, session_config, connection, R::now());
        let mut journal = None;
        let mut jmap = IdMap::default();
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
            // Without its resume key (a journal of an older hookup) the
            // session cannot be resumed: a new one starts.
            let sid = j.journal.session_id().to_vec();
            let key = j.journal.session_key().copied().map(ResumeKey::from_bytes);
            if let (false, true, Some(key)) = (sid.is_empty(), requeued_all, &key) {
                received = j.journal.received_count();
                session.restore(&sid, key, j.journal.acked_count(), received);
                tracing::info!(
                    "journal: resuming the session of an earlier run ({} acknowledged, {received} received)",
                    j.journal.acked_count()
                );
            } else if !sid.is_empty() {
                j.session(b"", None)?;
            }
            if !jmap.is_empty() {
                tracing::info!(
                    "journal: {} unacknowledged messages from an earlier run requeued",
                    jmap.len()
                );
            }
            journal = Some(j);
        }
        let shared = Arc::new(SharedClient {
            state: Mutex::new(ClientState {
                session,
                pending: IdMap::default(),
                journal,
                accepted: jmap.len(),
                jmap,
                ended: false,
                handle_gone: false,
                aborted: false,
                queued: 0,
                queued_bytes: 0,
                senders: Vec::new(),
                now: R::now(),
            }),
            task: AtomicWaker::new(),
            batch_bytes: BATCH_BUFFERS * config.client.ws.write_buffer_size.max(1),
        });
        let driver = ClientDriver::<R> {
            shared: shared.clone(),
            io: None,
            closing: false,
            close_by: None,
            close_timeout: config.client.ws.proto.close_timeout,
            connecting: None,
            timer: Timer::default(),
            shutdown_done: false,
            events: ev_tx,
            backlog: VecDeque::new(),
            capacity,
            received,
            received_dirty: false,
            sync_timer: None,
            client: config.client,
            done: Some(done_tx),
            gave_up: false,
        };
        super::spawn::<R>("hookup-reliable", Box::pin(driver));
        Ok(Self {
            shared,
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
    ///
    /// The message is queued into the session right here (and written to
    /// the journal, if there is one); the client's task writes out
    /// everything queued since its last pass in one vectored write. `send`
    /// returns without waiting for the task, unless the connection's output
    /// is at the session's write window (`SessionConfig::write_window`: the
    /// socket is not keeping up), or what was queued since the task's last
    /// pass has grown large (1,024 messages, or four times
    /// `write_buffer_size` bytes of payload): then it waits for the task to
    /// write first. So while connected, every message is written as it is
    /// sent, and a sender that outpaces the network is held back rather than
    /// filling the outbox. While disconnected, messages wait in the outbox
    /// for the next connection, within its bounds.
    pub fn send(&self, msg: impl Into<Message>, ack: Option<Duration>) -> Sending<'_, R> {
        Sending {
            client: self,
            // In the protocol's type before the future is built.
            msg: Some(msg.into().into_proto()),
            ack,
        }
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
        self.shared.lock().session.shutdown(R::now());
        self.shared.task.wake();
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
        {
            let mut st = self.shared.lock();
            st.aborted = true;
            st.session.abort(R::now());
        }
        self.shared.task.wake();
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

/// The future of [`ReliableClient::send`]: queues the message when polled
/// (at once, unless the client must first write out what is queued), and
/// resolves to its [`Delivery`].
#[must_use = "a send does nothing until it is awaited"]
pub struct Sending<'a, R> {
    client: &'a ReliableClient<R>,
    msg: Option<hookup_proto::Message>,
    ack: Option<Duration>,
}

impl<R> std::fmt::Debug for Sending<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sending")
            .field("queued", &self.msg.is_none())
            .finish_non_exhaustive()
    }
}

impl<R: Net> Future for Sending<'_, R>
where
    R::Sleep: Send,
{
    type Output = std::result::Result<Delivery, SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let shared = &self.client.shared;
        let mut st = shared.lock();
        // Wait while the connection's output is at the write window (a
        // message sent now would wait in the outbox, and its Delivery in a
        // map), or a large batch waits for the task.
        if !st.ended
            && (st.session.is_write_blocked()
                || st.queued >= BATCH_MESSAGES
                || st.queued_bytes >= shared.batch_bytes)
        {
            if !st.senders.iter().any(|w| w.will_wake(cx.waker())) {
                st.senders.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let ack = self.ack;
        let msg = self
            .msg
            .take()
            .expect("`Sending` polled after it completed");
        let first = st.queued == 0;
        let r = st.send::<R>(msg, ack);
        drop(st);
        // The first message since the task's last pass wakes it; the rest
        // ride along.
        if first && r.is_ok() {
            shared.task.wake();
        }
        Poll::Ready(r)
    }
}

type Connecting<S> = Pin<Box<dyn Future<Output = Result<S>> + Send>>;

struct ClientDriver<R: Net> {
    shared: Arc<SharedClient>,
    io: Option<Io<R::Stream, R>>,
    /// Writing out the last bytes of a finished connection, then shutting it.
    closing: bool,
    /// When that write-out is given up (a peer that stopped reading would
    /// hold it for ever): the connection's close timeout after it began.
    close_by: Option<R::Sleep>,
    close_timeout: Duration,
    connecting: Option<Connecting<R::Stream>>,
    timer: Timer<R>,
    /// The session was shut down because the handle went away.
    shutdown_done: bool,
    events: mpsc::Sender<ReliableEvent>,
    backlog: VecDeque<ReliableEvent>,
    capacity: usize,
    /// The journal's interval fsync.
    sync_timer: Option<R::Sleep>,
    /// Messages of the current session taken from it (to the journal).
    received: u64,
    received_dirty: bool,
    client: ClientConfig,
    done: Option<oneshot::Sender<Finished>>,
    gave_up: bool,
}

impl<R: Net> ClientDriver<R>
where
    R::Sleep: Send,
{
    /// What the client does with a session event; the application's
    /// events go to the backlog for the channel.
    fn on_event(&mut self, st: &mut ClientState, ev: SessionEvent) {
        match &ev {
            SessionEvent::Released(id) => {
                let jid = st.jmap.remove(id);
                if let Some(j) = &mut st.journal {
                    j.acked(jid);
                }
            }
            SessionEvent::Connected {
                resumed: false,
                session,
            } => {
                // A new session: every unacknowledged message is numbered
                // afresh, nothing received yet.
                self.received = 0;
                self.received_dirty = false;
                let key = st.session.resume_key().map(|k| *k.as_bytes());
                st.journal(|j| j.session(session, key.as_ref()));
            }
            SessionEvent::GaveUp => {
                self.gave_up = true;
                // Messages were dropped unacknowledged: the journal no
                // longer matches the session, which is not resumed.
                st.journal(|j| j.session(b"", None));
            }
            SessionEvent::Closed => st.journal(|j| j.session(b"", None)),
            SessionEvent::Message(_) => {
                self.received += 1;
                self.received_dirty = true;
            }
            _ => {}
        }
        if let Some(out) = ReliableEvent::from_session(ev) {
            self.backlog.push_back(out);
        }
    }

    /// One pass over every source of progress; returns whether anything moved.
    ///
    /// Runs under the shared lock, so that journal records come before the
    /// bytes they cover reach the socket: `send` journals a message before
    /// it releases the lock, and the `received` record is written below
    /// before anything is written.
    fn step(&mut self, st: &mut ClientState, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        if st.handle_gone && !self.shutdown_done {
            // Every handle is gone: finish what was queued, then end.
            self.shutdown_done = true;
            st.session.shutdown(R::now());
            progress = true;
        }
        while let Some(a) = st.session.poll_action() {
            progress = true;
            match a {
                Action::Connect => {
                    let request = st.session.request().expect("client session").clone();
                    let client = self.client.clone();
                    self.connecting = Some(Box::pin(async move {
                        crate::open_transport::<R>(&request, &client).await
                    }));
                }
                Action::CloseTransport => self.closing = self.io.is_some(),
                _ => {}
            }
        }
        while let Some(ev) = st.session.poll_event() {
            progress = true;
            self.on_event(st, ev);
        }
        progress |= st.drain_outcomes();
        if std::mem::take(&mut self.received_dirty) {
            // In the file before anything more is written to the socket:
            // the ACK for these messages must not be ahead of the journal
            // (a restarted client would tell the server it received less
            // than it acknowledged).
            if let Some(j) = &mut st.journal {
                j.received(self.received);
            }
        }
        // Records kept in memory (acknowledgements, what was received) are
        // in the file before anything more is written to the socket.
        st.journal(JournalFile::flush);
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
        if let Some(f) = &mut self.connecting
            && let Poll::Ready(r) = f.as_mut().poll(cx)
        {
            self.connecting = None;
            progress = true;
            match r {
                Ok(stream) => {
                    let mut io = Io::new(stream, self.client.ws.max_read_size);
                    // The session's timer (armed) goes with the connection.
                    io.timer = std::mem::take(&mut self.timer);
                    self.io = Some(io);
                    self.closing = false;
                    self.close_by = None;
                    st.session.handle_connected(R::now());
                }
                Err(e) => st.session.handle_connect_failed(R::now(), &e.to_string()),
            }
        }
        let session = &mut st.session;
        match &mut self.io {
            Some(io) if self.closing => {
                // Write out the last bytes of a finished connection, then
                // shut it; given up at the close timeout or on an abort.
                let close_timeout = self.close_timeout;
                let by = self
                    .close_by
                    .get_or_insert_with(|| R::sleep_until(R::now() + close_timeout));
                let expired = st.aborted || R::poll_sleep(by, cx).is_ready();
                progress |= io.poll_timer(session, cx);
                if expired || io.poll_finish(session, cx).is_ready() {
                    // The session's timer goes on without the connection.
                    self.timer = std::mem::take(&mut io.timer);
                    self.io = None;
                    self.closing = false;
                    self.close_by = None;
                    progress = true;
                }
            }
            Some(io) => {
                // Events waiting for the application's channel hold the
                // reading back.
                let read = self.backlog.len() < self.capacity;
                progress |= io.poll_drive(session, read, cx).is_ready();
            }
            None => progress |= self.timer.poll(session, cx),
        }
        if let Some(j) = &mut st.journal
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
        // Registered before the state is looked at: a `send` after the
        // lock is released below wakes this poll's waker.
        this.shared.task.register(cx.waker());
        let shared = this.shared.clone();
        let mut st = shared.lock();
        st.now = R::now();
        // Bounded passes per poll, so one busy client cannot hog the thread.
        let mut busy = true;
        for _ in 0..64 {
            if !this.step(&mut st, cx) {
                busy = false;
                break;
            }
        }
        // Everything queued so far was taken (written, or in the session's
        // outbox waiting for the socket, as before).
        st.taken();
        if st.session.is_finished()
            && this.io.is_none()
            && this.backlog.is_empty()
            && this.connecting.is_none()
        {
            st.journal(JournalFile::sync);
            st.ended = true;
            for (_, tx) in st.pending.drain() {
                let _ = tx.send(DeliveryOutcome::Dropped(DropReason::Shutdown));
            }
            if let Some(done) = this.done.take() {
                let _ = done.send(Finished {
                    // Counted from the acknowledgements: an abort or a
                    // give-up empties the outbox without them.
                    unacked: st.accepted.saturating_sub(
                        usize::try_from(st.session.released()).unwrap_or(usize::MAX),
                    ),
                    gave_up: this.gave_up,
                });
            }
            return Poll::Ready(());
        }
        if st.session.is_finished() && this.io.is_some() && !this.closing {
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

impl<R: Net> Drop for ClientDriver<R> {
    fn drop(&mut self) {
        // Finished, or dropped with its runtime: `send` fails from now on,
        // and the deliveries still pending resolve (as dropped).
        let mut st = self.shared.lock();
        st.ended = true;
        st.pending.clear();
        st.taken();
    }
}
