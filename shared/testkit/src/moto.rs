//! A moto server (a real AWS-protocol server for S3, SQS and DynamoDB) for one test
//! binary, from the project's venv (`scripts/moto.sh install`, run by `make test`).
//! The server is stopped when the test process exits.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[allow(dead_code)] // the endpoint is for tests that print or pass it on
pub struct Moto {
    pub endpoint: String,
}

/// Start (once per test binary) on loopback and point the AWS SDK and GDAL at it.
pub fn moto() -> &'static Moto {
    start("127.0.0.1")
}

/// The same, listening on every interface, so that containers reach it at
/// `host.containers.internal` (the function image tests).
pub fn moto_for_containers() -> &'static Moto {
    start("0.0.0.0")
}

fn start(host: &str) -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let server = crate::repo_root().join(".venv-moto/bin/python");
        let launcher = crate::repo_root().join("scripts/moto_server.py");
        assert!(
            server.exists(),
            "\n\nMOTO IS NOT INSTALLED: these AWS integration tests need a real AWS-protocol server.\n\
             Run `scripts/moto.sh install` (make test does it) to create {}.\n\n",
            server.display()
        );
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // A watcher shell stops the server when this test process goes away.
        let script = format!(
            "\"{}\" \"{}\" -H {host} -p {port} >/dev/null 2>&1 & m=$!; while kill -0 {} 2>/dev/null; do sleep 0.5; done; kill $m",
            server.display(),
            launcher.display(),
            std::process::id()
        );
        // Not waited for: the watcher outlives the tests by design and exits with them.
        #[allow(clippy::zombie_processes)]
        let _watcher =
            Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().expect("starting moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("STRATUS_AWS_ENDPOINT", endpoint.as_str()),
        ] {
            std::env::set_var(k, v);
        }
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_SESSION_TOKEN");
        Moto { endpoint }
    })
}
