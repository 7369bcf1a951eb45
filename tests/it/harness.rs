//! Starts `sheaf run` with a config on free ports, talks HTTP to its admin API, stops it
//! with SIGTERM and reads back what its JSON sink wrote.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    // A TCP and a UDP socket on the same port, so one port serves both StatsD transports.
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub struct Sheaf {
    child: Option<Child>,
    pub dir: tempdir::Dir,
    pub admin: SocketAddr,
    pub m3msg: SocketAddr,
    pub statsd: SocketAddr,
    /// The StatsD Unix socket's path, when launched with `Launch::statsd_unix`.
    pub statsd_unix: Option<PathBuf>,
}

/// A scratch directory removed on drop (no extra crate needed).
pub mod tempdir {
    use std::path::PathBuf;
    pub struct Dir(pub PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Self {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let p = std::env::temp_dir().join(format!("sheaf-it-{tag}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// What a test adds to the harness's config, and how it wires stdout.
#[derive(Default)]
pub struct Launch<'a> {
    /// YAML appended under `aggregator:` (after the JSON file handler), indented by 2.
    pub aggregator: &'a str,
    /// Added inside `m3msg.server`, e.g. `, max_frame_size: 4096`.
    pub m3msg_server: &'a str,
    /// YAML lines added under `statsd:`, indented by 2, e.g. `  max_line_size: 1024\n`.
    pub statsd: &'a str,
    /// Added inside `statsd.tcp`, e.g. `, read_timeout: 1s`.
    pub statsd_tcp: &'a str,
    /// Added inside `statsd.udp`, e.g. `, recv_buffer_bytes: 65536`.
    pub statsd_udp: &'a str,
    /// Top-level YAML appended at the end.
    pub top: &'a str,
    /// Make stdout a pipe this process never reads (a sink writing `-` then blocks).
    pub stdout_piped: bool,
    /// Also read StatsD from a Unix datagram socket in the scratch directory.
    pub statsd_unix: bool,
    /// The admin API's host (default 127.0.0.1; the tests still reach it on 127.0.0.1).
    pub admin_host: Option<&'a str>,
    /// Added inside `http`, e.g. `, auth_token_file: "…"`.
    pub http: &'a str,
    /// Environment variables for the process.
    pub env: &'a [(&'a str, &'a str)],
    /// Whether the admin API answers yet (default: plain `GET /health`).
    pub admin_ready: Option<&'a dyn Fn(SocketAddr) -> bool>,
    /// Set `data_dir:` to `data/` in the scratch directory (see `Sheaf::data_dir`).
    pub data_dir: bool,
    /// Arguments added after `sheaf run --config FILE`.
    pub args: &'a [&'a str],
}

/// What a stopped sheaf leaves for the next one: its scratch directory (config, data_dir,
/// output) and its ports. `relaunch` starts a new process on them.
pub struct Kept {
    pub dir: tempdir::Dir,
    admin: SocketAddr,
    m3msg: SocketAddr,
    statsd: SocketAddr,
    runs: usize,
}

impl Kept {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    /// Starts sheaf again with the same config and ports (after `edit` changes the config
    /// text), `args` added; the output of the last run moves to `out-N.jsonl`.
    pub fn relaunch(self, edit: impl Fn(String) -> String, args: &[&str]) -> Sheaf {
        self.try_relaunch(edit, args).unwrap_or_else(|e| panic!("{}", e.0))
    }

    /// As `relaunch`; `Err((stderr, self))` if sheaf exits at start.
    pub fn try_relaunch(
        mut self,
        edit: impl Fn(String) -> String,
        args: &[&str],
    ) -> Result<Sheaf, Box<(String, Kept)>> {
        let config_path = self.dir.0.join("sheaf.yaml");
        let config = edit(std::fs::read_to_string(&config_path).unwrap());
        std::fs::write(&config_path, config).unwrap();
        let out = self.dir.0.join("out.jsonl");
        if out.exists() {
            std::fs::rename(&out, self.dir.0.join(format!("out-{}.jsonl", self.runs))).unwrap();
        }
        self.runs += 1;
        let dir = std::mem::replace(&mut self.dir, tempdir::Dir(PathBuf::new()));
        let child = spawn(&config_path, &dir.0, args, false, &[]);
        let mut s = Sheaf {
            child: Some(child),
            dir,
            admin: self.admin,
            m3msg: self.m3msg,
            statsd: self.statsd,
            statsd_unix: None,
        };
        match s.wait_ready(None) {
            Ok(()) => Ok(s),
            Err(e) => Err(Box::new((e, s.split().1))),
        }
    }
}

fn spawn(
    config_path: &std::path::Path,
    dir: &std::path::Path,
    args: &[&str],
    stdout_piped: bool,
    env: &[(&str, &str)],
) -> Child {
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stderr.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_sheaf"))
        .args(["run", "--config"])
        .arg(config_path)
        .args(args)
        .stdout(if stdout_piped { Stdio::piped() } else { Stdio::null() })
        .stderr(stderr)
        .env_remove("SHEAF_ADMIN_TOKEN")
        .env_remove("SHEAF_ETCD_PASSWORD")
        .envs(env.iter().copied())
        .spawn()
        .expect("start sheaf")
}

impl Sheaf {
    /// Starts sheaf with two shard cores (unpinned, so it also runs on a 1-CPU machine) and
    /// `extra` YAML appended under `aggregator:` (indented by the caller with 2 spaces).
    pub fn start(tag: &str, aggregator_extra: &str) -> Self {
        Self::start_with(tag, aggregator_extra, "")
    }

    /// `m3msg_server_extra` is added inside `m3msg.server`, e.g. `, max_frame_size: 4096`.
    pub fn start_with(tag: &str, aggregator_extra: &str, m3msg_server_extra: &str) -> Self {
        Self::launch(
            tag,
            Launch { aggregator: aggregator_extra, m3msg_server: m3msg_server_extra, ..Launch::default() },
        )
    }

    pub fn launch(tag: &str, launch: Launch<'_>) -> Self {
        // The ports come from the ephemeral range, where another test's outgoing connection
        // can take one between `free_port` and sheaf's bind: then try again with new ones.
        let mut attempts = 0;
        loop {
            match Self::launch_once(tag, &launch) {
                Ok(s) => return s,
                Err(e) if e.contains("Address already in use") && attempts < 4 => attempts += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn launch_once(tag: &str, launch: &Launch<'_>) -> Result<Self, String> {
        let (aggregator_extra, m3msg_server_extra, top_extra) = (launch.aggregator, launch.m3msg_server, launch.top);
        let (statsd_extra, statsd_tcp_extra, statsd_udp_extra) = (launch.statsd, launch.statsd_tcp, launch.statsd_udp);
        let (admin_host, http_extra) = (launch.admin_host.unwrap_or("127.0.0.1"), launch.http);
        let dir = tempdir::Dir::new(tag);
        let (admin, m3msg, statsd) = (free_port(), free_port(), free_port());
        let out = dir.0.join("out.jsonl");
        let unix_path = launch.statsd_unix.then(|| dir.0.join("statsd.sock"));
        let unix = unix_path.as_ref().map(|p| format!("  unix: {{path: \"{}\"}}\n", p.display())).unwrap_or_default();
        let data_dir =
            if launch.data_dir { format!("data_dir: \"{}\"\n", dir.0.join("data").display()) } else { String::new() };
        let config = format!(
            r#"cores: [0, 1]
pin_cores: false
http: {{listen_address: "{admin_host}:{admin}"{http_extra}}}
m3msg: {{server: {{listen_address: "127.0.0.1:{m3msg}"{m3msg_server_extra}}}}}
statsd:
  udp: {{listen_address: "127.0.0.1:{statsd}"{statsd_udp_extra}}}
  tcp: {{listen_address: "127.0.0.1:{statsd}"{statsd_tcp_extra}}}
{statsd_extra}{unix}aggregator:
  flush:
    handlers:
      - json: {{path: "{out}"}}
{aggregator_extra}
{data_dir}{top_extra}
"#,
            out = out.display()
        );
        let config_path = dir.0.join("sheaf.yaml");
        std::fs::write(&config_path, config).unwrap();
        let child = spawn(&config_path, &dir.0, launch.args, launch.stdout_piped, launch.env);
        let mut s = Sheaf {
            child: Some(child),
            dir,
            admin: ([127, 0, 0, 1], admin).into(),
            m3msg: ([127, 0, 0, 1], m3msg).into(),
            statsd: ([127, 0, 0, 1], statsd).into(),
            statsd_unix: unix_path,
        };
        s.wait_ready(launch.admin_ready).map(|()| s)
    }

    fn wait_ready(&mut self, admin_ready: Option<&dyn Fn(SocketAddr) -> bool>) -> Result<(), String> {
        let started = Instant::now();
        let ready = |admin| admin_ready.map_or_else(|| http_get(admin, "/health").is_ok(), |f| f(admin));
        while !ready(self.admin) {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Err(format!("sheaf exited at start with {status}: {}", self.stderr()));
            }
            assert!(started.elapsed() < Duration::from_secs(30), "sheaf did not come up: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The process id of the running sheaf.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// The process's anonymous resident memory (heap, stacks), from `/proc/PID/status`. Unlike
    /// the whole RSS it leaves out mapped files, such as the debug info a debug build's stall
    /// detector maps when a loaded machine makes a task queue overrun its time slice.
    pub fn anon_resident_bytes(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let kib = status.lines().find_map(|l| l.strip_prefix("RssAnon:")).and_then(|v| v.split_whitespace().next());
        kib.and_then(|k| k.parse::<f64>().ok()).expect("RssAnon in /proc/PID/status") * 1024.0
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("stderr.log")).unwrap_or_default()
    }

    pub fn output_path(&self) -> PathBuf {
        self.dir.0.join("out.jsonl")
    }

    /// Sum of a self-metric over all its label sets that contain every `(k, v)` in `labels`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let body = http_get(self.admin, "/metrics").expect("GET /metrics");
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                let (n, rest) = key.split_once('{').unwrap_or((key, ""));
                (n == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .sum()
    }

    /// Waits until `name` (summed) reaches `want`.
    pub fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64) {
        let what = format!("{name}{labels:?} reaches {want}");
        let got = || self.metric(name, labels);
        wait_until(&what, Duration::from_secs(30), || got() >= want, || format!("stuck at {}", got()));
    }

    /// The scratch directory and ports, for `Kept::relaunch`; the process must have ended.
    fn keep(mut self) -> Kept {
        let dir = std::mem::replace(&mut self.dir, tempdir::Dir(PathBuf::new()));
        let runs = (0..).find(|n| !dir.0.join(format!("out-{n}.jsonl")).exists()).unwrap_or_default();
        Kept { dir, admin: self.admin, m3msg: self.m3msg, statsd: self.statsd, runs }
    }

    /// `stop`, keeping the scratch directory and ports for a relaunch.
    pub fn stop_keep(self) -> (Vec<Flushed>, Kept) {
        let (child, kept) = self.split();
        let out = stop_child(child, &kept.dir.0);
        (parse_output(&out), kept)
    }

    /// `kill9`, keeping the scratch directory and ports for a relaunch.
    pub fn kill9_keep(self) -> (Vec<Flushed>, Kept) {
        let (child, kept) = self.split();
        if let Some(mut c) = child {
            let _ = c.kill();
            let _ = c.wait();
        }
        (read_output(&kept.dir.0.join("out.jsonl")), kept)
    }

    fn split(mut self) -> (Option<Child>, Kept) {
        let child = self.child.take();
        (child, self.keep())
    }

    /// `kill -9`: no shutdown at all; returns what the JSON sink had written.
    pub fn kill9(mut self) -> Vec<Flushed> {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        read_output(&self.output_path())
    }

    /// What the JSON sink has written so far, while sheaf runs (a line it is still writing is
    /// left for the next read).
    pub fn output_so_far(&self) -> Vec<Flushed> {
        let text = std::fs::read_to_string(self.output_path()).unwrap_or_default();
        parse_output(text.rsplit_once('\n').map_or("", |(complete, _)| complete))
    }

    /// `GET /status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        http_get(self.admin, "/status").ok().and_then(|b| serde_json::from_str(&b).ok()).unwrap_or_default()
    }

    /// SIGTERM, wait for exit 0, return every flushed value.
    pub fn stop(self) -> Vec<Flushed> {
        parse_output(&self.stop_raw())
    }

    /// Stops sheaf as `stop` does and returns its JSON sink's output as written.
    pub fn stop_raw(mut self) -> String {
        stop_child(self.child.take(), &self.dir.0)
    }
}

/// SIGTERM, wait for exit 0; the JSON sink's output in `dir`, as written.
fn stop_child(child: Option<Child>, dir: &std::path::Path) -> String {
    let mut child = child.unwrap();
    let stderr = || std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "sheaf did not stop: {}", stderr());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "sheaf exited with {status}: {}", stderr());
    std::fs::read_to_string(dir.join("out.jsonl")).unwrap_or_default()
}

impl Drop for Sheaf {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flushed {
    pub id: String,
    pub time_ns: i64,
    pub value: f64,
    pub policy: String,
    pub agg: String,
}

pub fn read_output(path: &std::path::Path) -> Vec<Flushed> {
    parse_output(&std::fs::read_to_string(path).unwrap_or_default())
}

fn parse_output(text: &str) -> Vec<Flushed> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad json line {l:?}: {e}"));
            Flushed {
                id: v["id"].as_str().unwrap().to_string(),
                time_ns: v["time_ns"].as_i64().unwrap(),
                value: v["value"].as_f64().unwrap_or(f64::NAN),
                policy: v["policy"].as_str().unwrap().to_string(),
                agg: v["agg"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

/// Polls `cond` every 50ms until it holds. After `deadline` it fails, naming `what` and
/// showing `diag()`: waits on a condition, not on a guess of how long the box needs.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool, diag: impl Fn() -> String) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < deadline, "{what}: not within {deadline:?}\n{}", diag());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (id, agg) → sum over all windows, asserting no (id, agg, policy, window) appears twice.
pub fn totals(values: &[Flushed]) -> BTreeMap<(String, String), f64> {
    let mut seen = std::collections::HashSet::new();
    let mut out = BTreeMap::new();
    for v in values {
        assert!(seen.insert((v.id.clone(), v.agg.clone(), v.policy.clone(), v.time_ns)), "window emitted twice: {v:?}");
        *out.entry((v.id.clone(), v.agg.clone())).or_insert(0.0) += v.value;
    }
    out
}

/// `POST path` with a JSON body; returns (status code, body).
pub fn http_post(addr: SocketAddr, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, body.to_string()))
}

/// `method path` with `headers` and a body; returns (status code, head, body).
pub fn http_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    s.write_all(request.as_bytes())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, head.to_string(), body.to_string()))
}

pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    let (head, body) = body.split_once("\r\n\r\n").unwrap_or((&body, ""));
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(head.to_string()));
    }
    Ok(body.to_string())
}
