//! StatsD over UDP (one connected socket per thread, datagrams of up to
//! `--lines-per-datagram` lines and at most `--datagram-bytes` bytes), over a Unix datagram
//! socket (the same datagrams; a blocking send waits while sheaf's queue is full, so nothing
//! is dropped) or over TCP (one connection per thread, the same payloads written one after
//! the other: every line ends with a newline).

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Context;
use sheaf_bench::workload::{DatagramCount, Generator, StatsdWriter};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::send_plan::SendPlan;

/// Where the lines go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Udp(addr) | Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One sender thread's socket.
enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Unix(UnixDatagram),
}

impl Conn {
    fn open(target: &Target) -> anyhow::Result<Self> {
        Ok(match target {
            Target::Udp(addr) => Self::Udp(connect(*addr)?),
            Target::Unix(path) => {
                let socket = UnixDatagram::unbound().context("unix datagram socket")?;
                socket.connect(path).with_context(|| format!("connecting to the unix socket {}", path.display()))?;
                // A Unix datagram sender's buffer bounds the bytes it has queued at the
                // receiver: at the default (~208 KiB) a few large datagrams fill it, and the
                // sender is woken to refill it every few datagrams sheaf takes.
                if let Err(err) = SockRef::from(&socket).set_send_buffer_size(4 << 20) {
                    eprintln!("sheaf-load: could not raise the unix socket's send buffer: {err}");
                }
                Self::Unix(socket)
            }
            Target::Tcp(addr) => {
                let stream = TcpStream::connect(*addr).with_context(|| format!("connecting tcp to {addr}"))?;
                // Each payload is ~1400 bytes of whole lines: send it at once.
                stream.set_nodelay(true).context("TCP_NODELAY")?;
                Self::Tcp(stream)
            }
        })
    }

    fn send(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Udp(socket) => socket.send(buf).map(drop),
            Self::Tcp(stream) => stream.write_all(buf),
            Self::Unix(socket) => socket.send(buf).map(drop),
        }
    }
}

/// Starts `plan.threads` sender threads.
pub(crate) fn start(
    target: &Target,
    shape: DatagramShape,
    replay: bool,
    plan: &SendPlan,
) -> anyhow::Result<Vec<JoinHandle<anyhow::Result<()>>>> {
    let mut handles = Vec::with_capacity(plan.threads);
    for t in 0..plan.threads {
        let socket = Conn::open(target)?;
        let plan = plan.clone();
        let target = target.clone();
        let handle = std::thread::Builder::new()
            .name(format!("statsd-{t}"))
            .spawn(move || {
                let mut source = DatagramSource::new(t, shape, replay, &plan);
                send(socket, &target, &mut source, plan)
            })
            .context("starting a sender thread")?;
        handles.push(handle);
    }
    Ok(handles)
}

fn connect(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).context("udp socket")?;
    // A larger send buffer keeps the sender from blocking on every datagram; loopback
    // delivers straight into the receiver's buffer anyway.
    let _ = socket.set_send_buffer_size(4 << 20);
    let any: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    socket.bind(&any.into()).context("binding the udp socket")?;
    socket.connect(&addr.into()).with_context(|| format!("connecting udp to {addr}"))?;
    Ok(socket.into())
}

/// How many lines, and bytes at most, one datagram (or TCP write) carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DatagramShape {
    pub(crate) lines: usize,
    pub(crate) max_bytes: usize,
}

/// Where a sender's datagrams come from.
enum DatagramSource {
    /// Written line by line as they are sent.
    Generated { writer: StatsdWriter, buf: Vec<u8>, shape: DatagramShape },
    /// The thread's share of the series, each once, written before sending and then sent
    /// over and over: the sender then costs a send per datagram and no formatting, so that
    /// on a small host it leaves sheaf more CPU. Gauge and timer values repeat per pass.
    Replayed { datagrams: Vec<(Vec<u8>, DatagramCount)>, next: usize },
}

