import Foundation
import Logging
import RelayCore
import RelayStore
import ServiceLifecycle

/// The reputation guard, on every node (pausing is idempotent): every `interval` it measures each unpaused
/// tenant's bounce and complaint rates over the window and pauses those past a threshold. A paused tenant's
/// sends are refused (API 403 `sending_paused`, SMTP 550 5.7.1) and its queued mail is held until an admin
/// resumes it.
struct ReputationGuardService: Service {
    let database: RelayDatabase
    let thresholds: ReputationThresholds
    let logger: Logger
    var interval: Duration = .seconds(5)

    func run() async throws {
        guard thresholds.enabled else { return }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await check()
                } catch {
                    logger.debug("reputation check failed; will retry", metadata: ["error": "\(String(reflecting: error))"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    func check() async throws {
        let windows = try await database.reputationWindows(window: thresholds.window)
        for (tenant, window) in windows where window.sends >= thresholds.minimumSends {
            let assessment = thresholds.assess(window)
            guard assessment.state == .paused else { continue }
            if try await database.pauseTenant(tenant, assessment: assessment) {
                logger.warning("tenant paused by the reputation guard", metadata: [
                    "tenant": "\(tenant.uuidString.lowercased())", "reason": "\(assessment.reason ?? "")",
                    "bounce_rate": "\(assessment.bounceRate)", "complaint_rate": "\(assessment.complaintRate)",
                    "sends": "\(assessment.sends)"])
            }
        }
    }
}
