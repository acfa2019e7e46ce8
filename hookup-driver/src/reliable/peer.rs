//! The server side: [`SharedStore`] and [`ReliablePeer`].

use std::collections::HashMap;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_channel::oneshot;
use hookup_proto::reliable::{
    DeliveryOutcome, LEGACY_SUBPROTOCOL, MessageId, SESSION_QUOTA, SendError, Session,
    SessionConfig, SessionError, SessionEvent, SessionState, SessionStore, StoreConfig,
};

use super::server_journal::{ServerJournal, SessionFile};
use super::{Delivery, ReliableEvent};
use crate::net::Net;
use crate::{Io, WebSocket};
use crate::{Message, Runtime, Transport};
use hookup_proto::CloseCode;

/// A store of server sessions shared by a server's connections, with a
/// background task that reaps expired ones (see the [module](super) for
/// where it runs). `R` is the adapter's runtime.
pub struct SharedStore<R> {
    store: Arc<Mutex<SessionStore>>,
    journal: Option<Arc<ServerJournal>>,
    runtime: PhantomData<fn() -> R>,
}

impl<R> Clone for SharedStore<R> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            journal: self.journal.clone(),
            runtime: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for SharedStore<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.store);
        f.debug_struct("SharedStore")
            .field("parked", &s.parked())
            .field("attached", &s.attached())
            .finish()
    }
}

fn lock(store: &Mutex<SessionStore>) -> MutexGuard<'_, SessionStore> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

impl<R: Net> SharedStore<R>
where
    R::Sleep: Send,
{
    /// A store; starts its reaper (once a second) on the runtime.
    pub fn new(config: StoreConfig) -> Self {
        Self::start(SessionStore::new(config, crate::entropy::os_seed()), None)
    }

    /// A store whose sessions are kept in files under `dir` (created if
    /// missing), one per session, so that they survive a server crash or
    /// restart: each session's id, how many of its messages the client
    /// acknowledged, how many client messages were delivered to the
    /// application, and its unacknowledged messages, written with blocking
    /// `std::fs` calls and flushed per `fsync`. The sessions found there
    /// are parked (their TTL counts from now) for their clients to resume;
    /// the files of sessions that expire are deleted. A file that is not a
    /// journal is reported and left alone; a torn tail is cut off.
    /// PROTOCOL.md section 8 states what survives under each policy.
    pub fn with_journal_dir(
        config: StoreConfig,
        dir: impl AsRef<std::path::Path>,
        fsync: super::Fsync,
    ) -> std::io::Result<Self> {
        let (journal, states) = ServerJournal::open(dir.as_ref(), fsync)?;
        let mut store = SessionStore::new(config, crate::entropy::os_seed());
        store.report_dropped(true);
        let now = R::now();
        for state in states {
            store.park(state, now);
        }
        let journal = Arc::new(journal);
        // Restored sessions beyond the store's bounds.
        while let Some(id) = store.poll_dropped() {
            journal.drop_session(&id);
        }
        while store.poll_outcome().is_some() {}
        Ok(Self::start(store, Some(journal)))
    }

    fn start(store: SessionStore, journal: Option<Arc<ServerJournal>>) -> Self {
        let store = Arc::new(Mutex::new(store));
        let weak = Arc::downgrade(&store);
        let reaper_journal = journal.clone();
        let reaper = async move {
            let mut sleep = None::<R::Sleep>;
            loop {
                let at = R::now() + Duration::from_secs(1);
                let s = sleep.get_or_insert_with(|| R::sleep_until(at));
                R::reset(s, at);
                poll_fn(|cx| R::poll_sleep(s, cx)).await;
                let Some(store) = weak.upgrade() else { return };
                let mut store = lock(&store);
                let before = store.expired();
                store.handle_timeout(R::now());
                let expired = store.expired() - before;
                if expired > 0 {
                    tracing::info!("{expired} parked reliable session(s) expired");
                }
                // Outcomes of messages in parked sessions: their deliveries
                // were resolved when their peers went away. Only memory.
                while store.poll_outcome().is_some() {}
                while let Some(id) = store.poll_dropped() {
                    if let Some(j) = &reaper_journal {
                        j.drop_session(&id);
                    }
                }
            }
        };
        super::spawn::<R>("hookup-store-reaper", Box::pin(reaper));
        Self {
            store,
            journal,
            runtime: PhantomData,
        }
    }
}

