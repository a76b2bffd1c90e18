//! The config of the insite processes of the local cluster (`insite cluster
//! up`): the user's config with its connections pointed at the cluster.

use std::path::PathBuf;

use insite_local::cluster::ClusterConfig;

use crate::InsiteConfig;

/// One mebibyte.
const MIB: i64 = 1 << 20;

impl InsiteConfig {
    /// This config with its servers replaced by the local cluster's: all
    /// three NATS servers as seeds and every stream at 3 replicas (with byte
    /// limits that fit three replicas on one disk), every Redis node as a
    /// seed in cluster mode, ClickHouse through the load balancer (any
    /// healthy server) on the cluster's `insite` database, one timely worker
    /// per pipeline process (the machine has two cores).
    pub fn for_cluster(&self, cluster: &ClusterConfig) -> InsiteConfig {
        let mut config = self.clone();
        config.nats.url = cluster.nats_urls();
        let streams = &mut config.nats.streams;
        streams.replicas = 3;
        streams.raw_max_bytes = 256 * MIB;
        streams.derived_max_bytes = 128 * MIB;
        streams.dlq_max_bytes = 32 * MIB;
        config.redis.url = cluster.redis_urls();
        config.redis.cluster = true;
        config.clickhouse.url = cluster.clickhouse_url();
        config.clickhouse.database = "insite".into();
        // A staged backfill keeps its staging database on one server.
        config.clickhouse.staging_url = cluster.clickhouse_node_url(0);
        // Acknowledged once both replicas of the shard hold it; a quorum
        // insert waits for the second replica, and ClickHouse 18.16 runs
        // one at a time per table and shard, so the writers flush less
        // often and retry sooner.
        config.clickhouse.insert_quorum = 2;
        config.clickhouse.request_timeout_ms = config.clickhouse.request_timeout_ms.max(60_000);
        let writer = &mut config.pipeline.clickhouse_writer;
        writer.max_age_ms = writer.max_age_ms.max(1_000);
        writer.retry_max_ms = writer.retry_max_ms.min(1_000);
        config.pipeline.workers = 1;
        config.query.pipeline = config.pipeline.name.clone();
        config
    }

    /// Where [`InsiteConfig::for_cluster`]'s file is kept.
    pub fn cluster_config_file(cluster: &ClusterConfig) -> PathBuf {
        cluster.root.join("insite.toml")
    }
}

impl crate::LocalSection {
    /// The local cluster under this section's root (`<root>/cluster`,
    /// tools shared with `insite services`).
    pub fn cluster_config(&self) -> ClusterConfig {
        ClusterConfig::new(self.root.join("cluster"), self.root.join("tools"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_config_points_at_every_node() {
        let cluster = ClusterConfig::new("/tmp/c", "/tmp/t");
        let config = InsiteConfig::default().for_cluster(&cluster);
        assert_eq!(config.nats.url.split(',').count(), 3);
        assert_eq!(config.nats.streams.replicas, 3);
        assert!(config.redis.cluster);
        assert_eq!(config.redis.url.split(',').count(), 6);
        assert_eq!(config.clickhouse.url, cluster.clickhouse_url());
        assert_eq!(
            config.clickhouse.staging_url(),
            cluster.clickhouse_node_url(0)
        );
        // Three replicas of every stream fit the servers' file store.
        assert!(config.nats.streams.reserved_bytes() < 1 << 30);
    }
}
