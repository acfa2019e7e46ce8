//! Reliable messaging on tokio: a client that reconnects and resumes its
//! session by itself, with an optional crash-safe journal, and the server
//! side of sessions. All protocol logic is `hookup_proto::reliable`; this
//! module moves bytes, time and files.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::future::{Future, poll_fn};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hookup_proto::reliable::{
    Action, DropReason, Journal, MessageId, Outcome, SendError, Session, SessionConfig,
    SessionEvent, SessionStore,
};
use hookup_proto::{ClientRequest, CloseCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;

use crate::client::{ClientConfig, open_transport};
use crate::message::Message;
use crate::stream::MaybeTlsStream;
use crate::ws::{Io, Timer, WebSocket, now};

pub use hookup_proto::reliable::{Outcome as DeliveryOutcome, Reconnect, SUBPROTOCOL};

/// When the journal is flushed to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fsync {
    /// After every record (safest, slowest).
    Always,
    /// At most this long after a record.
    Interval(Duration),
    /// Never explicitly (the OS decides; survives a process crash, not a
    /// power loss).
    Never,
}

/// Settings of a [`ReliableClient`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReliableConfig {
    /// The session protocol settings (acks, bounds, keepalive, reconnect).
    pub session: SessionConfig,
    /// Transport settings (connect timeout, TLS).
    pub client: ClientConfig,
    /// A journal file that keeps unacknowledged messages across process
    /// crashes; they are sent again after a restart.
    pub journal: Option<PathBuf>,
    /// When the journal is flushed to disk (default every 10 ms).
    pub fsync: Fsync,
    /// Events buffered for the application before the client stops reading
    /// from the network (default 1024).
    pub event_capacity: usize,
}

impl Default for ReliableConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            client: ClientConfig::default(),
            journal: None,
            fsync: Fsync::Interval(Duration::from_millis(10)),
            event_capacity: 1024,
        }
    }
}

/// What a reliable client or server connection reports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ReliableEvent {
    /// The session is (re-)established.
    Connected {
        /// Whether the server still had the session.
        resumed: bool,
    },
    /// A reconnect attempt comes after `delay`.
    Reconnecting {
        /// Consecutive attempt, from 1.
        attempt: u32,
        /// Backoff delay.
        delay: Duration,
    },
    /// The connection ended (the session goes on unless `GaveUp` follows).
    Disconnected {
        /// Close code (1006 when the transport just ended).
        code: CloseCode,
        /// Reason.
        reason: String,
    },
    /// The client stopped reconnecting; unacknowledged messages were dropped.
    GaveUp,
    /// An application message, exactly once and in order.
    Message(Message),
    /// Keepalive round-trip time.
    Rtt(Duration),
    /// Something went wrong (the session recovers by reconnecting).
    Error(String),
}

/// Resolves to the one outcome of a reliable send.
#[must_use = "a Delivery tells whether the message arrived"]
pub struct Delivery(oneshot::Receiver<Outcome>);

impl Future for Delivery {
    type Output = Outcome;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        // A driver that went away without resolving: nothing more can happen.
        Poll::Ready(
            ready!(Pin::new(&mut self.0).poll(cx))
                .unwrap_or(Outcome::Dropped(DropReason::Shutdown)),
        )
    }
}

enum Cmd {
    Send {
        msg: Message,
        ack: Option<Duration>,
        accepted: oneshot::Sender<Result<Delivery, SendError>>,
    },
    Shutdown,
    Abort,
}

/// How a client's session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Messages never acknowledged by the server.
    pub unacked: usize,
    /// Whether the client gave up reconnecting.
    pub gave_up: bool,
}

/// A client that keeps its session across network failures: it reconnects
/// with backoff, resumes, replays what the server has not acknowledged, and
/// drops duplicates. Runs in its own task; this is its handle.
pub struct ReliableClient {
    cmd: mpsc::Sender<Cmd>,
    events: mpsc::Receiver<ReliableEvent>,
    done: Option<oneshot::Receiver<Finished>>,
}

