import Foundation
import PostgresNIO
import RelayCore

/// A tenant's pause, as stored.
public struct TenantPause: Sendable {
    public var pausedAt: Date
    public var reason: String
    public var bounceRate: Double?
    public var complaintRate: Double?
}

extension RelayDatabase {
    /// What each unpaused tenant with sends did within `window` (hourly rollups plus unfolded deltas; the hour
    /// that contains the window's start counts whole). After a resume, only hours that begin after it count, so
    /// the bounces that caused the pause do not pause the tenant again at once.
    public func reputationWindows(window: Duration, tenantID: UUID? = nil, includePaused: Bool = false)
        async throws -> [UUID: ReputationWindow] {
        let seconds = Double(window.components.seconds)
        return try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT t.id, sum(x.delivered + x.bounced_hard + x.bounced_soft + x.failed)::bigint,
                       sum(x.bounced_hard)::bigint, sum(x.complained)::bigint
                FROM tenants t
                JOIN (SELECT tenant_id, hour, delivered, bounced_hard, bounced_soft, failed, complained FROM stats_hourly
                      WHERE hour >= date_trunc('hour', now() - make_interval(secs => \(seconds)), 'UTC')
                      UNION ALL
                      SELECT tenant_id, hour, delivered, bounced_hard, bounced_soft, failed, complained FROM stats_hourly_pending
                     ) x ON x.tenant_id = t.id
                WHERE (\(includePaused) OR t.paused_at IS NULL)
                  AND (\(tenantID)::uuid IS NULL OR t.id = \(tenantID)::uuid)
                  AND x.hour >= date_trunc('hour', now() - make_interval(secs => \(seconds)), 'UTC')
                  AND (t.reputation_since IS NULL OR x.hour >= t.reputation_since)
                GROUP BY t.id
                """, logger: logger)
            var windows: [UUID: ReputationWindow] = [:]
            for try await (id, sends, hard, complaints) in rows.decode((UUID, Int, Int, Int).self) {
                windows[id] = ReputationWindow(sends: sends, hardBounces: hard, complaints: complaints)
            }
            return windows
        }
    }

    /// Pauses a tenant; false when it was paused already. The `tenant.paused` webhook event is enqueued in the
    /// same transaction.
    @discardableResult
    public func pauseTenant(_ id: UUID, assessment: ReputationAssessment) async throws -> Bool {
        let reason = assessment.reason ?? "reputation"
        return try await withDeadline { [self] in
            let rows = try await client.query("""
                WITH paused AS (
                    UPDATE tenants SET paused_at = now(), paused_reason = \(reason),
                                       paused_bounce_rate = \(assessment.bounceRate),
                                       paused_complaint_rate = \(assessment.complaintRate)
                    WHERE id = \(id) AND paused_at IS NULL
                    RETURNING id, paused_at
                )
                SELECT id, relay_enqueue_webhook_event(id, 'tenant.paused', jsonb_build_object(
                           'tenant_id', id, 'reason', \(reason)::text, 'bounce_rate', \(assessment.bounceRate)::float8,
                           'complaint_rate', \(assessment.complaintRate)::float8, 'sends', \(assessment.sends)::int,
                           'paused_at', to_char(paused_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
                FROM paused
                """, logger: logger)
            for try await _ in rows.decode((UUID, Int).self) { return true }
            return false
        }
    }

    /// Resumes a tenant: clears the pause, makes its held queue rows due, and starts its reputation window afresh
    /// from the next hour. Nil when there is no such tenant; otherwise whether it was paused.
    public func resumeTenant(_ id: UUID) async throws -> Bool? {
        try await withDeadline(.seconds(60)) { [self] in
            let rows = try await client.query("""
                WITH t AS (
                    SELECT id, paused_at FROM tenants WHERE id = \(id) FOR UPDATE
                ), upd AS (
                    UPDATE tenants SET paused_at = NULL, paused_reason = NULL, paused_bounce_rate = NULL,
                                       paused_complaint_rate = NULL,
                                       reputation_since = date_trunc('hour', now(), 'UTC') + interval '1 hour'
                    FROM t WHERE tenants.id = t.id AND t.paused_at IS NOT NULL
                    RETURNING tenants.id
                ), released AS (
                    UPDATE queue SET due_at = now()
                    WHERE due_at = 'infinity' AND lease_owner IS NULL AND EXISTS (SELECT 1 FROM upd)
                      AND message_id IN (SELECT m.id FROM messages m WHERE m.tenant_id = \(id))
                )
                SELECT t.paused_at IS NOT NULL FROM t
                """, logger: logger)
            for try await wasPaused in rows.decode(Bool.self) { return wasPaused }
            return nil
        }
    }

    /// The tenant's pause, nil when it sends normally.
    public func tenantPause(_ id: UUID) async throws -> TenantPause? {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT paused_at, paused_reason, paused_bounce_rate, paused_complaint_rate FROM tenants
                WHERE id = \(id) AND paused_at IS NOT NULL
                """, logger: logger)
            for try await (at, reason, bounce, complaint) in rows.decode((Date, String?, Double?, Double?).self) {
                return TenantPause(pausedAt: at, reason: reason ?? "reputation", bounceRate: bounce, complaintRate: complaint)
            }
            return nil
        }
    }
}
