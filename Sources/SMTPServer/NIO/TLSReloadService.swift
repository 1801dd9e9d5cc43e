import Logging
import ServiceLifecycle
import UnixSignals

/// Re-reads the TLS certificate and key of every listener on SIGHUP, so a renewed certificate (certbot,
/// acme.sh) takes effect without a restart. A file that fails to load is logged and the old certificate stays.
///
/// Add it to the application's `ServiceGroup` next to the listeners.
public struct TLSReloadService: Service {
    private let materials: [TLSMaterial]
    private let logger: Logger

    /// Reloads `materials` (each once per signal) and logs to `logger`.
    public init(materials: [TLSMaterial], logger: Logger) {
        self.materials = materials
        self.logger = logger
    }

    /// Waits for SIGHUP until graceful shutdown.
    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            logger.info("SIGHUP: reloading TLS certificates")
            for material in materials {
                do {
                    try material.reload()
                } catch {
                    logger.error("TLS certificate reload failed; keeping the previous certificate", metadata: [
                        "error": "\(error)",
                    ])
                }
            }
        }
    }
}