impl<R> SharedStore<R> {
    fn lock(&self) -> MutexGuard<'_, SessionStore> {
        lock(&self.store)
    }

    /// Sessions parked (client away) and attached (client connected).
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.parked(), s.attached())
    }
}

/// The server side of one reliable client connection: a WebSocket that
/// negotiated `hookup.v1`, driven in the caller's task. Messages arrive once
/// and in order per session, across the client's reconnects. `S` is the
/// stream, `R` the adapter's runtime.
///
/// Drive it with [`recv`](Self::recv) until that returns `None`. A peer
/// dropped earlier parks its session too, and loses nothing: a message
/// counts as received (and is acknowledged to the client) only once `recv`
/// has returned it, so messages it has read but not yet returned are sent
/// again by the client when it resumes the session.
pub struct ReliablePeer<S, R: Runtime> {
    session: Session,
    io: Io<S, R>,
    store: SharedStore<R>,
    pending: HashMap<MessageId, oneshot::Sender<DeliveryOutcome>>,
    parked: bool,
    /// The session's journal file (a store with a journal directory).
    file: Option<SessionFile>,
    sync_timer: Option<R::Sleep>,
    /// The client's address, for the store's per-address quota.
    peer_ip: Option<IpAddr>,
}

impl<S, R: Transport<S>> ReliablePeer<S, R> {
    /// Takes over an accepted WebSocket whose subprotocol is
    /// [`SUBPROTOCOL`](super::SUBPROTOCOL); sessions live in `store` between
    /// connections. If the negotiated subprotocol is
    /// [`LEGACY_SUBPROTOCOL`](super::LEGACY_SUBPROTOCOL) (`jsonProtocol`, the
    /// original hookup's acked JSON envelopes), the peer speaks that instead:
    /// acked messages are acknowledged and delivered once per connection,
    /// there is no resume and nothing is parked (PROTOCOL.md section 9).
    ///
    /// The session goes by `ws`'s settings (the [`Config`](crate::Config)
    /// it was accepted with: handshake timeout, limits, seed) and by
    /// `config` for the session protocol.
    pub fn new(ws: WebSocket<S, R>, store: SharedStore<R>, mut config: SessionConfig) -> Self {
        // A journal deletes records of what the client acknowledged.
        config.report_releases |= store.journal.is_some();
        let max_read = 64 << 10;
        let legacy = ws.subprotocol() == Some(LEGACY_SUBPROTOCOL);
        let stall = ws.write_stall_timeout();
        let (conn, stream) = ws.into_parts();
        let session = if legacy {
            Session::legacy_server(conn, config, R::now())
        } else {
            Session::server(conn, config, R::now())
        };
        let mut io = Io::new(stream, max_read);
        io.set_write_stall_timeout(stall);
        Self {
            session,
            io,
            store,
            pending: HashMap::new(),
            parked: false,
            file: None,
            sync_timer: None,
            peer_ip: None,
        }
    }

    /// The client's address (the accepted TCP connection's peer): a HELLO
    /// that creates a session counts against its quota
    /// ([`StoreConfig::max_sessions_per_ip`]) and is refused with
    /// [`SESSION_QUOTA`](hookup_proto::reliable::SESSION_QUOTA) (4029) past
    /// it. Without it (the default) the quota does not apply. Call it
    /// before [`recv`](Self::recv).
    pub fn with_peer_addr(mut self, addr: SocketAddr) -> Self {
        self.peer_ip = Some(addr.ip());
        self
    }

