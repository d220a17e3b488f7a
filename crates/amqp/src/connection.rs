//! One AMQP connection with one session, run by a task that owns the
//! stream (the single writer of its frames). The application talks to it
//! through [`Connection`], [`Sender`] and [`Receiver`] handles.
//!
//! Both ends are here: [`client`] opens (skupperd towards the router),
//! [`server`] answers (the router double) and hands the peer's link
//! attaches to the application as [`IncomingLink`]s.
//!
//! What it does for the application, so no caller can get it wrong:
//! - every delivery received unsettled is accepted and settled at once
//!   (an unsettled multicast delivery blocks the router's senders);
//! - receivers keep their credit topped up;
//! - messages larger than the peer's frame size go out in several
//!   transfers, and multi-frame deliveries are joined before delivery;
//! - the peer's idle time-out is honoured with empty frames, and ours is
//!   enforced;
//! - a delivery the peer rejects or releases fails its send.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::codec::Value;
use crate::frame::{
    self, encode_frame, read_frame, Attach, Begin, Detach, Disposition, Flow, Frame, Open,
    Performative, Role, Terminus, Transfer, AMQP_FRAME, AMQP_HEADER,
};
use crate::Error;

/// Credit a receiver keeps granted.
const CREDIT: u32 = 256;
/// The session windows we advertise: effectively unlimited; credit is what
/// bounds traffic.
const WINDOW: u32 = i32::MAX as u32;
/// Largest message we accept (management replies of 10,000 rows are a few
/// MB).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// How a connection presents itself.
#[derive(Debug, Clone)]
pub struct Options {
    pub container_id: String,
    /// The largest frame we accept.
    pub max_frame_size: u32,
    /// How long the peer may stay silent before we close (advertised as
    /// half of it, per part 2.4.5); `None` for no limit.
    pub idle_time_out: Option<Duration>,
    pub offered_capabilities: Value,
    pub properties: Value,
}

impl Options {
    pub fn new(container_id: &str) -> Options {
        Options {
            container_id: container_id.to_string(),
            max_frame_size: 65536,
            idle_time_out: None,
            offered_capabilities: Value::Null,
            properties: Value::Null,
        }
    }
}

/// One received message: its payload (the encoded sections) and whether
/// the peer sent it settled.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub payload: Vec<u8>,
    pub settled: bool,
    pub delivery_id: u32,
}

/// A link the peer attached, waiting for the application to accept it.
#[derive(Debug)]
pub struct IncomingLink {
    pub attach: Attach,
}

impl IncomingLink {
    /// The peer's role: `Sender` means the peer sends and we receive.
    pub fn peer_role(&self) -> Role {
        self.attach.role
    }

    pub fn source(&self) -> Option<&Terminus> {
        self.attach.source.as_ref()
    }

    pub fn target(&self) -> Option<&Terminus> {
        self.attach.target.as_ref()
    }
}

enum Command {
    Attach {
        name: String,
        role: Role,
        source: Terminus,
        target: Terminus,
        reply: oneshot::Sender<Result<Attached, Error>>,
    },
    Accept {
        incoming: Attach,
        /// For a dynamic source the peer asked for: the address we assign.
        address: Option<String>,
        reply: oneshot::Sender<Result<Attached, Error>>,
    },
    Send {
        handle: u32,
        payload: Vec<u8>,
        settled: bool,
        outcome: Option<oneshot::Sender<Value>>,
    },
    Detach {
        handle: u32,
    },
    Close,
}

struct Attached {
    handle: u32,
    peer: Option<Attach>,
    deliveries: Option<mpsc::UnboundedReceiver<Delivery>>,
}

/// A handle on a running connection. Cheap to clone; the connection closes
/// when [`Connection::close`] is called or every handle is gone.
#[derive(Clone)]
pub struct Connection {
    commands: mpsc::UnboundedSender<Command>,
    closed: watch::Receiver<Option<String>>,
    peer: Open,
}

/// Sends on one link.
pub struct Sender {
    handle: u32,
    conn: Connection,
    address: Option<String>,
}

