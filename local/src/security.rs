//! What each user of the local servers may do: the generated NATS
//! authorization block, Redis ACL file and ClickHouse `users.xml`.
//!
//! | server | user | may |
//! |---|---|---|
//! | NATS | `ingest` | publish raw input (`md.trades.>`, `md.quotes.>`, `social.posts.>`) and its dead letters (`insite.dlq.ingest`), set up streams, read a stream's last message; receive replies on `_INBOX.>` |
//! | | `pipeline` | publish `insite.>` and the clock ticks (`md.clock.>`, `social.clock.>`), set up streams, run consumers, ack; receive on `_INBOX.>` |
//! | | `query` | subscribe `insite.>`, `md.quotes.>`, `md.trades.>`, `_INBOX.>`; publish only `insite.dlq.query` |
//! | | `subscriber` | subscribe `insite.>` except `insite.dlq.>`; publish nothing |
//! | | `admin` | everything (set-up, clean-up, operators) |
//! | ClickHouse | `insite_writer` | the pipeline and migrations: reads, inserts, DDL |
//! | | `insite_reader` | the query service: `readonly = 2` (reads; per-query settings; no writes, no DDL) |
//! | | `insite_analyst` | analysts: `readonly = 1` (reads only, settings fixed) |
//! | | `default` | the admin, with a password |
//! | Redis | `pipeline` | read and write keys under the prefix, nothing dangerous |
//! | | `query` | read keys under the prefix, and fill the cache (`SET`, `ZADD`, `EXPIRE`) |
//! | | `analyst` | read keys under the prefix only |
//! | | `admin` | everything; the `default` user is off |
//!
//! Every user is reachable from loopback only (the servers listen on
//! 127.0.0.1). With [`Security::SecuredForTests`] the same rules hold under
//! any one-token subject prefix and for the harness's `t_*` keys, because
//! every test gets its own prefixes on the shared servers.

use crate::secrets::{sha256_hex, Role, Secrets};

/// Whether the local servers require users and how names are scoped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// No users: anyone on loopback may do anything (the benchmarks' own
    /// servers).
    Open,
    /// Users and permissions as in the module docs, for the production
    /// names (unprefixed subjects, keys under `insite:`).
    Secured,
    /// As [`Security::Secured`], with every subject rule also under any
    /// one-token prefix (`t_<id>.md.>`) and Redis keys also under `t_*`:
    /// the test harness, where each test has its own prefixes.
    SecuredForTests,
}

impl Security {
    /// Whether servers require users.
    pub fn is_secured(&self) -> bool {
        !matches!(self, Self::Open)
    }

    fn prefixed(&self) -> bool {
        matches!(self, Self::SecuredForTests)
    }
}

/// One NATS user's subject permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsPermissions {
    /// Subjects it may publish to.
    pub publish_allow: &'static [&'static str],
    /// Subjects it may subscribe to.
    pub subscribe_allow: &'static [&'static str],
    /// Subjects it may not subscribe to, though `subscribe_allow` covers them.
    pub subscribe_deny: &'static [&'static str],
}

/// What ingest publishes: raw input, its dead letters, and the JetStream
/// API calls of stream set-up (`ensure_streams`: every stage that writes
/// sets up the streams at start-up) and of reading a stream's last message.
const INGEST_PUBLISH: &[&str] = &[
    "md.trades.>",
    "md.quotes.>",
    "social.posts.>",
    "insite.dlq.ingest",
    "$JS.API.INFO",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.INFO.*",
    "$JS.API.STREAM.CREATE.*",
    "$JS.API.STREAM.UPDATE.*",
    "$JS.API.STREAM.MSG.GET.*",
    "$JS.API.DIRECT.GET.>",
];

/// What the pipeline publishes: results and dead letters, the clock ticks
/// of idle inputs, stream set-up, its consumers (create, pull, info),
/// message gets, acknowledgements and flow control.
const PIPELINE_PUBLISH: &[&str] = &[
    "insite.>",
    "md.clock.>",
    "social.clock.>",
    "$JS.API.INFO",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.INFO.*",
    "$JS.API.STREAM.CREATE.*",
    "$JS.API.STREAM.UPDATE.*",
    "$JS.API.CONSUMER.>",
    "$JS.API.STREAM.MSG.GET.*",
    "$JS.API.DIRECT.GET.>",
    "$JS.ACK.>",
    "$JS.FC.>",
];