    /// The session id (empty before the client's HELLO).
    pub fn session_id(&self) -> &[u8] {
        self.session.id()
    }

    /// Queues a message to the client (see [`ReliableClient::send`]); the
    /// delivery resolves while this peer is driven by [`recv`](Self::recv).
    ///
    /// [`ReliableClient::send`]: super::ReliableClient::send
    pub fn send(
        &mut self,
        msg: impl Into<Message>,
        ack: Option<Duration>,
    ) -> Result<Delivery, SendError> {
        let proto = msg.into().into_proto();
        // The journal's copy (a reference count, not the bytes).
        let record = self.file.is_some().then(|| proto.clone());
        let id = self.session.send(R::now(), proto, ack)?;
        if let (Some(f), Some(record)) = (&mut self.file, record) {
            f.add(id, &record);
        }
        Ok(self.delivery(id))
    }

    /// Queues a JSON value (see [`Session::send_json`]): a `json` envelope
    /// on a legacy (`jsonProtocol`) connection, a text message on
    /// `hookup.v1`. Fails unless `json` is exactly one JSON value.
    pub fn send_json(&mut self, json: &str, ack: Option<Duration>) -> Result<Delivery, SendError> {
        let id = self.session.send_json(R::now(), json, ack)?;
        if let Some(f) = &mut self.file {
            f.add(id, &hookup_proto::Message::text(json.trim()));
        }
        Ok(self.delivery(id))
    }

    /// Whether this connection speaks the legacy `jsonProtocol` format.
    pub fn is_legacy(&self) -> bool {
        self.session.is_legacy()
    }

    /// The next event; `None` when the connection has ended (the session is
    /// then parked in the store for the client to resume).
    pub async fn recv(&mut self) -> Option<ReliableEvent> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<ReliableEvent>> {
        if let Some(f) = &mut self.file {
            // The application came back for more: what it was given is
            // recorded before anything (an ACK) goes out.
            f.flush();
            f.poll_sync::<R>(&mut self.sync_timer, cx);
        }
        if self.session.has_unsent_ack() {
            // An ACK for what the application took is out within
            // `ack_every` messages even while more wait to be taken
            // (PROTOCOL.md §8: what a crash repeats). Pending: the drive
            // loop below waits for room; an error ends the transport there.
            let _ = self.io.poll_write(&mut self.session, cx);
        }
        loop {
            self.drain_outcomes();
            while let Some(ev) = self.session.poll_event() {
                if let Some(ev) = self.on_event(ev) {
                    return Poll::Ready(Some(ev));
                }
            }
            if self.session.is_finished() {
                // Write out the last bytes, then shut the transport.
                ready!(self.io.poll_finish(&mut self.session, cx));
                self.park();
                return Poll::Ready(None);
            }
            if self.io.has_output(&self.session)
                && let Some(f) = &mut self.file
            {
                // What this pass recorded (acknowledgements) goes to the
                // file before more reaches the socket.
                f.flush();
            }
            ready!(self.io.poll_drive(&mut self.session, true, cx));
        }
    }