/// Receives on one link. `address` is the source address (the one the
/// peer assigned, for a dynamic source).
pub struct Receiver {
    handle: u32,
    conn: Connection,
    pub address: Option<String>,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
}

/// What the peer said about a delivery sent unsettled: its terminal state
/// (`accepted`, `rejected`, ...), or nothing if the connection ended first.
pub struct Outcome(Option<oneshot::Receiver<Value>>);

impl Outcome {
    pub async fn state(self) -> Option<Value> {
        match self.0 {
            Some(rx) => rx.await.ok(),
            None => None,
        }
    }
}

impl Connection {
    /// The peer's `open`.
    pub fn peer(&self) -> &Open {
        &self.peer
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<String> {
        self.closed.borrow().clone()
    }

    /// Resolves when the connection has ended, with the reason.
    pub async fn closed(&self) -> String {
        let mut closed = self.closed.clone();
        loop {
            if let Some(reason) = closed.borrow_and_update().clone() {
                return reason;
            }
            if closed.changed().await.is_err() {
                return closed
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| "the connection ended".into());
            }
        }
    }

    fn command(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| {
            Error::Closed(
                self.close_reason()
                    .unwrap_or_else(|| "the connection ended".into()),
            )
        })
    }

    async fn attach(
        &self,
        name: &str,
        role: Role,
        source: Terminus,
        target: Terminus,
    ) -> Result<Attached, Error> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Attach {
            name: name.to_string(),
            role,
            source,
            target,
            reply,
        })?;
        self.answer(rx).await
    }

    async fn answer<T>(&self, rx: oneshot::Receiver<Result<T, Error>>) -> Result<T, Error> {
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(Error::Closed(self.closed().await)),
        }
    }

    /// Attaches a receiver to `source` (an address, or
    /// [`Terminus::dynamic`] for the peer to assign one).
    pub async fn receiver(&self, name: &str, source: Terminus) -> Result<Receiver, Error> {
        let attached = self
            .attach(name, Role::Receiver, source, Terminus::default())
            .await?;
        let address = attached
            .peer
            .as_ref()
            .and_then(|a| a.source.as_ref())
            .and_then(Terminus::get_address)
            .map(String::from);
        self.receiver_from(attached, address)
    }

    fn receiver_from(
        &self,
        attached: Attached,
        address: Option<String>,
    ) -> Result<Receiver, Error> {
        let deliveries = attached
            .deliveries
            .ok_or_else(|| Error::Protocol("a receiver link without deliveries".into()))?;
        Ok(Receiver {
            handle: attached.handle,
            conn: self.clone(),
            address,
            deliveries,
        })
    }

    /// Attaches a sender to `target`.
    pub async fn sender(&self, name: &str, target: &str) -> Result<Sender, Error> {
        let attached = self
            .attach(
                name,
                Role::Sender,
                Terminus::default(),
                Terminus::address(target),
            )
            .await?;
        Ok(Sender {
            handle: attached.handle,
            conn: self.clone(),
            address: Some(target.to_string()),
        })
    }

    async fn accept(
        &self,
        incoming: IncomingLink,
        address: Option<String>,
    ) -> Result<Attached, Error> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Accept {
            incoming: incoming.attach,
            address,
            reply,
        })?;
        self.answer(rx).await
    }

    /// Accepts a link on which the peer sends (we receive).
    pub async fn accept_receiver(&self, incoming: IncomingLink) -> Result<Receiver, Error> {
        let address = incoming
            .target()
            .and_then(Terminus::get_address)
            .map(String::from);
        let attached = self.accept(incoming, None).await?;
        self.receiver_from(attached, address)
    }

    /// Accepts a link on which the peer receives (we send). For a dynamic
    /// source, `dynamic_address` is the address assigned to it.
    pub async fn accept_sender(
        &self,
        incoming: IncomingLink,
        dynamic_address: Option<String>,
    ) -> Result<Sender, Error> {
        let address = dynamic_address.clone().or_else(|| {
            incoming
                .source()
                .and_then(Terminus::get_address)
                .map(String::from)
        });
        let attached = self.accept(incoming, dynamic_address).await?;
        Ok(Sender {
            handle: attached.handle,
            conn: self.clone(),
            address,
        })
    }

    /// Closes the connection (politely: `close`, then the stream).
    pub async fn close(&self) {
        if self.command(Command::Close).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.closed()).await;
        }
    }
}

