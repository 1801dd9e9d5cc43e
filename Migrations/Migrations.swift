// The SQL files in this folder are embedded into the binary (Package.swift lists each with
// `.embedInCode`), so `relay` needs no files at run time. Add a new file here and in Package.swift;
// RelayIntegrationTests checks that every .sql file in this folder is registered.

/// One numbered schema migration.
public struct Migration: Sendable {
    /// The number the file name starts with; applied in ascending order.
    public let version: Int
    /// The file name, for logs and the schema_migrations table.
    public let name: String
    /// The SQL text.
    public let sql: String
}

/// Every migration, in order.
public let allMigrations: [Migration] = [
    Migration(version: 1, name: "0001_init.sql", sql: String(decoding: PackageResources._001_init_sql, as: UTF8.self)),
    Migration(version: 2, name: "0002_smtp_auth_failures.sql",
              sql: String(decoding: PackageResources._002_smtp_auth_failures_sql, as: UTF8.self)),
    Migration(version: 3, name: "0003_message_log_indexes.sql",
              sql: String(decoding: PackageResources._003_message_log_indexes_sql, as: UTF8.self)),
    Migration(version: 4, name: "0004_logs_and_stats.sql",
              sql: String(decoding: PackageResources._004_logs_and_stats_sql, as: UTF8.self)),
    Migration(version: 5, name: "0005_suppressions.sql",
              sql: String(decoding: PackageResources._005_suppressions_sql, as: UTF8.self)),
    Migration(version: 6, name: "0006_bounces_and_reputation.sql",
              sql: String(decoding: PackageResources._006_bounces_and_reputation_sql, as: UTF8.self)),
    Migration(version: 7, name: "0007_webhooks.sql",
              sql: String(decoding: PackageResources._007_webhooks_sql, as: UTF8.self)),
    Migration(version: 8, name: "0008_domain_dkim.sql",
              sql: String(decoding: PackageResources._008_domain_dkim_sql, as: UTF8.self)),
    Migration(version: 9, name: "0009_templates.sql",
              sql: String(decoding: PackageResources._009_templates_sql, as: UTF8.self)),
    Migration(version: 10, name: "0010_scheduling.sql",
              sql: String(decoding: PackageResources._010_scheduling_sql, as: UTF8.self)),
    Migration(version: 11, name: "0011_nodes.sql",
              sql: String(decoding: PackageResources._011_nodes_sql, as: UTF8.self)),
    Migration(version: 12, name: "0012_tenant_rate_limits.sql",
              sql: String(decoding: PackageResources._012_tenant_rate_limits_sql, as: UTF8.self)),
    Migration(version: 13, name: "0013_mx_connection_limits.sql",
              sql: String(decoding: PackageResources._013_mx_connection_limits_sql, as: UTF8.self)),
    Migration(version: 14, name: "0014_smtp_routes.sql",
              sql: String(decoding: PackageResources._014_smtp_routes_sql, as: UTF8.self)),
    Migration(version: 15, name: "0015_queue_domain_due.sql",
              sql: String(decoding: PackageResources._015_queue_domain_due_sql, as: UTF8.self)),
]
