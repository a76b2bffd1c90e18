//! The local stack's passwords as a config layer: [`load_as`] loads the
//! config like [`crate::load`], then, for each server that the config
//! points at the local stack (a loopback URL on `[local]`'s port for it)
//! and for which neither the file nor the environment sets a user or
//! password, fills in the user and password of the component's [`Role`]
//! from `<local.root>/secrets.toml` (written by `insite services up`).
//!
//! A deployment's config (other hosts or ports), or one that names its own
//! users, is never touched; without a secrets file nothing changes.

use std::path::Path;

use insite_local::{Role, Secrets};

use crate::{load_with_explicit, ConfigError, InsiteConfig};

/// Loads the config (defaults, file, `INSITE_*`) for a component that
/// connects as `role`, with the local stack's passwords where the config
/// leaves them out (see the module docs).
pub fn load_as(file: Option<&Path>, role: Role) -> Result<InsiteConfig, ConfigError> {
    let (mut config, explicit) = load_with_explicit(file)?;
    let path = config.local.local_config().secrets_path();
    if !path.exists() {
        return Ok(config);
    }
    let secrets = Secrets::load(&path).map_err(ConfigError::Secrets)?;
    let set = |key: &str| explicit.contains(key);
    apply(&mut config, &secrets, role, &set);
    Ok(config)
}

/// Fills in `role`'s credentials for every local server whose user and
/// password `set` says the config leaves out.
fn apply(config: &mut InsiteConfig, secrets: &Secrets, role: Role, set: &dyn Fn(&str) -> bool) {
    let local = config.local.local_config();
    if !set("nats.user") && !set("nats.password") && is_local(&config.nats.url, local.nats_port) {
        let c = secrets.nats(role);
        config.nats.user = Some(c.user);
        config.nats.password = Some(c.password);
    }
    if !set("clickhouse.user")
        && !set("clickhouse.password")
        && is_local(&config.clickhouse.url, local.clickhouse_http_port)
    {
        if let Some(c) = secrets.clickhouse(role) {
            config.clickhouse.user = c.user;
            config.clickhouse.password = c.password;
        }
    }
    if !set("redis.user")
        && !set("redis.password")
        && !config.redis.cluster
        && is_local(&config.redis.url, local.redis_port)
        && !config.redis.url.contains('@')
    {
        if let Some(c) = secrets.redis(role) {
            config.redis.user = Some(c.user);
            config.redis.password = Some(c.password);
        }
    }
}

/// Whether every URL in `urls` (comma-separated) is a loopback address on
/// `port`: the local stack's server.
fn is_local(urls: &str, port: u16) -> bool {
    let mut any = false;
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let Some((host, p)) = host_port.rsplit_once(':') else {
            return false;
        };
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
        if !loopback || p.parse::<u16>() != Ok(port) {
            return false;
        }
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_local_servers_are_local() {
        assert!(is_local("nats://127.0.0.1:14222", 14_222));
        assert!(is_local("redis://localhost:16379/0", 16_379));
        assert!(is_local("http://127.0.0.1:18123", 18_123));
        assert!(!is_local("http://127.0.0.1:20401", 18_123));
        assert!(!is_local("nats://nats:4222", 4_222));
        assert!(!is_local(
            "nats://127.0.0.1:14222,nats://10.0.0.2:14222",
            14_222
        ));
        assert!(!is_local("", 14_222));
    }

    #[test]
    fn each_role_gets_its_users_unless_the_config_names_one() {
        let secrets = Secrets::generate().unwrap();
        let mut config = InsiteConfig::default();
        apply(&mut config, &secrets, Role::Query, &|_| false);
        assert_eq!(config.nats.user.as_deref(), Some("query"));
        assert_eq!(config.nats.password.as_deref(), Some(&*secrets.nats.query));
        assert_eq!(config.clickhouse.user, "insite_reader");
        assert_eq!(config.redis.user.as_deref(), Some("query"));

        let mut config = InsiteConfig::default();
        apply(&mut config, &secrets, Role::Ingest, &|key| {
            key == "clickhouse.user"
        });
        assert_eq!(config.nats.user.as_deref(), Some("ingest"));
        assert_eq!(
            config.clickhouse.user, "default",
            "the config's own user stays"
        );
        assert_eq!(config.redis.user, None, "ingest has no Redis user");

        let mut config = InsiteConfig::default();
        config.nats.url = "nats://nats.prod:4222".into();
        apply(&mut config, &secrets, Role::Pipeline, &|_| false);
        assert_eq!(config.nats.user, None, "not the local server");
        assert_eq!(config.clickhouse.user, "insite_writer");
    }

    #[test]
    fn load_as_reads_the_secrets_under_the_local_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(".insite");
        let secrets =
            Secrets::load_or_generate(&insite_local::secrets::secrets_path(&root)).unwrap();
        let file = dir.path().join("insite.toml");
        std::fs::write(
            &file,
            format!("[local]\nroot = {:?}\n", root.display().to_string()),
        )
        .unwrap();
        let config = load_as(Some(&file), Role::Pipeline).unwrap();
        assert_eq!(config.clickhouse.user, "insite_writer");
        assert_eq!(config.clickhouse.password, secrets.clickhouse.writer);
        assert_eq!(
            config.redis.password.as_deref(),
            Some(&*secrets.redis.pipeline)
        );
    }
}