/// The subject permissions of `role`'s NATS user (`None`: the admin, who
/// may do everything).
///
/// Ingest may publish raw events (`md.trades.>`, `md.quotes.>`,
/// `social.posts.>`) but not the clock ticks (`md.clock.>`,
/// `social.clock.>`), which only the pipeline writes.
pub fn nats_permissions(role: Role) -> Option<NatsPermissions> {
    match role {
        Role::Admin => None,
        Role::Ingest => Some(NatsPermissions {
            publish_allow: INGEST_PUBLISH,
            subscribe_allow: &["_INBOX.>"],
            subscribe_deny: &[],
        }),
        Role::Pipeline => Some(NatsPermissions {
            publish_allow: PIPELINE_PUBLISH,
            subscribe_allow: &["_INBOX.>"],
            subscribe_deny: &[],
        }),
        Role::Query => Some(NatsPermissions {
            publish_allow: &["insite.dlq.query"],
            subscribe_allow: &["insite.>", "md.quotes.>", "md.trades.>", "_INBOX.>"],
            subscribe_deny: &[],
        }),
        Role::Subscriber | Role::Analyst => Some(NatsPermissions {
            publish_allow: &[],
            subscribe_allow: &["insite.>"],
            subscribe_deny: &["insite.dlq.>"],
        }),
    }
}

/// `subjects` as a NATS config list; with `prefixed`, every insite subject
/// also under any one-token prefix (JetStream's `$JS.` and `_INBOX.` are
/// never prefixed).
fn subject_list(subjects: &[&str], prefixed: bool) -> String {
    let mut out = Vec::new();
    for s in subjects {
        out.push(format!("{s:?}"));
        if prefixed && !s.starts_with('$') && !s.starts_with("_INBOX") {
            out.push(format!("\"*.{s}\""));
        }
    }
    format!("[{}]", out.join(", "))
}

/// The NATS config of a secured server (an `authorization` block with one
/// user per role). The passwords are in it, so it is written 0600.
pub fn nats_config(secrets: &Secrets, security: &Security) -> String {
    let prefixed = security.prefixed();
    let mut users = Vec::new();
    for role in [
        Role::Admin,
        Role::Ingest,
        Role::Pipeline,
        Role::Query,
        Role::Subscriber,
    ] {
        let credential = secrets.nats(role);
        let mut user = format!(
            "    {{ user: {:?}, password: {:?}",
            credential.user, credential.password
        );
        if let Some(p) = nats_permissions(role) {
            let publish = if p.publish_allow.is_empty() {
                "{ deny: [\">\"] }".to_owned()
            } else {
                format!("{{ allow: {} }}", subject_list(p.publish_allow, prefixed))
            };
            let mut subscribe = format!("allow: {}", subject_list(p.subscribe_allow, prefixed));
            if !p.subscribe_deny.is_empty() {
                subscribe.push_str(&format!(
                    ", deny: {}",
                    subject_list(p.subscribe_deny, prefixed)
                ));
            }
            user.push_str(&format!(
                ",\n      permissions: {{\n        publish: {publish}\n        subscribe: {{ {subscribe} }}\n      }}"
            ));
        }
        user.push_str(" }");
        users.push(user);
    }
    format!(
        "# Generated by insite: users and subject permissions of the local NATS\n\
         # (see insite_local::security). Holds passwords: mode 0600.\n\
         authorization {{\n  timeout: 2\n  users = [\n{}\n  ]\n}}\n",
        users.join("\n")
    )
}