impl Sender {
    /// The link's address (the target, or the source we serve).
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// Queues one encoded message; it goes out once the peer gives credit.
    /// For an unsettled send, the [`Outcome`] tells what the peer decided.
    pub fn send(&self, payload: Vec<u8>, settled: bool) -> Result<Outcome, Error> {
        let (outcome, rx) = if settled {
            (None, None)
        } else {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        };
        self.conn.command(Command::Send {
            handle: self.handle,
            payload,
            settled,
            outcome,
        })?;
        Ok(Outcome(rx))
    }

    /// Detaches the link.
    pub fn close(self) {
        let _ = self.conn.command(Command::Detach {
            handle: self.handle,
        });
    }
}

impl Receiver {
    /// The next delivery; `None` once the link or the connection has ended.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await
    }

    /// Detaches the link.
    pub fn close(self) {
        let _ = self.conn.command(Command::Detach {
            handle: self.handle,
        });
    }
}

/// Opens a connection over `stream` (after SASL, if any): protocol header,
/// `open`, `begin`. Bounded by nothing here: callers put a timeout around
/// it.
pub async fn client<S>(mut stream: S, options: Options) -> Result<Connection, Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    frame::exchange_header(&mut stream, AMQP_HEADER).await?;
    let (mut read, mut write) = tokio::io::split(stream);
    send_frame(&mut write, &Performative::Open(our_open(&options))).await?;
    send_frame(&mut write, &Performative::Begin(our_begin(None))).await?;
    let peer = expect_open(&mut read, options.max_frame_size).await?;
    let frame = read_frame(&mut read, options.max_frame_size).await?;
    let remote = match frame.body.as_ref().map(Performative::decode).transpose()? {
        Some(Performative::Begin(begin)) => begin,
        Some(Performative::Close(error)) => {
            return Err(Error::Closed(close_text(
                "the peer closed the connection",
                error.as_ref(),
            )))
        }
        other => return Err(Error::Protocol(format!("expected begin, got {other:?}"))),
    };
    Ok(start(
        read,
        write,
        options,
        peer,
        Some((frame.channel, remote)),
        None,
    ))
}

/// Answers a connection on `stream` (after SASL, if any). The peer's link
/// attaches arrive on the returned channel.
pub async fn server<S>(
    mut stream: S,
    options: Options,
) -> Result<(Connection, mpsc::UnboundedReceiver<IncomingLink>), Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    frame::expect_header(&mut stream, AMQP_HEADER).await?;
    frame::write_all(&mut stream, &AMQP_HEADER).await?;
    let (mut read, mut write) = tokio::io::split(stream);
    let peer = expect_open(&mut read, options.max_frame_size).await?;
    send_frame(&mut write, &Performative::Open(our_open(&options))).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    Ok((start(read, write, options, peer, None, Some(tx)), rx))
}

fn our_open(options: &Options) -> Open {
    Open {
        container_id: options.container_id.clone(),
        max_frame_size: Some(options.max_frame_size),
        channel_max: Some(0),
        idle_time_out: options
            .idle_time_out
            .map(|d| u32::try_from(d.as_millis() / 2).unwrap_or(u32::MAX)),
        offered_capabilities: options.offered_capabilities.clone(),
        properties: options.properties.clone(),
        ..Open::default()
    }
}

fn our_begin(remote_channel: Option<u16>) -> Begin {
    Begin {
        remote_channel,
        next_outgoing_id: 0,
        incoming_window: WINDOW,
        outgoing_window: WINDOW,
        handle_max: None,
    }
}

async fn expect_open<R: AsyncRead + Unpin>(read: &mut R, max: u32) -> Result<Open, Error> {
    let frame = read_frame(read, max).await?;
    match frame.body.as_ref().map(Performative::decode).transpose()? {
        Some(Performative::Open(open)) => Ok(open),
        other => Err(Error::Protocol(format!("expected open, got {other:?}"))),
    }
}

