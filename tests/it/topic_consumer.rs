//! A test m3msg consumer, as an m3coordinator ingest server behaves: it accepts any number
//! of connections, decodes each framed `msgpb.Message` of a `metricpb.AggregatedMetric`,
//! records it and acknowledges it on the same connection. `stop` closes the listener and every
//! connection (a consumer process killed); `start` on the same port brings it back.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use sheaf_proto::frame::{encode_frame, next_frame};
use sheaf_proto::{metricpb, msgpb};

/// One message a consumer received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub shard: u64,
    pub id: String,
    pub time_ns: i64,
    pub value: f64,
}

pub struct Consumer {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Consumer {
    /// Listens on `port` (0: any free one).
    pub fn start(port: u16) -> Self {
        Self::start_recording(port, Arc::new(Mutex::new(Vec::new())))
    }

    fn start_recording(port: u16, received: Arc<Mutex<Vec<Received>>>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accept = {
            let (stop, conns, received) = (stop.clone(), conns.clone(), received.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(false).unwrap();
                            conns.lock().unwrap().push(s.try_clone().unwrap());
                            let received = received.clone();
                            std::thread::spawn(move || serve(s, &received));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Consumer { addr, received, stop, conns, accept: Some(accept) }
    }

    /// Closes the listener and every connection.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            t.join().unwrap();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port, keeping what it received.
    pub fn restart(&mut self) {
        let port = self.addr.port();
        *self = Self::start_recording(port, self.received.clone());
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(mut s: TcpStream, received: &Mutex<Vec<Received>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut off = 0;
        let mut ack = msgpb::Ack::default();
        while let Some((payload, used)) = next_frame(&buf[off..], 1 << 24).unwrap() {
            let m = msgpb::Message::decode(payload).unwrap();
            let meta = m.metadata.unwrap();
            let metric = metricpb::AggregatedMetric::decode(m.value.as_slice()).unwrap();
            let tm = metric.metric.unwrap().timed_metric.unwrap();
            received.lock().unwrap().push(Received {
                shard: meta.shard,
                id: String::from_utf8_lossy(&tm.id).into_owned(),
                time_ns: tm.time_nanos,
                value: tm.value,
            });
            ack.metadata.push(meta);
            off += used;
        }
        buf.drain(..off);
        if !ack.metadata.is_empty() {
            let mut f = Vec::new();
            encode_frame(&ack, &mut f);
            if s.write_all(&f).is_err() {
                return;
            }
        }
    }
}
