//! `scripts/fault_proxy.py` for one test: started in front of an upstream (moto), on a
//! free port, stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct FaultProxy {
    pub endpoint: String,
    child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl FaultProxy {
    /// A proxy to `upstream` with the script's flags `args` (`--rate`, `--target`...).
    pub fn start(upstream: &str, args: &[&str]) -> FaultProxy {
        let root = crate::repo_root();
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let log = dir.path().join("faults.jsonl");
        // The venv's interpreter itself (not a shim), so that signals reach it.
        let python = root.join(".venv-moto/bin/python");
        assert!(
            python.exists(),
            "\n\nthe fault proxy runs with moto's venv: run `scripts/moto.sh install` (make test does)\n"
        );
        let child = Command::new(python)
            .arg(root.join("scripts/fault_proxy.py"))
            .args(["--upstream", upstream, "--port", "0", "--port-file"])
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting scripts/fault_proxy.py");
        let started = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().to_string();
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the fault proxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        FaultProxy { endpoint: format!("http://127.0.0.1:{port}"), child, log, _dir: dir }
    }

    /// The proxy's counters: {"requests", "faults": {kind: n}, "by_path_faults", ...}.
    pub fn stats(&self) -> serde_json::Value {
        let out =
            Command::new("curl").args(["-sf", &format!("{}/__fault_proxy__/stats", self.endpoint)]).output().unwrap();
        assert!(out.status.success(), "fault proxy stats unavailable");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
