//! `insite services up`, `status` and `down` as a user runs them: real
//! servers on free ports under a temporary folder.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longer than any step takes (an install is done before this test runs),
/// short enough that a hang fails the test instead of the CI run.
const STEP_DEADLINE: Duration = Duration::from_secs(180);

/// Runs `command` to its end, or kills it at [`STEP_DEADLINE`] and fails.
fn run(mut command: Command) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("running insite");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > STEP_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} still running after {STEP_DEADLINE:?}: {}{}",
                std::fs::read_to_string(&out).unwrap_or_default(),
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

fn insite_command(root: &std::path::Path, ports: &[u16], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_insite"));
    command
        .args(args)
        .env("INSITE_LOCAL__ROOT", root)
        .env("INSITE_LOCAL__NATS_PORT", ports[0].to_string())
        .env("INSITE_LOCAL__REDIS_PORT", ports[1].to_string())
        .env("INSITE_LOCAL__CLICKHOUSE_HTTP_PORT", ports[2].to_string())
        .env("INSITE_LOCAL__CLICKHOUSE_TCP_PORT", ports[3].to_string())
        .env("RUST_BACKTRACE", "0");
    command
}

fn insite(root: &std::path::Path, ports: &[u16], args: &[&str]) -> Output {
    run(insite_command(root, ports, args))
}

/// Stops the servers `services up` started, however the test ends.
struct Down<'a> {
    root: &'a std::path::Path,
    ports: &'a [u16],
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = insite_command(self.root, self.ports, &["services", "down"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn up_status_down() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    // Reuse the workspace's installed tools instead of installing again.
    let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.insite/tools");
    std::fs::create_dir_all(&root).unwrap();
    if tools.exists() {
        std::os::unix::fs::symlink(std::fs::canonicalize(&tools).unwrap(), root.join("tools"))
            .unwrap();
    }
    // Free ports, with the interserver port (native + 9) free as well.
    let ports = loop {
        let p = insite_local::free_ports(4).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", p[3] + 9)).is_ok() {
            break p;
        }
    };

    let _down = Down {
        root: &root,
        ports: &ports,
    };
    let up = insite(&root, &ports, &["services", "up"]);
    assert!(up.status.success(), "up failed: {}", text(&up));

    // Secured: the passwords are in a file only its owner can read...
    let secrets = root.join("secrets.toml");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&secrets).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "{}", secrets.display());
    let generated = std::fs::read_to_string(&secrets).unwrap();
    // ...which every command picks up: `migrate` connects as the writer.
    let migrate = insite(&root, &ports, &["migrate"]);
    assert!(
        migrate.status.success(),
        "migrate failed: {}",
        text(&migrate)
    );
    // A password the config gives itself wins, and a wrong one is refused.
    let mut wrong = insite_command(&root, &ports, &["migrate"]);
    wrong
        .env("INSITE_CLICKHOUSE__USER", "insite_writer")
        .env("INSITE_CLICKHOUSE__PASSWORD", "wrong");
    let refused = run(wrong);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("Wrong password"),
        "{}",
        text(&refused)
    );

    let status = insite(&root, &ports, &["services", "status"]);
    let out = text(&status);
    assert!(status.status.success(), "status failed: {out}");
    assert_eq!(out.matches("healthy").count(), 3, "{out}");
    for (name, port) in [
        ("nats", ports[0]),
        ("redis", ports[1]),
        ("clickhouse", ports[2]),
    ] {
        assert!(
            out.contains(name) && out.contains(&format!("127.0.0.1:{port}")),
            "{out}"
        );
    }

    // Idempotent: a second `up` starts nothing new, keeps the secrets.
    let again = insite(&root, &ports, &["services", "up"]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(&secrets).unwrap(), generated);

    let down = insite(&root, &ports, &["services", "down"]);
    let out = text(&down);
    assert!(down.status.success(), "{out}");
    assert_eq!(out.matches("stopped (pid").count(), 3, "{out}");

    let status = insite(&root, &ports, &["services", "status"]);
    assert!(
        !status.status.success(),
        "status must fail with every server down"
    );
    assert_eq!(
        text(&status).matches(" down").count(),
        3,
        "{}",
        text(&status)
    );
    for port in &ports[..3] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", *port)).is_err(),
            "port {port} still open"
        );
    }
}
