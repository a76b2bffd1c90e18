//! The local stack's passwords: generated from the OS's random source at the
//! first `insite services up` into `<root>/secrets.toml` (mode 0600, only
//! its owner can read it), reused by every later start, and read by every
//! `insite` command whose config points at the local servers.
//!
//! Each insite component connects as its own [`Role`], and each role maps
//! to one user per server ([`Secrets::nats`], [`Secrets::clickhouse`],
//! [`Secrets::redis`]); what each user may do is in [`crate::security`].
//! Servers get the passwords as hashes where they can check one
//! (ClickHouse `password_sha256_hex`, Redis ACL `#<sha256>`); NATS gets
//! them in its generated config, which is 0600 like this file.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::LocalError;

/// The file name of the secrets under the local root.
pub const SECRETS_FILE: &str = "secrets.toml";

/// The secrets file of the local stack rooted at `root`.
pub fn secrets_path(root: &Path) -> PathBuf {
    root.join(SECRETS_FILE)
}

/// Who connects: each insite component, an analyst, or the local admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything on every server: the test harness's set-up and clean-up,
    /// and an operator's `redis-cli` / `clickhouse-client`.
    Admin,
    /// `insite ingest`: publishes raw input.
    Ingest,
    /// `insite pipeline run`, `replay`, `backfill`, `migrate`: consumes raw
    /// input, writes ClickHouse and Redis, publishes results.
    Pipeline,
    /// `insite query serve`: reads results.
    Query,
    /// A downstream service reading results from NATS.
    Subscriber,
    /// A person reading ClickHouse and Redis.
    Analyst,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Self::Admin,
        Self::Ingest,
        Self::Pipeline,
        Self::Query,
        Self::Subscriber,
        Self::Analyst,
    ];

    /// Its NATS user (analysts read results as subscribers).
    pub fn nats_user(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Ingest => "ingest",
            Self::Pipeline => "pipeline",
            Self::Query => "query",
            Self::Subscriber | Self::Analyst => "subscriber",
        }
    }

    /// Its ClickHouse user, if it has one.
    pub fn clickhouse_user(self) -> Option<&'static str> {
        match self {
            Self::Admin => Some("default"),
            Self::Pipeline => Some("insite_writer"),
            Self::Query => Some("insite_reader"),
            Self::Analyst => Some("insite_analyst"),
            Self::Ingest | Self::Subscriber => None,
        }
    }

    /// Its Redis user, if it has one.
    pub fn redis_user(self) -> Option<&'static str> {
        match self {
            Self::Admin => Some("admin"),
            Self::Pipeline => Some("pipeline"),
            Self::Query => Some("query"),
            Self::Analyst => Some("analyst"),
            Self::Ingest | Self::Subscriber => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Admin => "admin",
            Self::Ingest => "ingest",
            Self::Pipeline => "pipeline",
            Self::Query => "query",
            Self::Subscriber => "subscriber",
            Self::Analyst => "analyst",
        })
    }
}

/// A user and its password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name.
    pub user: String,
    /// The password, in clear.
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Passwords of the NATS users.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSecrets {
    /// `admin`.
    pub admin: String,
    /// `ingest`.
    pub ingest: String,
    /// `pipeline`.
    pub pipeline: String,
    /// `query`.
    pub query: String,
    /// `subscriber`.
    pub subscriber: String,
}

/// Passwords of the ClickHouse users.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseSecrets {
    /// `default` (the admin).
    pub admin: String,
    /// `insite_writer`.
    pub writer: String,
    /// `insite_reader`.
    pub reader: String,
    /// `insite_analyst`.
    pub analyst: String,
}

/// Passwords of the Redis users.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSecrets {
    /// `admin`.
    pub admin: String,
    /// `pipeline`.
    pub pipeline: String,
    /// `query`.
    pub query: String,
    /// `analyst`.
    pub analyst: String,
}

/// Every password of the local stack.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// NATS.
    pub nats: NatsSecrets,
    /// ClickHouse.
    pub clickhouse: ClickHouseSecrets,
    /// Redis.
    pub redis: RedisSecrets,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

const HEADER: &str = "\
# The local stack's passwords, generated by `insite services up` (or the
# test harness) from the OS's random source. Only its owner may read this
# file; never commit it. Delete it, and the servers' data, to start over.
";

impl Secrets {
    /// Fresh random passwords (24 bytes from the OS each, hex).
    pub fn generate() -> Result<Self, LocalError> {
        Ok(Self {
            nats: NatsSecrets {
                admin: random_password()?,
                ingest: random_password()?,
                pipeline: random_password()?,
                query: random_password()?,
                subscriber: random_password()?,
            },
            clickhouse: ClickHouseSecrets {
                admin: random_password()?,
                writer: random_password()?,
                reader: random_password()?,
                analyst: random_password()?,
            },
            redis: RedisSecrets {
                admin: random_password()?,
                pipeline: random_password()?,
                query: random_password()?,
                analyst: random_password()?,
            },
        })
    }

