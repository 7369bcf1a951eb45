//! Integration tests: the real `sheaf` binary on free loopback ports, driven through its real
//! sockets and admin API. One test binary (TiKV style), one module per subject.
#![allow(unreachable_pub)]

mod admin_auth;
mod certs;
mod checkpoints;
mod cluster;
mod cluster_etcd;
mod cluster_handoff;
mod cluster_peers;
mod cluster_rate_limits;
mod cluster_replace;
mod cluster_rollup_failover;
mod cluster_rollups;
mod config_cli;
mod dead_sink;
mod etcd;
mod etcd_auth;
mod harness;
mod ids;
mod ingest_limits;
mod layout;
mod m3_config;
mod m3msg_ingest;
mod m3msg_nested;
mod m3msg_pipelines;
mod m3msg_resend;
mod m3msg_rollups;
mod m3msg_sink;
mod malformed;
mod overload;
mod passthrough;
mod ports;
mod proxy;
mod rate_limits;
mod rules;
mod rules_rollups;
mod statsd_ingest;
mod tidy;
mod topic_consumer;
mod topic_sink;