impl ReliableClient {
    /// Starts a client for `url` (its first connection attempt begins at once).
    /// With a journal, messages left in it by an earlier process are sent first.
    pub fn connect(url: &str, config: ReliableConfig) -> crate::Result<Self> {
        Self::connect_request(ClientRequest::new(url)?, config)
    }

    /// Starts a client for a full request (headers, subprotocols).
    pub fn connect_request(request: ClientRequest, config: ReliableConfig) -> crate::Result<Self> {
        let (cmd_tx, cmd_rx) = mpsc::channel(1024);
        let (ev_tx, ev_rx) = mpsc::channel(config.event_capacity.max(1));
        let (done_tx, done_rx) = oneshot::channel();
        let mut session_config = config.session.clone();
        // Acks are counted from the releases (an abort or a give-up empties
        // the outbox, so its length no longer tells what was acknowledged).
        session_config.report_releases = true;
        let mut session = Session::client(request, session_config, now());
        let mut journal = None;
        let mut jmap = HashMap::new();
        if let Some(path) = &config.journal {
            let mut j = JournalFile::open(path, config.fsync)?;
            for (jid, msg) in j
                .journal
                .live()
                .map(|(id, m)| (id, m.clone()))
                .collect::<Vec<_>>()
            {
                match session.send(now(), msg, None) {
                    Ok(id) => {
                        jmap.insert(id, jid);
                    }
                    Err(e) => {
                        tracing::warn!("journal: message {jid} not requeued: {e}");
                        j.done(jid)?;
                    }
                }
            }
            if !jmap.is_empty() {
                tracing::info!(
                    "journal: {} unacknowledged messages from an earlier run requeued",
                    jmap.len()
                );
            }
            journal = Some(j);
        }
        let driver = ClientDriver {
            session,
            io: None,
            closing: false,
            read_eof: false,
            connecting: None,
            timer: Timer::default(),
            cmd: cmd_rx,
            cmd_open: true,
            events: PollSender::new(ev_tx),
            backlog: VecDeque::new(),
            capacity: config.event_capacity.max(1),
            pending: HashMap::new(),
            accepted: jmap.len(),
            released: 0,
            journal,
            jmap,
            client: config.client,
            done: Some(done_tx),
            gave_up: false,
        };
        tokio::spawn(driver);
        Ok(Self {
            cmd: cmd_tx,
            events: ev_rx,
            done: Some(done_rx),
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
    ) -> Result<Delivery, SendError> {
        let (tx, rx) = oneshot::channel();
        let cmd = Cmd::Send {
            msg: msg.into(),
            ack,
            accepted: tx,
        };
        self.cmd.send(cmd).await.map_err(|_| SendError::Closed)?;
        rx.await.unwrap_or(Err(SendError::Closed))
    }

    /// The next event; `None` once the client has finished.
    pub async fn recv(&mut self) -> Option<ReliableEvent> {
        self.events.recv().await
    }

    /// Stops accepting messages and waits until every message is
    /// acknowledged (then closes with 1000), the client gives up, or
    /// `deadline` passes (then aborts). Events still arriving are discarded.
    pub async fn shutdown(mut self, deadline: Duration) -> Finished {
        let _ = self.cmd.send(Cmd::Shutdown).await;
        let Some(mut done) = self.done.take() else {
            return Finished {
                unacked: 0,
                gave_up: false,
            };
        };
        let wait = async {
            loop {
                tokio::select! {
                    r = &mut done => return r.ok(),
                    ev = self.events.recv() => if ev.is_none() { return (&mut done).await.ok() },
                }
            }
        };
        match tokio::time::timeout(deadline, wait).await {
            Ok(Some(f)) => f,
            _ => {
                let _ = self.cmd.send(Cmd::Abort).await;
                let f = async {
                    while self.events.recv().await.is_some() {}
                    done.await.ok()
                };
                tokio::time::timeout(Duration::from_secs(5), f)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(Finished {
                        unacked: usize::MAX,
                        gave_up: false,
                    })
            }
        }
    }
}

/// The journal file and its encoder.
struct JournalFile {
    path: PathBuf,
    file: File,
    journal: Journal,
    fsync: Fsync,
    dirty: bool,
    buf: Vec<u8>,
    sync_timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl JournalFile {
    fn open(path: &Path, fsync: Fsync) -> io::Result<Self> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let recovery = Journal::recover(&data).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        if recovery.cut > 0 {
            tracing::warn!(
                "journal {}: cut off a torn or corrupt tail of {} bytes",
                path.display(),
                recovery.cut
            );
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        file.set_len(recovery.valid_len as u64)?;
        if recovery.valid_len == 0 {
            file.write_all(Journal::header())?;
        }
        use std::io::Seek as _;
        file.seek(io::SeekFrom::End(0))?;
        file.sync_data()?;
        Ok(Self {
            path: path.to_owned(),
            file,
            journal: recovery.journal,
            fsync,
            dirty: false,
            buf: Vec::new(),
            sync_timer: None,
        })
    }

    fn append(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        match self.fsync {
            Fsync::Always => self.file.sync_data()?,
            Fsync::Interval(_) => self.dirty = true,
            Fsync::Never => {}
        }
        if self.journal.should_compact() {
            self.compact()?;
        }
        Ok(())
    }

    fn add(&mut self, msg: &Message) -> io::Result<u64> {
        let id = self.journal.add(&msg.to_proto(), &mut self.buf);
        self.append()?;
        Ok(id)
    }

    fn done(&mut self, id: u64) -> io::Result<()> {
        self.journal.done(id, &mut self.buf);
        self.append()
    }

    /// Rewrites the file with only the live records (write, sync, rename).
    fn compact(&mut self) -> io::Result<()> {
        let mut snap = Vec::new();
        self.journal.snapshot(&mut snap);
        let tmp = self.path.with_extension("compact");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&snap)?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        use std::io::Seek as _;
        file.seek(io::SeekFrom::End(0))?;
        self.file = file;
        Ok(())
    }

    /// Syncs when the interval policy says so.
    fn poll_sync(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Fsync::Interval(every) = self.fsync else {
            return Ok(());
        };
        if !self.dirty {
            self.sync_timer = None;
            return Ok(());
        }
        let t = self
            .sync_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
        if t.as_mut().poll(cx).is_ready() {
            self.sync_timer = None;
            self.dirty = false;
            self.file.sync_data()?;
        }
        Ok(())
    }
}

type Connecting = Pin<Box<dyn Future<Output = crate::Result<MaybeTlsStream>> + Send>>;

struct ClientDriver {
    session: Session,
    io: Option<Io<MaybeTlsStream>>,
    /// Writing out the last bytes of a finished connection, then shutting it.
    closing: bool,
    read_eof: bool,
    connecting: Option<Connecting>,
    timer: Timer,
    cmd: mpsc::Receiver<Cmd>,
    cmd_open: bool,
    events: PollSender<ReliableEvent>,
    backlog: VecDeque<ReliableEvent>,
    capacity: usize,
    pending: HashMap<MessageId, oneshot::Sender<Outcome>>,
    journal: Option<JournalFile>,
    jmap: HashMap<MessageId, u64>,
    /// Messages taken into the session (sends and journal requeues), and
    /// how many of them the server acknowledged.
    accepted: usize,
    released: usize,
    client: ClientConfig,
    done: Option<oneshot::Sender<Finished>>,
    gave_up: bool,
}

impl ClientDriver {
    fn journal_done(&mut self, id: MessageId) {
        if let (Some(j), Some(jid)) = (&mut self.journal, self.jmap.remove(&id))
            && let Err(e) = j.done(jid)
        {
            tracing::error!("journal: {e}");
        }
    }

    fn handle_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Send { msg, ack, accepted } => {
                let proto = msg.to_proto();
                let r = match self.session.send(now(), proto, ack) {
                    Ok(id) => {
                        self.accepted += 1;
                        let (tx, rx) = oneshot::channel();
                        self.pending.insert(id, tx);
                        if let Some(j) = &mut self.journal {
                            match j.add(&msg) {
                                Ok(jid) => {
                                    self.jmap.insert(id, jid);
                                }
                                Err(e) => tracing::error!("journal: {e}"),
                            }
                        }
                        Ok(Delivery(rx))
                    }
                    Err(e) => Err(e),
                };
                let _ = accepted.send(r);
            }
            Cmd::Shutdown => self.session.shutdown(now()),
            Cmd::Abort => self.session.abort(now()),
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
                self.journal_done(id);
                return;
            }
            SessionEvent::Connected { resumed, .. } => ReliableEvent::Connected { resumed },
            SessionEvent::Reconnecting { attempt, delay } => {
                ReliableEvent::Reconnecting { attempt, delay }
            }
            SessionEvent::Disconnected { code, reason } => {
                ReliableEvent::Disconnected { code, reason }
            }
            SessionEvent::GaveUp => {
                self.gave_up = true;
                ReliableEvent::GaveUp
            }
            SessionEvent::Message(m) => ReliableEvent::Message(m.into()),
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
                    self.connecting =
                        Some(Box::pin(
                            async move { open_transport(&request, &client).await },
                        ));
                }
                Action::CloseTransport => self.closing = self.io.is_some(),
                _ => {}
            }
        }
        while let Some(ev) = self.session.poll_event() {
            progress = true;
            self.on_event(ev);
        }
        while !self.backlog.is_empty() {
            match self.events.poll_reserve(cx) {
                Poll::Ready(Ok(())) => {
                    let ev = self.backlog.pop_front().expect("not empty");
                    let _ = self.events.send_item(ev);
                    progress = true;
                }
                // The application dropped its receiver: events go nowhere.
                Poll::Ready(Err(_)) => {
                    self.backlog.clear();
                }
                Poll::Pending => break,
            }
        }
        while self.cmd_open {
            match self.cmd.poll_recv(cx) {
                Poll::Ready(Some(cmd)) => {
                    progress = true;
                    self.handle_cmd(cmd);
                }
                Poll::Ready(None) => {
                    // Every handle is gone: finish what was queued, then end.
                    self.cmd_open = false;
                    self.session.shutdown(now());
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
                    self.session.handle_connected(now());
                }
                Err(e) => self.session.handle_connect_failed(now(), &e.to_string()),
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
                            self.session.handle_eof(now());
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
                            self.session.handle_eof(now());
                            progress = true;
                        }
                        Poll::Ready(Ok(_)) => {
                            self.session.handle_read(now());
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
            && let Err(e) = j.poll_sync(cx)
        {
            tracing::error!("journal: {e}");
        }
        progress
    }
}

