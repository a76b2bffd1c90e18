//! Real API clients from PyPI, run unchanged against the query service:
//! the vendor's official Python client (`polygon-api-client`) and
//! schemathesis, in a virtualenv under `target/` that
//! `scripts/api-clients.sh` creates once ([`python`]), and the scripts
//! that drive them (`testkit/clients/`, [`script`]).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::workspace_root;

/// The virtualenv's python, with the clients installed (created on first
/// use, by `scripts/api-clients.sh venv`).
///
/// # Panics
/// If the virtualenv cannot be made (PyPI unreachable, no python3).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = Command::new(workspace_root().join("scripts/api-clients.sh"))
                .arg("venv")
                .output()
                .expect("running scripts/api-clients.sh");
            assert!(
                out.status.success(),
                "scripts/api-clients.sh venv failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
        .clone()
}

/// A client script under `testkit/clients/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(name)
}
