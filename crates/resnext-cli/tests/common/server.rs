//! `resnext serve` as a child process on an ephemeral 127.0.0.1 port.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Served {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `resnext serve ARGS --addr 127.0.0.1:0` and waits for its URL line.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut cmd = super::bin();
        cmd.arg("serve")
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .env_remove("RESNEXT_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("resnext serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            if let Some(Ok(l)) = lines.next() {
                tx.send(l).ok();
            }
            // keep reading so the child never blocks on a full pipe
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => l,
            Err(_) => {
                child.kill().ok();
                panic!(
                    "resnext serve printed no URL; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        assert!(addr.starts_with("127.0.0.1:"), "{line}");
        Self {
            child,
            addr,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends a signal (SIGTERM, SIGINT) to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for the process to end (at most `limit`).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "the server did not exit within {limit:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

/// A tiny run trained for one epoch on `resnext data synth` images, in `dir`; returns
/// (run dir, data dir).
pub fn tiny_run(dir: &Path) -> (PathBuf, PathBuf) {
    let data = super::synth(dir, 6);
    let cfg = super::tiny_config(dir, &data, 1, "");
    let run = dir.join("run");
    super::ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    (run, data)
}

/// The image files under `dir`, sorted.
pub fn images(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for class in std::fs::read_dir(dir).unwrap() {
        let class = class.unwrap().path();
        if class.is_dir() {
            for f in std::fs::read_dir(&class).unwrap() {
                out.push(f.unwrap().path());
            }
        }
    }
    out.sort();
    out
}