fn close_text(what: &str, error: Option<&Value>) -> String {
    match error {
        Some(e) => format!("{what}: {}", frame::error_text(e)),
        None => what.to_string(),
    }
}

async fn send_frame<W: AsyncWrite + Unpin>(write: &mut W, p: &Performative) -> Result<(), Error> {
    frame::write_all(write, &encode_frame(AMQP_FRAME, 0, Some(&p.encode()), &[])).await
}

fn start<S>(
    read: ReadHalf<S>,
    write: WriteHalf<S>,
    options: Options,
    peer: Open,
    session: Option<(u16, Begin)>,
    incoming: Option<mpsc::UnboundedSender<IncomingLink>>,
) -> Connection
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (closed_tx, closed) = watch::channel(None);
    let (frames_tx, frames) = mpsc::channel(64);
    let max_frame = options.max_frame_size;
    let reader = tokio::spawn(read_loop(read, max_frame, frames_tx));
    let mut engine = Engine {
        write,
        peer_max_frame: peer
            .max_frame_size
            .unwrap_or(u32::MAX)
            .max(frame::MIN_MAX_FRAME_SIZE),
        peer_idle: peer
            .idle_time_out
            .filter(|&ms| ms > 0)
            .map(|ms| Duration::from_millis(u64::from(ms))),
        our_idle: options.idle_time_out,
        remote_channel: None,
        next_outgoing_id: 0,
        next_incoming_id: 0,
        next_delivery_id: 0,
        next_tag: 0,
        links: HashMap::new(),
        by_remote: HashMap::new(),
        next_handle: 0,
        incoming,
        unsettled: HashMap::new(),
        last_write: Instant::now(),
        last_read: Instant::now(),
    };
    if let Some((channel, begin)) = session {
        engine.remote_channel = Some(channel);
        engine.next_incoming_id = begin.next_outgoing_id;
    }
    tokio::spawn(async move {
        let reason = engine.run(command_rx, frames).await;
        reader.abort();
        tracing::debug!(%reason, "AMQP connection ended");
        let _ = closed_tx.send(Some(reason));
    });
    Connection {
        commands,
        closed,
        peer,
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut read: R,
    max: u32,
    frames: mpsc::Sender<Result<Frame, Error>>,
) {
    loop {
        let frame = read_frame(&mut read, max).await;
        let failed = frame.is_err();
        if frames.send(frame).await.is_err() || failed {
            return;
        }
    }
}

struct Link {
    name: String,
    role: Role,
    remote_handle: Option<u32>,
    attach_reply: Option<oneshot::Sender<Result<Attached, Error>>>,
    /// Receivers: where complete deliveries go, credit left, and a
    /// delivery being assembled from several transfers.
    deliveries: Option<mpsc::UnboundedSender<Delivery>>,
    credit: u32,
    delivery_count: u32,
    partial: Option<(Transfer, Vec<u8>)>,
    /// Senders: credit the peer gave, and messages waiting for it.
    peer_credit: u32,
    queue: VecDeque<(Vec<u8>, bool, Option<oneshot::Sender<Value>>)>,
    detaching: bool,
}

impl Link {
    fn new(name: &str, role: Role) -> Link {
        Link {
            name: name.to_string(),
            role,
            remote_handle: None,
            attach_reply: None,
            deliveries: None,
            credit: 0,
            delivery_count: 0,
            partial: None,
            peer_credit: 0,
            queue: VecDeque::new(),
            detaching: false,
        }
    }
}

struct Engine<W> {
    write: W,
    peer_max_frame: u32,
    peer_idle: Option<Duration>,
    our_idle: Option<Duration>,
    remote_channel: Option<u16>,
    next_outgoing_id: u32,
    next_incoming_id: u32,
    next_delivery_id: u32,
    next_tag: u64,
    links: HashMap<u32, Link>,
    by_remote: HashMap<u32, u32>,
    next_handle: u32,
    incoming: Option<mpsc::UnboundedSender<IncomingLink>>,
    unsettled: HashMap<u32, oneshot::Sender<Value>>,
    last_write: Instant,
    last_read: Instant,
}