/// The Redis ACL file of a secured server: `default` off, one user per
/// role, passwords as SHA-256 (`#<hex>`).
pub fn redis_acl(secrets: &Secrets, security: &Security) -> String {
    let keys = |read_only: bool| {
        let mut patterns = vec!["insite:*"];
        if security.prefixed() {
            patterns.push("t_*");
        }
        let sigil = if read_only { "%R~" } else { "~" };
        patterns
            .iter()
            .map(|p| format!("{sigil}{p}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let hash = |role: Role| {
        secrets
            .redis(role)
            .map(|c| format!("#{}", sha256_hex(&c.password)))
            .unwrap_or_default()
    };
    let base = "resetchannels -@all +@connection +ping";
    format!(
        "user default off resetkeys -@all\n\
         user admin on {admin} ~* &* +@all\n\
         user pipeline on {pipeline} resetkeys {rw} {base} +@read +@write -@dangerous\n\
         user query on {query} resetkeys {rw} {base} +@read -@dangerous +set +zadd +expire\n\
         user analyst on {analyst} resetkeys {ro} {base} +@read -@dangerous\n",
        admin = hash(Role::Admin),
        pipeline = hash(Role::Pipeline),
        query = hash(Role::Query),
        analyst = hash(Role::Analyst),
        rw = keys(false),
        ro = keys(true),
    )
}

/// The `default` settings profile of the local (single) ClickHouse server.
pub const SINGLE_SERVER_PROFILE: &str = "      <max_memory_usage>4000000000</max_memory_usage>
      <load_balancing>random</load_balancing>
";

/// The ClickHouse `users.xml` of the local server. Secured: `default` (the
/// admin), `insite_writer`, `insite_reader` (`readonly = 2`) and
/// `insite_analyst` (`readonly = 1`), each with a SHA-256 password and
/// loopback networks. Open: `default` without a password.
///
/// `default_profile` is the body of the `default` settings profile (the
/// one `default` and the writer use): [`SINGLE_SERVER_PROFILE`] for the
/// local server, the cluster's own for a replica of the local cluster.
pub fn clickhouse_users(secrets: Option<&Secrets>, default_profile: &str) -> String {
    let user = |name: &str, password: &str, profile: &str| {
        format!(
            "    <{name}>\n      {password}\n      <networks>\n        <ip>127.0.0.1</ip>\n        <ip>::1</ip>\n      </networks>\n      <profile>{profile}</profile>\n      <quota>default</quota>\n    </{name}>\n"
        )
    };
    let sha = |role: Role| {
        secrets
            .and_then(|s| s.clickhouse(role))
            .map(|c| {
                format!(
                    "<password_sha256_hex>{}</password_sha256_hex>",
                    sha256_hex(&c.password)
                )
            })
            .unwrap_or_default()
    };
    let users = match secrets {
        None => user("default", "<password></password>", "default"),
        Some(_) => [
            user("default", &sha(Role::Admin), "default"),
            user("insite_writer", &sha(Role::Pipeline), "default"),
            user("insite_reader", &sha(Role::Query), "insite_reader"),
            user("insite_analyst", &sha(Role::Analyst), "insite_analyst"),
        ]
        .concat(),
    };
    let what = if secrets.is_some() {
        "the admin (default), the pipeline's writer, the query service's and analysts' read-only users, SHA-256 passwords, loopback only"
    } else {
        "the default user, loopback only, no password"
    };
    format!(
        r#"<?xml version="1.0"?>
<!-- Generated by insite: {what}. -->
<yandex>
  <profiles>
    <default>
{default_profile}    </default>
    <readonly>
      <readonly>1</readonly>
    </readonly>
    <insite_reader>
      <readonly>2</readonly>
      <max_memory_usage>2000000000</max_memory_usage>
      <max_execution_time>30</max_execution_time>
    </insite_reader>
    <insite_analyst>
      <readonly>1</readonly>
      <max_memory_usage>2000000000</max_memory_usage>
      <max_execution_time>300</max_execution_time>
    </insite_analyst>
  </profiles>
  <users>
{users}  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries>
        <errors>0</errors>
        <result_rows>0</result_rows>
        <read_rows>0</read_rows>
        <execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_may_not_publish_results_and_subscribers_nothing() {
        let ingest = nats_permissions(Role::Ingest).unwrap();
        assert!(ingest.publish_allow.contains(&"md.trades.>"));
        assert!(!ingest
            .publish_allow
            .iter()
            .any(|s| s.starts_with("insite.>")));
        let subscriber = nats_permissions(Role::Subscriber).unwrap();
        assert!(subscriber.publish_allow.is_empty());
        assert_eq!(subscriber.subscribe_allow, ["insite.>"]);
    }

    #[test]
    fn configs_hold_hashes_not_passwords_where_the_server_can() {
        let secrets = Secrets::generate().unwrap();
        let acl = redis_acl(&secrets, &Security::Secured);
        assert!(!acl.contains(&secrets.redis.query));
        assert!(acl.contains(&sha256_hex(&secrets.redis.query)));
        assert!(acl.starts_with("user default off"));
        let users = clickhouse_users(Some(&secrets), SINGLE_SERVER_PROFILE);
        assert!(!users.contains(&secrets.clickhouse.writer));
        assert!(users.contains(&sha256_hex(&secrets.clickhouse.writer)));
        let nats = nats_config(&secrets, &Security::SecuredForTests);
        assert!(nats.contains("\"*.md.trades.>\""), "{nats}");
        assert!(!nats.contains("\"*.$JS"), "{nats}");
        assert!(!nats_config(&secrets, &Security::Secured).contains("\"*."));
    }
}
