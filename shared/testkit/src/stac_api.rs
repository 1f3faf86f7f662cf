//! A real STAC API server for one test binary: stac-fastapi-pgstac on PostgreSQL with
//! PostGIS and pgstac, started by `scripts/stac-api.sh` (which installs what is missing)
//! in a temporary directory on 127.0.0.1, and stopped when the test process exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

pub struct StacApi {
    /// The API's root URL, `http://127.0.0.1:PORT`.
    pub url: String,
    dir: PathBuf,
    /// Loads are serialised (pgstac partitions a collection on its first load).
    loading: Mutex<()>,
}

fn script() -> PathBuf {
    crate::repo_root().join("scripts/stac-api.sh")
}

/// The server of this test binary (started on first use).
pub fn stac_api() -> &'static StacApi {
    static API: OnceLock<StacApi> = OnceLock::new();
    API.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("stratus-stac-api-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = Command::new(script())
            .args(["start", dir.to_str().unwrap(), &port.to_string()])
            .stdin(Stdio::null())
            .output()
            .expect("running scripts/stac-api.sh");
        assert!(
            out.status.success(),
            "\n\nTHE STAC API SERVER DID NOT START: these tests need stac-fastapi-pgstac on PostgreSQL.\n\
             `scripts/stac-api.sh start` said:\n{}\n",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // A watcher shell stops the server and the database when this process goes away.
        let watch = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \"{script}\" stop \"{dir}\"; rm -rf \"{dir}\"",
            pid = std::process::id(),
            script = script().display(),
            dir = dir.display()
        );
        #[allow(clippy::zombie_processes)] // outlives the tests by design
        let _watcher = Command::new("sh")
            .arg("-c")
            .arg(watch)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the STAC API's watcher");
        StacApi { url, dir, loading: Mutex::new(()) }
    })
}

impl StacApi {
    /// Load Collections and items (files as `scripts/stac_api_load.py` takes them).
    pub fn load(&self, files: &[&Path]) {
        let _one_at_a_time = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        let out = Command::new(script())
            .arg("load")
            .arg(&self.dir)
            .args(files)
            .output()
            .expect("running scripts/stac-api.sh load");
        assert!(out.status.success(), "loading {files:?} into the STAC API: {}", String::from_utf8_lossy(&out.stderr));
    }
}