impl Future for ClientDriver {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
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
            if let Some(j) = &mut this.journal {
                let _ = j.file.sync_data();
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

/// A store of server sessions shared by a server's connections, with a
/// background task that reaps expired ones.
#[derive(Clone)]
pub struct SharedStore(Arc<Mutex<SessionStore>>);

impl SharedStore {
    /// A store; spawns its reaper on the current tokio runtime.
    pub fn new(config: hookup_proto::reliable::StoreConfig) -> Self {
        let store = Arc::new(Mutex::new(SessionStore::new(config, None)));
        let weak = Arc::downgrade(&store);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(s) = weak.upgrade() else { return };
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .handle_timeout(now());
            }
        });
        Self(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionStore> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sessions parked (client away) and attached (client connected).
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.parked(), s.attached())
    }
}

/// The server side of one reliable client connection: a WebSocket that
/// negotiated `hookup.v1`, driven in the caller's task. Messages arrive once
/// and in order per session, across the client's reconnects.
pub struct ReliablePeer<S> {
    session: Session,
    io: Io<S>,
    store: SharedStore,
    read_eof: bool,
    pending: HashMap<MessageId, oneshot::Sender<Outcome>>,
    parked: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReliablePeer<S> {
    /// Takes over an accepted WebSocket whose subprotocol is
    /// [`SUBPROTOCOL`]; sessions live in `store` between connections.
    pub fn new(ws: WebSocket<S>, store: SharedStore, config: SessionConfig) -> Self {
        let max_read = 64 << 10;
        let (conn, stream) = ws.into_parts();
        Self {
            session: Session::server(conn, config, now()),
            io: Io::new(stream, max_read),
            store,
            read_eof: false,
            pending: HashMap::new(),
            parked: false,
        }
    }

    /// The session id (empty before the client's HELLO).
    pub fn session_id(&self) -> &[u8] {
        self.session.id()
    }

    /// Queues a message to the client (see [`ReliableClient::send`]); the
    /// delivery resolves while this peer is driven by [`recv`](Self::recv).
    pub fn send(
        &mut self,
        msg: impl Into<Message>,
        ack: Option<Duration>,
    ) -> Result<Delivery, SendError> {
        let id = self.session.send(now(), msg.into().to_proto(), ack)?;
        let (tx, rx) = oneshot::channel();
        self.pending.insert(id, tx);
        Ok(Delivery(rx))
    }

    /// The next event; `None` when the connection has ended (the session is
    /// then parked in the store for the client to resume).
    pub async fn recv(&mut self) -> Option<ReliableEvent> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<ReliableEvent>> {
        loop {
            while let Some(ev) = self.session.poll_event() {
                match ev {
                    SessionEvent::Hello { session } => {
                        let opened = self.store.lock().open(&session, now());
                        match opened {
                            Ok((state, resumed)) => self.session.attach(state, resumed),
                            Err(_) => self.session.refuse_busy(),
                        }
                    }
                    SessionEvent::Delivery { id, outcome } => {
                        if let Some(tx) = self.pending.remove(&id) {
                            let _ = tx.send(outcome);
                        }
                    }
                    SessionEvent::Message(m) => {
                        return Poll::Ready(Some(ReliableEvent::Message(m.into())));
                    }
                    SessionEvent::Connected { resumed, .. } => {
                        return Poll::Ready(Some(ReliableEvent::Connected { resumed }));
                    }
                    SessionEvent::Disconnected { code, reason } => {
                        return Poll::Ready(Some(ReliableEvent::Disconnected { code, reason }));
                    }
                    SessionEvent::Error(e) => {
                        return Poll::Ready(Some(ReliableEvent::Error(e.to_string())));
                    }
                    SessionEvent::Closed => self.park(),
                    _ => {}
                }
            }
            if self.session.is_finished() {
                // Write out the last bytes, then shut the transport.
                let _ = ready!(self.io.poll_write_out(&mut self.session, cx));
                let _ = ready!(self.io.poll_shutdown(cx));
                self.park();
                return Poll::Ready(None);
            }
            if self.io.has_output(&self.session) {
                match self.io.poll_write_out(&mut self.session, cx) {
                    Poll::Ready(Err(_)) => {
                        self.read_eof = true;
                        self.session.handle_eof(now());
                        continue;
                    }
                    // Writing made room in the window: more of the outbox
                    // may be queued now, with outcomes to drain.
                    Poll::Ready(Ok(())) => continue,
                    Poll::Pending => {}
                }
            }
            if self.io.poll_timer(&mut self.session, cx) {
                continue;
            }
            if self.read_eof || !self.session.wants_read() {
                return Poll::Pending;
            }
            match self.io.poll_read(&mut self.session, cx) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.read_eof = true;
                    self.session.handle_eof(now());
                }
                Poll::Ready(Ok(_)) => self.session.handle_read(now()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn park(&mut self) {
        if self.parked {
            return;
        }
        self.parked = true;
        if let Some(state) = self.session.take_state() {
            self.store.lock().park(state, now());
        }
    }
}

impl<S> Drop for ReliablePeer<S> {
    fn drop(&mut self) {
        if !self.parked
            && let Some(state) = self.session.take_state()
        {
            self.store
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .park(state, now());
        }
    }
}