/// What ends the engine: the reason, and whether to say `close` first.
struct Stop {
    reason: String,
    send_close: Option<Option<Value>>,
}

impl Stop {
    fn quiet(reason: impl Into<String>) -> Stop {
        Stop {
            reason: reason.into(),
            send_close: None,
        }
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        let send_close = match &e {
            Error::Protocol(text) => Some(Some(frame::error_value("amqp:internal-error", text))),
            _ => None,
        };
        Stop {
            reason: e.to_string(),
            send_close,
        }
    }
}

impl<W: AsyncWrite + Unpin> Engine<W> {
    async fn run(
        &mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut frames: mpsc::Receiver<Result<Frame, Error>>,
    ) -> String {
        let tick = self
            .peer_idle
            .map(|d| d / 2)
            .into_iter()
            .chain(self.our_idle.map(|d| d / 4))
            .min()
            .unwrap_or(Duration::from_secs(3600))
            .max(Duration::from_millis(50));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = loop {
            let step = tokio::select! {
                frame = frames.recv() => match frame {
                    Some(Ok(frame)) => {
                        self.last_read = Instant::now();
                        self.on_frame(frame).await
                    }
                    Some(Err(e)) => Err(Stop::quiet(e.to_string())),
                    None => Err(Stop::quiet("the connection's reader ended")),
                },
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => Err(Stop { reason: "closed by this side".into(), send_close: Some(None) }),
                },
                _ = ticker.tick() => self.on_tick().await,
            };
            if let Err(stop) = step {
                break stop;
            }
        };
        if let Some(error) = stop.send_close {
            let _ = self.send(&Performative::Close(error)).await;
            let _ = self.write.shutdown().await;
        }
        for link in self.links.values_mut() {
            if let Some(reply) = link.attach_reply.take() {
                let _ = reply.send(Err(Error::Closed(stop.reason.clone())));
            }
        }
        stop.reason
    }

    async fn send(&mut self, p: &Performative) -> Result<(), Error> {
        self.send_with(p, &[]).await
    }

    async fn send_with(&mut self, p: &Performative, payload: &[u8]) -> Result<(), Error> {
        let bytes = encode_frame(AMQP_FRAME, 0, Some(&p.encode()), payload);
        frame::write_all(&mut self.write, &bytes).await?;
        self.last_write = Instant::now();
        Ok(())
    }

    async fn on_tick(&mut self) -> Result<(), Stop> {
        if let Some(idle) = self.our_idle {
            if self.last_read.elapsed() > idle {
                return Err(Stop {
                    reason: format!("the peer sent nothing for {} s", idle.as_secs_f32()),
                    send_close: Some(Some(frame::error_value(
                        "amqp:resource-limit-exceeded",
                        "local-idle-timeout expired",
                    ))),
                });
            }
        }
        if let Some(idle) = self.peer_idle {
            if self.last_write.elapsed() >= idle / 2 {
                frame::write_all(&mut self.write, &encode_frame(AMQP_FRAME, 0, None, &[])).await?;
                self.last_write = Instant::now();
            }
        }
        Ok(())
    }

    fn session_flow(&self) -> Flow {
        Flow {
            next_incoming_id: Some(self.next_incoming_id),
            incoming_window: WINDOW,
            next_outgoing_id: self.next_outgoing_id,
            outgoing_window: WINDOW,
            ..Flow::default()
        }
    }

    fn new_handle(&mut self) -> u32 {
        while self.links.contains_key(&self.next_handle) {
            self.next_handle = self.next_handle.wrapping_add(1);
        }
        self.next_handle
    }

    async fn on_command(&mut self, command: Command) -> Result<(), Stop> {
        match command {
            Command::Attach {
                name,
                role,
                source,
                target,
                reply,
            } => {
                let handle = self.new_handle();
                let mut link = Link::new(&name, role);
                link.attach_reply = Some(reply);
                self.links.insert(handle, link);
                self.send(&Performative::Attach(Attach {
                    name,
                    handle,
                    role,
                    snd_settle_mode: None,
                    rcv_settle_mode: None,
                    source: Some(source),
                    target: Some(target),
                    initial_delivery_count: (role == Role::Sender).then_some(0),
                    max_message_size: None,
                }))
                .await?;
            }
            Command::Accept {
                incoming,
                address,
                reply,
            } => {
                let handle = self.new_handle();
                // Our role is the opposite of the peer's.
                let role = match incoming.role {
                    Role::Sender => Role::Receiver,
                    Role::Receiver => Role::Sender,
                };
                let mut source = incoming.source.clone();
                if let (Some(address), Some(source)) = (&address, source.as_mut()) {
                    source.set_address(address);
                }
                let mut link = Link::new(&incoming.name, role);
                link.remote_handle = Some(incoming.handle);
                self.by_remote.insert(incoming.handle, handle);
                let deliveries = if role == Role::Receiver {
                    let (tx, rx) = mpsc::unbounded_channel();
                    link.deliveries = Some(tx);
                    Some(rx)
                } else {
                    None
                };
                self.links.insert(handle, link);
                self.send(&Performative::Attach(Attach {
                    name: incoming.name.clone(),
                    handle,
                    role,
                    snd_settle_mode: incoming.snd_settle_mode,
                    rcv_settle_mode: incoming.rcv_settle_mode,
                    source,
                    target: incoming.target.clone(),
                    initial_delivery_count: (role == Role::Sender).then_some(0),
                    max_message_size: None,
                }))
                .await?;
                if role == Role::Receiver {
                    self.grant(handle).await?;
                }
                let _ = reply.send(Ok(Attached {
                    handle,
                    peer: Some(incoming),
                    deliveries,
                }));
            }
            Command::Send {
                handle,
                payload,
                settled,
                outcome,
            } => {
                if let Some(link) = self.links.get_mut(&handle) {
                    link.queue.push_back((payload, settled, outcome));
                    self.pump(handle).await?;
                }
            }
            Command::Detach { handle } => {
                if let Some(link) = self.links.get_mut(&handle) {
                    if !link.detaching {
                        link.detaching = true;
                        self.send(&Performative::Detach(Detach {
                            handle,
                            closed: true,
                            error: None,
                        }))
                        .await?;
                    }
                }
            }
            Command::Close => {
                return Err(Stop {
                    reason: "closed by this side".into(),
                    send_close: Some(None),
                })
            }
        }
        Ok(())
    }

    /// Tops a receiver's credit back up to [`CREDIT`].
    async fn grant(&mut self, handle: u32) -> Result<(), Error> {
        let Some(link) = self.links.get_mut(&handle) else {
            return Ok(());
        };
        link.credit = CREDIT;
        let flow = Flow {
            handle: Some(handle),
            delivery_count: Some(link.delivery_count),
            link_credit: Some(CREDIT),
            ..self.session_flow()
        };
        self.send(&Performative::Flow(flow)).await
    }

    /// Sends what a sender's credit allows.
    async fn pump(&mut self, handle: u32) -> Result<(), Error> {
        loop {
            let Some(link) = self.links.get_mut(&handle) else {
                return Ok(());
            };
            if link.peer_credit == 0 || link.remote_handle.is_none() || link.detaching {
                return Ok(());
            }
            let Some((payload, settled, outcome)) = link.queue.pop_front() else {
                return Ok(());
            };
            link.peer_credit -= 1;
            link.delivery_count = link.delivery_count.wrapping_add(1);
            let delivery_id = self.next_delivery_id;
            self.next_delivery_id = self.next_delivery_id.wrapping_add(1);
            let tag = self.next_tag.to_le_bytes().to_vec();
            self.next_tag += 1;
            if let Some(outcome) = outcome {
                self.unsettled.insert(delivery_id, outcome);
            }
            // Room for the transfer performative and frame header.
            let room = (self.peer_max_frame as usize).saturating_sub(64).max(256);
            let chunks: Vec<&[u8]> = if payload.is_empty() {
                vec![&[][..]]
            } else {
                payload.chunks(room).collect()
            };
            let last = chunks.len() - 1;
            for (i, chunk) in chunks.into_iter().enumerate() {
                let transfer = Transfer {
                    handle,
                    delivery_id: Some(delivery_id),
                    delivery_tag: Some(tag.clone()),
                    message_format: Some(0),
                    settled: Some(settled),
                    more: i < last,
                    state: None,
                    aborted: false,
                };
                self.send_with(&Performative::Transfer(transfer), chunk)
                    .await?;
                self.next_outgoing_id = self.next_outgoing_id.wrapping_add(1);
            }
        }
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<(), Stop> {
        let Some(body) = frame.body else {
            return Ok(()); // heartbeat
        };
        let performative = Performative::decode(&body)?;
        match performative {
            Performative::Open(_) => return Err(Error::Protocol("a second open".into()).into()),
            Performative::Begin(begin) => {
                if self.remote_channel.is_some() {
                    return Err(Error::Protocol(
                        "only one session per connection is served".into(),
                    )
                    .into());
                }
                self.remote_channel = Some(frame.channel);
                self.next_incoming_id = begin.next_outgoing_id;
                self.send(&Performative::Begin(our_begin(Some(frame.channel))))
                    .await?;
            }
            Performative::Attach(attach) => self.on_attach(attach).await?,
            Performative::Flow(flow) => self.on_flow(flow).await?,
            Performative::Transfer(transfer) => self.on_transfer(transfer, frame.payload).await?,
            Performative::Disposition(d) => self.on_disposition(d),
            Performative::Detach(detach) => self.on_detach(detach).await?,
            Performative::End(error) => {
                return Err(Stop {
                    reason: close_text("the peer ended the session", error.as_ref()),
                    send_close: Some(None),
                })
            }
            Performative::Close(error) => {
                return Err(Stop {
                    reason: close_text("the peer closed the connection", error.as_ref()),
                    send_close: Some(None),
                })
            }
        }
        Ok(())
    }

    async fn on_attach(&mut self, attach: Attach) -> Result<(), Stop> {
        // The answer to one of our attaches: same name, opposite role.
        let pending = self
            .links
            .iter_mut()
            .find(|(_, l)| {
                l.attach_reply.is_some() && l.role != attach.role && l.name == attach.name
            })
            .map(|(h, l)| (*h, l));
        if let Some((handle, link)) = pending {
            link.remote_handle = Some(attach.handle);
            self.by_remote.insert(attach.handle, handle);
            let refused = match link.role {
                // A receiver whose peer attached no source: the node does
                // not exist; a detach follows (part 2.6.3).
                Role::Receiver => attach.source.is_none(),
                Role::Sender => attach.target.is_none(),
            };
            let deliveries = if link.role == Role::Receiver && !refused {
                let (tx, rx) = mpsc::unbounded_channel();
                link.deliveries = Some(tx);
                Some(rx)
            } else {
                None
            };
            let reply = link.attach_reply.take();
            if refused {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(Error::Refused(format!(
                        "link {:?} refused",
                        attach.name
                    ))));
                }
                return Ok(());
            }
            if link.role == Role::Receiver {
                self.grant(handle).await?;
            }
            if let Some(reply) = reply {
                let _ = reply.send(Ok(Attached {
                    handle,
                    peer: Some(attach),
                    deliveries,
                }));
            }
            return Ok(());
        }
        match &self.incoming {
            Some(incoming) => {
                let _ = incoming.send(IncomingLink { attach });
                Ok(())
            }
            None => {
                // A client does not serve links; refuse it.
                let handle = self.new_handle();
                let role = match attach.role {
                    Role::Sender => Role::Receiver,
                    Role::Receiver => Role::Sender,
                };
                self.send(&Performative::Attach(Attach {
                    name: attach.name,
                    handle,
                    role,
                    snd_settle_mode: None,
                    rcv_settle_mode: None,
                    source: None,
                    target: None,
                    initial_delivery_count: (role == Role::Sender).then_some(0),
                    max_message_size: None,
                }))
                .await?;
                self.send(&Performative::Detach(Detach {
                    handle,
                    closed: true,
                    error: Some(frame::error_value(
                        "amqp:not-allowed",
                        "this client serves no links",
                    )),
                }))
                .await?;
                Ok(())
            }
        }
    }

    async fn on_flow(&mut self, flow: Flow) -> Result<(), Stop> {
        let Some(remote) = flow.handle else {
            return Ok(());
        };
        let Some(&handle) = self.by_remote.get(&remote) else {
            return Ok(());
        };
        let Some(link) = self.links.get_mut(&handle) else {
            return Ok(());
        };
        if link.role == Role::Sender {
            // Part 2.6.7: credit = delivery-count(rcv) + link-credit(rcv) - delivery-count(snd).
            let rcv_count = flow.delivery_count.unwrap_or(0);
            let credit = flow.link_credit.unwrap_or(0);
            link.peer_credit = rcv_count
                .wrapping_add(credit)
                .wrapping_sub(link.delivery_count);
            if link.peer_credit > credit {
                link.peer_credit = credit;
            }
            self.pump(handle).await?;
        } else if flow.echo {
            self.grant(handle).await?;
        }
        Ok(())
    }

    async fn on_transfer(&mut self, transfer: Transfer, payload: Vec<u8>) -> Result<(), Stop> {
        self.next_incoming_id = self.next_incoming_id.wrapping_add(1);
        let Some(&handle) = self.by_remote.get(&transfer.handle) else {
            return Err(Error::Protocol(format!(
                "transfer on unattached handle {}",
                transfer.handle
            ))
            .into());
        };
        let Some(link) = self.links.get_mut(&handle) else {
            return Ok(());
        };
        if transfer.aborted {
            link.partial = None;
            return Ok(());
        }
        let (first, mut buffer) = match link.partial.take() {
            Some((first, mut buffer)) => {
                buffer.extend(payload);
                (first, buffer)
            }
            None => (transfer.clone(), payload),
        };
        if buffer.len() > MAX_MESSAGE {
            return Err(
                Error::Protocol(format!("a message larger than {MAX_MESSAGE} bytes")).into(),
            );
        }
        if transfer.more {
            link.partial = Some((first, std::mem::take(&mut buffer)));
            return Ok(());
        }
        let settled = first.settled.unwrap_or(false) || transfer.settled.unwrap_or(false);
        let delivery_id = first.delivery_id.unwrap_or(0);
        link.delivery_count = link.delivery_count.wrapping_add(1);
        link.credit = link.credit.saturating_sub(1);
        let low = link.credit < CREDIT / 2;
        if let Some(deliveries) = &link.deliveries {
            let _ = deliveries.send(Delivery {
                payload: buffer,
                settled,
                delivery_id,
            });
        }
        if !settled {
            self.send(&Performative::Disposition(Disposition {
                role: Role::Receiver,
                first: delivery_id,
                last: None,
                settled: true,
                state: Some(frame::accepted()),
            }))
            .await?;
        }
        if low {
            self.grant(handle).await?;
        }
        Ok(())
    }

    fn on_disposition(&mut self, d: Disposition) {
        if d.role != Role::Receiver {
            return;
        }
        let last = d.last.unwrap_or(d.first);
        let state = d.state.unwrap_or(Value::Null);
        let mut id = d.first;
        loop {
            if let Some(outcome) = self.unsettled.remove(&id) {
                let _ = outcome.send(state.clone());
            }
            if id == last {
                break;
            }
            id = id.wrapping_add(1);
        }
    }

    async fn on_detach(&mut self, detach: Detach) -> Result<(), Stop> {
        let Some(handle) = self.by_remote.remove(&detach.handle) else {
            return Ok(());
        };
        let Some(link) = self.links.remove(&handle) else {
            return Ok(());
        };
        if let Some(reply) = link.attach_reply {
            let why = detach
                .error
                .as_ref()
                .map(frame::error_text)
                .unwrap_or_default();
            let _ = reply.send(Err(Error::Refused(why)));
        }
        if let Some(error) = &detach.error {
            tracing::debug!(handle, error = %frame::error_text(error), "link detached by the peer");
        }
        if !link.detaching {
            self.send(&Performative::Detach(Detach {
                handle,
                closed: true,
                error: None,
            }))
            .await?;
        }
        Ok(())
    }
}
