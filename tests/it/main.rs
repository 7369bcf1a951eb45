//! Integration tests: the real `sheaf` binary on free loopback ports, driven through its real
//! sockets and admin API. One test binary (TiKV style), one module per subject.
#![allow(unreachable_pub)]

mod cluster;
mod config_cli;
mod dead_sink;
mod etcd;
mod harness;
mod ids;
mod ingest_limits;
mod layout;
mod m3msg_ingest;
mod m3msg_sink;
mod malformed;
mod overload;
mod ports;
mod proxy;
mod statsd_ingest;
mod tidy;
