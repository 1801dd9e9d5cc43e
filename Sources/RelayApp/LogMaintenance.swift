import Logging
import RelayStore
import ServiceLifecycle

/// Keeps the delivery log and the statistics in shape, on every node (PostgreSQL serialises the work, so any
/// number of nodes may run it): folds statistics deltas into the hourly rollups every `foldInterval`, and every
/// hour creates the coming days' log partitions and drops those (and inbound reports) older than
/// `RELAY_LOG_RETENTION`.
struct LogMaintenanceService: Service {
    let database: RelayDatabase
    let retention: Duration
    let logger: Logger
    var foldInterval: Duration = .seconds(2)
    var partitionInterval: Duration = .seconds(3600)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var nextPartitionRun = ContinuousClock.now
            while !Task.isCancelled {
                if ContinuousClock.now >= nextPartitionRun {
                    do {
                        let (created, dropped) = try await database.maintainLogPartitions(retention: retention)
                        try await database.pruneInboundReports(retention: retention)
                        if created > 0 || dropped > 0 {
                            logger.info("log partitions maintained", metadata: ["created": "\(created)", "dropped": "\(dropped)"])
                        }
                        nextPartitionRun = .now + partitionInterval
                    } catch {
                        logger.warning("log partition maintenance failed; will retry",
                                       metadata: ["error": "\(String(reflecting: error))"])
                        nextPartitionRun = .now + .seconds(60)
                    }
                }
                do {
                    try await database.foldStats()
                } catch {
                    logger.debug("folding statistics failed; will retry", metadata: ["error": "\(String(reflecting: error))"])
                }
                try? await Task.sleep(for: foldInterval)
            }
        }
    }
}
