//! A real etcd (Debian's `etcd-server`) on free loopback ports with its own data dir,
//! stopped by PID. `restart` keeps the data. `start_tls` serves clients over HTTPS only and
//! requires a client certificate signed by the test CA.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::certs::Certs;
use crate::harness::{free_port, tempdir};

pub struct Etcd {
    child: Option<Child>,
    dir: tempdir::Dir,
    pub client: SocketAddr,
    peer: SocketAddr,
    /// (CA, server certificate, server key, client certificate, client key)
    tls: Option<[std::path::PathBuf; 5]>,
}

impl Etcd {
    pub fn start(tag: &str) -> Self {
        Self::start_with(tag, None)
    }

    /// Clients must speak TLS and present a certificate `certs`' CA signed.
    pub fn start_tls(tag: &str, certs: &Certs) -> Self {
        let files = [&certs.ca, &certs.server_cert, &certs.server_key, &certs.client_cert, &certs.client_key];
        Self::start_with(tag, Some(files.map(|f| f.clone())))
    }

    fn start_with(tag: &str, tls: Option<[std::path::PathBuf; 5]>) -> Self {
        let dir = tempdir::Dir::new(&format!("etcd-{tag}"));
        let client: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let peer: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut etcd = Etcd { child: None, dir, client, peer, tls };
        etcd.spawn(true);
        etcd
    }

    /// Whether etcd answers `/health` as healthy.
    fn healthy(&self) -> bool {
        let Some([ca, _, _, cert, key]) = &self.tls else {
            return crate::harness::http_get(self.client, "/health").is_ok_and(|b| b.contains("true"));
        };
        Command::new("curl")
            .args(["-sS", "--max-time", "2", "--cacert"])
            .arg(ca)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg(format!("https://{}/health", self.client))
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("true"))
    }

    /// Starts etcd and waits until it is healthy. Another test's process may take a free
    /// port between our pick and etcd's bind: etcd then exits, and it is started again (on
    /// new ports if `may_move`, else on the same ones once they are free again).
    fn spawn(&mut self, may_move: bool) {
        for attempt in 0..5 {
            if self.try_spawn() {
                return;
            }
            eprintln!("etcd exited at start (attempt {attempt}); starting it again");
            if may_move {
                // A half-initialised member would remember the old peer URL.
                let _ = std::fs::remove_dir_all(self.dir.0.join("data"));
                self.client = ([127, 0, 0, 1], free_port()).into();
                self.peer = ([127, 0, 0, 1], free_port()).into();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("etcd did not come up; see {}", self.dir.0.join("etcd.log").display());
    }

    /// false if etcd exited before it was healthy.
    fn try_spawn(&mut self) -> bool {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let (client, peer) = (format!("{scheme}://{}", self.client), format!("http://{}", self.peer));
        let log = std::fs::File::create(self.dir.0.join("etcd.log")).unwrap();
        let mut command = Command::new("etcd");
        if let Some([ca, cert, key, _, _]) = &self.tls {
            command.arg("--trusted-ca-file").arg(ca).arg("--cert-file").arg(cert).arg("--key-file").arg(key);
            command.arg("--client-cert-auth");
        }
        let child = command
            .args(["--name", "it", "--data-dir"])
            .arg(self.dir.0.join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("it={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd not found: apt-get install etcd-server (bash .ci/deps test)");
        self.child = Some(child);
        let started = Instant::now();
        while !self.healthy() {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                self.child = None;
                return false;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "etcd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    pub fn endpoint(&self) -> String {
        self.client.to_string()
    }

    /// Stops etcd (SIGTERM by PID, and SIGCONT in case it was paused) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
                libc::kill(c.id() as i32, libc::SIGCONT);
            }
            let _ = c.wait();
        }
    }

    /// Freezes etcd (SIGSTOP): its connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a paused etcd go on (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: i32) {
        if let Some(c) = &self.child {
            // SAFETY: plain kill(2) on our own child's pid, which we have not waited for.
            unsafe {
                libc::kill(c.id() as i32, signal);
            }
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn(false);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