impl DatagramSource {
    fn new(thread: usize, shape: DatagramShape, replay: bool, plan: &SendPlan) -> Self {
        let generator = Generator::new(plan.mix, plan.space, thread as u64, plan.threads as u64);
        let mut writer = StatsdWriter::new(generator);
        if !replay {
            return Self::Generated { writer, buf: Vec::with_capacity(shape.max_bytes), shape };
        }
        let share = plan.space.total().div_ceil(plan.threads as u64);
        let (mut datagrams, mut lines) = (Vec::new(), 0);
        while lines < share {
            let mut buf = Vec::with_capacity(shape.max_bytes);
            let count = writer.fill(&mut buf, shape.lines.min((share - lines) as usize), shape.max_bytes);
            lines += count.lines;
            datagrams.push((buf, count));
        }
        Self::Replayed { datagrams, next: 0 }
    }

    /// The next datagram and what it holds.
    fn next(&mut self) -> (&[u8], DatagramCount) {
        match self {
            Self::Generated { writer, buf, shape } => {
                let count = writer.fill(buf, shape.lines, shape.max_bytes);
                (buf, count)
            }
            Self::Replayed { datagrams, next } => {
                let (buf, count) = &datagrams[*next];
                *next = if *next + 1 == datagrams.len() { 0 } else { *next + 1 };
                (buf, *count)
            }
        }
    }
}

fn send(mut socket: Conn, target: &Target, source: &mut DatagramSource, plan: SendPlan) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut consecutive_errors = 0u32;
    while plan.running() {
        let (buf, n) = source.next();
        match socket.send(buf) {
            Ok(()) => {
                consecutive_errors = 0;
                sent += n.lines;
                plan.totals.add_sent(n.lines, n.counter_lines, 1, buf.len());
            }
            Err(e) => {
                // UDP: ECONNREFUSED (nothing listening: the ICMP error of an earlier
                // datagram) or ENOBUFS; the datagram's lines are not counted as sent. TCP: the
                // connection is gone, and so is every later write. Unix: EPIPE or
                // ECONNREFUSED once sheaf stops receiving.
                plan.totals.send_errors.fetch_add(1, Relaxed);
                consecutive_errors += 1;
                if consecutive_errors >= 1000 {
                    return Err(anyhow::anyhow!("statsd send to {target} keeps failing: {e}"));
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        plan.pace(start, sent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use sheaf_bench::workload::{MAX_DATAGRAM_BYTES, Mix, SeriesSpace};
    use sheaf_shard_core::statsd::for_each_line;

    use super::*;

    /// A replaying sender's datagrams hold its share of the series once per pass, counted
    /// right, and the pass starts again where it began.
    #[test]
    fn replayed_datagrams_cover_the_share_once_per_pass() {
        let mix = Mix::default();
        let plan = SendPlan {
            mix,
            space: SeriesSpace::new(1000, mix),
            threads: 2,
            rate_per_thread: 0.0,
            deadline: Instant::now(),
            totals: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let mut source =
            DatagramSource::new(1, DatagramShape { lines: 87, max_bytes: MAX_DATAGRAM_BYTES }, true, &plan);
        let DatagramSource::Replayed { datagrams, .. } = &source else { panic!("replaying") };
        let per_pass = datagrams.len();
        let (mut ids, mut lines, mut counters) = (HashSet::new(), 0, 0);
        let mut first = Vec::new();
        for i in 0..per_pass + 1 {
            let (buf, count) = source.next();
            if i == per_pass {
                assert_eq!(buf, &first[..], "the next pass starts over");
                break;
            }
            if i == 0 {
                first = buf.to_vec();
            }
            assert!(buf.len() <= MAX_DATAGRAM_BYTES);
            lines += count.lines;
            counters += count.counter_lines;
            for_each_line(buf, 1024, |line| {
                let line = line.expect("valid line");
                let name = line.name.to_vec();
                assert!(ids.insert(name), "a series sent twice in one pass");
            });
        }
        assert_eq!((lines, counters, ids.len()), (500, 300, 500));
    }
}