    /// Reads `path`; refuses a file that others than its owner can read.
    pub fn load(path: &Path) -> Result<Self, LocalError> {
        let metadata = fs::metadata(path)
            .map_err(|e| LocalError::io(format!("reading {}", path.display()), e))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(LocalError::Secrets {
                path: path.display().to_string(),
                detail: format!(
                    "its mode is {mode:o}: others can read it (chmod 600 it, or delete it to generate new ones)"
                ),
            });
        }
        let text = fs::read_to_string(path)
            .map_err(|e| LocalError::io(format!("reading {}", path.display()), e))?;
        toml::from_str(&text).map_err(|e| LocalError::Secrets {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
    }

    /// Reads `path`, or when it does not exist generates new secrets and
    /// writes them there, mode 0600.
    pub fn load_or_generate(path: &Path) -> Result<Self, LocalError> {
        if path.exists() {
            return Self::load(path);
        }
        let secrets = Self::generate()?;
        secrets.write(path)?;
        tracing::info!(path = %path.display(), "generated the local stack's secrets");
        Ok(secrets)
    }

    /// Writes to `path`, created with mode 0600 (an existing file is
    /// replaced by a new one).
    pub fn write(&self, path: &Path) -> Result<(), LocalError> {
        let text = toml::to_string(self).map_err(|e| LocalError::Secrets {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        write_private(path, &format!("{HEADER}\n{text}"))
    }

    /// `role`'s NATS user and password.
    pub fn nats(&self, role: Role) -> Credential {
        let n = &self.nats;
        let password = match role {
            Role::Admin => &n.admin,
            Role::Ingest => &n.ingest,
            Role::Pipeline => &n.pipeline,
            Role::Query => &n.query,
            Role::Subscriber | Role::Analyst => &n.subscriber,
        };
        Credential {
            user: role.nats_user().to_owned(),
            password: password.clone(),
        }
    }

    /// `role`'s ClickHouse user and password, if it has one.
    pub fn clickhouse(&self, role: Role) -> Option<Credential> {
        let c = &self.clickhouse;
        let password = match role {
            Role::Admin => &c.admin,
            Role::Pipeline => &c.writer,
            Role::Query => &c.reader,
            Role::Analyst => &c.analyst,
            Role::Ingest | Role::Subscriber => return None,
        };
        Some(Credential {
            user: role.clickhouse_user()?.to_owned(),
            password: password.clone(),
        })
    }

    /// `role`'s Redis user and password, if it has one.
    pub fn redis(&self, role: Role) -> Option<Credential> {
        let r = &self.redis;
        let password = match role {
            Role::Admin => &r.admin,
            Role::Pipeline => &r.pipeline,
            Role::Query => &r.query,
            Role::Analyst => &r.analyst,
            Role::Ingest | Role::Subscriber => return None,
        };
        Some(Credential {
            user: role.redis_user()?.to_owned(),
            password: password.clone(),
        })
    }
}

/// 24 bytes from the OS's random source, as 48 hex digits (safe in URLs
/// and config files without quoting).
pub fn random_password() -> Result<String, LocalError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| LocalError::Secrets {
        path: String::new(),
        detail: format!("the OS's random source failed: {e}"),
    })?;
    Ok(hex(&bytes))
}

/// The SHA-256 of `password`, in lower-case hex (what ClickHouse's
/// `password_sha256_hex` and Redis's `#<hash>` ACL rule hold).
pub fn sha256_hex(password: &str) -> String {
    hex(&Sha256::digest(password.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Writes `contents` to a new file at `path` that only its owner can read
/// or write (0600 from its creation; an existing file is replaced).
pub fn write_private(path: &Path, contents: &str) -> Result<(), LocalError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| LocalError::io(format!("creating {}", dir.display()), e))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| LocalError::io(format!("creating {}", tmp.display()), e))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| LocalError::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| LocalError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = secrets_path(dir.path());
        let first = Secrets::load_or_generate(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = Secrets::load_or_generate(&path).unwrap();
        assert!(first == again, "a second start reuses the secrets");
        assert_ne!(first.nats.ingest, first.nats.pipeline);
        assert_eq!(first.nats.ingest.len(), 48);
        assert!(!format!("{first:?}").contains(&first.nats.ingest));
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = secrets_path(dir.path());
        Secrets::generate().unwrap().write(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Secrets::load(&path).unwrap_err();
        assert!(err.to_string().contains("others can read it"), "{err}");
    }

    #[test]
    fn sha256_matches_a_known_digest() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn roles_map_to_their_users() {
        let s = Secrets::generate().unwrap();
        assert_eq!(s.nats(Role::Ingest).user, "ingest");
        assert_eq!(s.nats(Role::Analyst).user, "subscriber");
        assert_eq!(s.clickhouse(Role::Pipeline).unwrap().user, "insite_writer");
        assert_eq!(s.clickhouse(Role::Ingest), None);
        assert_eq!(s.redis(Role::Query).unwrap().password, s.redis.query);
    }
}