    /// What the peer does with a session event; the application's events
    /// are returned.
    fn on_event(&mut self, ev: SessionEvent) -> Option<ReliableEvent> {
        match &ev {
            SessionEvent::Hello { session, proof } => {
                let opened =
                    self.store
                        .lock()
                        .open_from(session, proof.as_ref(), R::now(), self.peer_ip);
                match opened {
                    Ok((state, resumed)) => {
                        if let Some(j) = &self.store.journal {
                            match j.attach(state.id(), state.key_digest(), resumed) {
                                Ok(f) => self.file = Some(f),
                                Err(e) => {
                                    // Never served without its journal
                                    // (issue #14): not durable.
                                    tracing::error!(
                                        "session journal: {e}: HELLO refused (close 1011)"
                                    );
                                    self.give_back(j.clone(), state, resumed);
                                    self.session.refuse(
                                        CloseCode::INTERNAL_ERROR,
                                        "session journal unavailable",
                                    );
                                    return None;
                                }
                            }
                        }
                        self.session.attach(state, resumed);
                    }
                    Err(SessionError::TooManySessions) => {
                        tracing::warn!(
                            peer = ?self.peer_ip,
                            "new reliable session refused: too many from this address (close 4029)"
                        );
                        self.session.refuse(SESSION_QUOTA, "too many sessions");
                    }
                    Err(_) => self.session.refuse_busy(),
                }
            }
            SessionEvent::Message(_) => {
                if let Some(f) = &mut self.file {
                    f.delivered();
                }
            }
            SessionEvent::Released(id) => {
                if let Some(f) = &mut self.file {
                    f.released(*id);
                }
            }
            SessionEvent::Closed => self.park(),
            _ => {}
        }
        match ReliableEvent::from_session(ev)? {
            // Keepalive round trips are the client's to report.
            ReliableEvent::Rtt(_) => None,
            ev => Some(ev),
        }
    }
}

impl<S, R: Runtime> ReliablePeer<S, R> {
    /// The delivery of the message just sent: resolved already if it was
    /// written at once without an ack deadline, else registered.
    fn delivery(&mut self, id: MessageId) -> Delivery {
        let mut mine = None;
        while let Some((oid, outcome)) = self.session.poll_outcome() {
            if oid == id {
                mine = Some(outcome);
            }
            self.resolve(oid, outcome, oid != id);
        }
        match mine {
            Some(outcome) => Delivery::ready(outcome),
            None => {
                let (tx, delivery) = Delivery::waiting();
                self.pending.insert(id, tx);
                delivery
            }
        }
    }

    /// A message's outcome: recorded in the journal, its delivery resolved
    /// (`notify`: one is registered).
    fn resolve(&mut self, id: MessageId, outcome: DeliveryOutcome, notify: bool) {
        if let Some(f) = &mut self.file {
            f.outcome(id, outcome);
        }
        if notify && let Some(tx) = self.pending.remove(&id) {
            let _ = tx.send(outcome);
        }
    }

    /// Resolves the outcomes the session reported since the last drain.
    fn drain_outcomes(&mut self) {
        while let Some((id, outcome)) = self.session.poll_outcome() {
            self.resolve(id, outcome, true);
        }
    }

    /// A session opened for a HELLO that is refused after all: a session
    /// that was parked (its journal kept its file) is parked again, a new
    /// one is forgotten.
    fn give_back(&mut self, journal: Arc<ServerJournal>, state: SessionState, resumed: bool) {
        let mut store = self.store.lock();
        if resumed || journal.is_parked(state.id()) {
            store.park(state, R::now());
        } else {
            store.release(state);
        }
        while let Some(id) = store.poll_dropped() {
            journal.drop_session(&id);
        }
    }

    fn park(&mut self) {
        if self.parked {
            return;
        }
        self.parked = true;
        // Outcomes reported so far, while the journal file is still here.
        self.drain_outcomes();
        let state = self.session.take_state();
        // Any the session kept back from the state it handed over.
        self.drain_outcomes();
        if let Some(state) = state {
            // The file first (its sync is not done under the store's lock),
            // so that an eviction right away finds it.
            if let (Some(j), Some(f)) = (&self.store.journal, self.file.take()) {
                j.park(state.id().to_vec(), f);
            }
            let mut store = self.store.lock();
            store.park(state, R::now());
            if let Some(j) = &self.store.journal {
                // Sessions evicted to make room for this one.
                while let Some(id) = store.poll_dropped() {
                    j.drop_session(&id);
                }
            }
        }
    }
}

impl<S, R: Runtime> Drop for ReliablePeer<S, R> {
    fn drop(&mut self) {
        self.park();
    }
}

impl<S, R: Runtime> std::fmt::Debug for ReliablePeer<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReliablePeer")
            .field("session_id", &self.session.id())
            .finish_non_exhaustive()
    }
}
