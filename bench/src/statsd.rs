//! StatsD over UDP: one connected socket per thread, datagrams of up to
//! `--lines-per-datagram` lines and at most 1400 bytes.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Context;
use sheaf_bench::workload::{Generator, MAX_DATAGRAM_BYTES, StatsdWriter};
use socket2::{Domain, Protocol, Socket, Type};

use crate::SendPlan;

/// Starts `plan.threads` sender threads.
pub(crate) fn start(
    addr: SocketAddr,
    lines_per_datagram: usize,
    plan: &SendPlan,
) -> anyhow::Result<Vec<JoinHandle<anyhow::Result<()>>>> {
    let mut handles = Vec::with_capacity(plan.threads);
    for t in 0..plan.threads {
        let socket = connect(addr)?;
        let plan = plan.clone();
        let handle = std::thread::Builder::new()
            .name(format!("statsd-{t}"))
            .spawn(move || send(socket, t, lines_per_datagram, plan))
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

fn send(socket: UdpSocket, thread: usize, lines_per_datagram: usize, plan: SendPlan) -> anyhow::Result<()> {
    let generator = Generator::new(plan.mix, plan.space, thread as u64, plan.threads as u64);
    let mut writer = StatsdWriter::new(generator);
    let mut buf = Vec::with_capacity(MAX_DATAGRAM_BYTES);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut consecutive_errors = 0u32;
    while plan.running() {
        let n = writer.fill(&mut buf, lines_per_datagram, MAX_DATAGRAM_BYTES);
        match socket.send(&buf) {
            Ok(_) => {
                consecutive_errors = 0;
                sent += n.lines;
                plan.totals.values.fetch_add(n.lines, Relaxed);
                plan.totals.counter_values.fetch_add(n.counter_lines, Relaxed);
                plan.totals.units.fetch_add(1, Relaxed);
                plan.totals.bytes.fetch_add(buf.len() as u64, Relaxed);
            }
            Err(e) => {
                // ECONNREFUSED (nothing listening: the ICMP error of an earlier datagram)
                // or ENOBUFS; the datagram's lines are not counted as sent.
                plan.totals.send_errors.fetch_add(1, Relaxed);
                consecutive_errors += 1;
                if consecutive_errors >= 1000 {
                    return Err(anyhow::anyhow!("udp send to {:?} keeps failing: {e}", socket.peer_addr().ok()));
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        plan.pace(start, sent);
    }
    Ok(())
}
