import Foundation
import Hummingbird
import RelayCore
import RelayStore

/// `GET /v1/stats` (one tenant) and `GET /admin/stats` (all tenants, plus the queue by state): deliverability
/// figures read from the hourly rollups.
struct StatsController {
    let database: RelayDatabase
    let thresholds: ReputationThresholds

    static let maximumRange: TimeInterval = 400 * 86_400
    static let maximumHourlyRange: TimeInterval = 31 * 86_400
    static let defaultRange: TimeInterval = 7 * 86_400

    func register(tenantRoutes group: RouterGroup<RelayRequestContext>) {
        group.get("stats") { request, context in
            let tenant = try context.requireTenant()
            let window = try StatsWindow(QueryParameters(request: request))
            let report = try await database.stats(tenantID: tenant, since: window.since, until: window.until, bucket: window.bucket)
            let depth = try await database.tenantQueueDepth(tenantID: tenant)
            let queue: [String: Double?] = ["queued": Double(depth.queued), "deferred": Double(depth.deferred),
                                            "total": Double(depth.queued + depth.deferred)]
            var json = StatsJSON(window: window, report: report, queue: queue)
            json.reputation = try await reputation(tenant: tenant)
            return try JSONResponse.make(.ok, json)
        }
    }

    /// The reputation guard's view of one tenant: paused (with the rates that paused it), warning or ok.
    func reputation(tenant: UUID) async throws -> ReputationJSON {
        let pause = try await database.tenantPause(tenant)
        let window = try await database.reputationWindows(window: thresholds.window, tenantID: tenant, includePaused: true)[tenant]
            ?? ReputationWindow(sends: 0, hardBounces: 0, complaints: 0)
        let assessment = thresholds.assess(window)
        var json = ReputationJSON(
            // Past a threshold but not paused yet (the guard checks every few seconds): still only a warning.
            state: pause != nil ? "paused" : assessment.state == .ok ? "ok" : "warning",
            reason: pause?.reason ?? assessment.reason, pausedAt: pause.map { RFC3339.format($0.pausedAt) },
            bounceRate: StatsJSON.rounded(pause?.bounceRate ?? assessment.bounceRate),
            complaintRate: StatsJSON.rounded(pause?.complaintRate ?? assessment.complaintRate),
            sends: window.sends, hardBounces: window.hardBounces, complaints: window.complaints,
            windowHours: Int(thresholds.window.components.seconds / 3600), minimumSends: thresholds.minimumSends,
            bounceRateThreshold: thresholds.bounceRate, complaintRateThreshold: thresholds.complaintRate)
        if !thresholds.enabled, pause == nil { json.state = "ok" }
        return json
    }

    func register(adminRoutes group: RouterGroup<RelayRequestContext>) {
        group.get("stats") { request, _ in
            let window = try StatsWindow(QueryParameters(request: request))
            let report = try await database.stats(tenantID: nil, since: window.since, until: window.until, bucket: window.bucket)
            let depth = try await database.queueDepthByState()
            let queue: [String: Double?] = [
                "due": Double(depth.due), "scheduled": Double(depth.scheduled), "in_flight": Double(depth.inFlight),
                "total": Double(depth.due + depth.scheduled + depth.inFlight),
                "oldest_queued_age_seconds": depth.oldestQueuedAge, "oldest_due_age_seconds": depth.oldestDueAge,
            ]
            return try JSONResponse.make(.ok, StatsJSON(window: window, report: report, queue: queue))
        }
    }
}

/// The validated `since`, `until` and `bucket` of a stats request. Rollups are hourly, so `since` is rounded
/// down and `until` up to whole buckets (UTC).
struct StatsWindow {
    var since: Date
    var until: Date
    var bucket: RelayDatabase.StatsBucket

    init(_ query: QueryParameters, now: Date = Date()) throws {
        let requestedUntil = try query.time("until") ?? now
        let requestedSince = try query.time("since") ?? requestedUntil.addingTimeInterval(-StatsController.defaultRange)
        guard requestedSince < requestedUntil else {
            throw APIError.invalid("since", "since must be before until")
        }
        let range = requestedUntil.timeIntervalSince(requestedSince)
        guard range <= StatsController.maximumRange else {
            throw APIError.invalid("since", "the range from since to until must be at most 400 days")
        }
        if let name = try query.choice("bucket", in: ["hour", "day"]) {
            bucket = name == "hour" ? .hour : .day
        } else {
            bucket = range <= 2 * 86_400 ? .hour : .day
        }
        if bucket == .hour && range > StatsController.maximumHourlyRange {
            throw APIError.invalid("bucket", "bucket=hour allows a range of at most 31 days; use bucket=day")
        }
        let size: TimeInterval = bucket == .hour ? 3600 : 86_400
        since = Date(timeIntervalSince1970: (requestedSince.timeIntervalSince1970 / size).rounded(.down) * size)
        until = Date(timeIntervalSince1970: (requestedUntil.timeIntervalSince1970 / size).rounded(.up) * size)
        if until == since { until = since.addingTimeInterval(size) }
    }

    /// Every bucket start in the window, so the series has no holes.
    var bucketStarts: [Date] {
        let size: TimeInterval = bucket == .hour ? 3600 : 86_400
        return stride(from: since.timeIntervalSince1970, to: until.timeIntervalSince1970, by: size).map(Date.init(timeIntervalSince1970:))
    }
}

/// The JSON of a stats report (see docs/api.md, "Statistics").
struct StatsJSON: Encodable {
    let window: StatsWindow
    let report: StatsReport
    let queue: [String: Double?]
    /// `/v1/stats` only.
    var reputation: ReputationJSON?

    init(window: StatsWindow, report: StatsReport, queue: [String: Double?]) {
        self.window = window
        self.report = report
        self.queue = queue
    }

    struct Counters: Encodable {
        var counters: StatsCounters
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: StatsJSON.CounterKeys.self)
            try Self.encode(counters, into: &container)
        }
        static func encode(_ counters: StatsCounters, into container: inout KeyedEncodingContainer<StatsJSON.CounterKeys>) throws {
            try container.encode(counters.accepted, forKey: .accepted)
            try container.encode(counters.delivered, forKey: .delivered)
            try container.encode(counters.deferred, forKey: .deferred)
            try container.encode(counters.bouncedHard + counters.bouncedSoft, forKey: .bounced)
            try container.encode(counters.bouncedHard, forKey: .bouncedHard)
            try container.encode(counters.bouncedSoft, forKey: .bouncedSoft)
            try container.encode(counters.failed, forKey: .failed)
            try container.encode(counters.suppressed, forKey: .suppressed)
            try container.encode(counters.complained, forKey: .complained)
        }
        static func encodeRates(_ counters: StatsCounters, into container: inout KeyedEncodingContainer<StatsJSON.CounterKeys>) throws {
            try container.encode(DeliveryRates.deliveryRate(delivered: counters.delivered, bounced: counters.bouncedHard + counters.bouncedSoft,
                                                            failed: counters.failed).map(rounded), forKey: .deliveryRate)
            try container.encode(DeliveryRates.bounceRate(delivered: counters.delivered, bounced: counters.bouncedHard + counters.bouncedSoft,
                                                          failed: counters.failed).map(rounded), forKey: .bounceRate)
        }
    }

    enum CounterKeys: String, CodingKey {
        case accepted, delivered, deferred, bounced, bouncedHard = "bounced_hard", bouncedSoft = "bounced_soft", failed,
             suppressed, complained, start, domain, provider, deliveryRate = "delivery_rate", bounceRate = "bounce_rate"
    }

    struct SeriesPoint: Encodable {
        var start: Date
        var counters: StatsCounters
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: StatsJSON.CounterKeys.self)
            try container.encode(RFC3339.format(start), forKey: .start)
            try Counters.encode(counters, into: &container)
        }
    }

    struct Breakdown: Encodable {
        var domain: String?
        var provider: String
        var counters: StatsCounters
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: StatsJSON.CounterKeys.self)
            if let domain { try container.encode(domain, forKey: .domain) }
            try container.encode(provider, forKey: .provider)
            try Counters.encode(counters, into: &container)
            try Counters.encodeRates(counters, into: &container)
        }
    }

    struct ErrorJSON: Encodable {
        var error: StatsError
        enum CodingKeys: String, CodingKey { case code, enhanced, sample, count, reason, bounceType = "bounce_type" }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(error.code, forKey: .code)
            try container.encode(error.enhanced, forKey: .enhanced)
            try container.encode(error.sample, forKey: .sample)
            try container.encode(error.count, forKey: .count)
            let bounce = BounceClassifier.classify(code: error.code, enhanced: error.enhanced, text: error.sample)
            try container.encode(bounce.reason.rawValue, forKey: .reason)
            try container.encode(bounce.type.rawValue, forKey: .bounceType)
        }
    }

    enum CodingKeys: String, CodingKey {
        case since, until, bucket, totals, deliveryRate = "delivery_rate", bounceRate = "bounce_rate",
             deliveryTime = "delivery_time_ms", series, topErrors = "top_errors", providers, domains, queue, reputation
    }

    /// Rates with four decimals: enough for a percentage with two, and stable in JSON.
    static func rounded(_ rate: Double) -> Double {
        (rate * 10_000).rounded() / 10_000
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(RFC3339.format(window.since), forKey: .since)
        try container.encode(RFC3339.format(window.until), forKey: .until)
        try container.encode(window.bucket.rawValue, forKey: .bucket)
        let byStart = Dictionary(report.series.map { ($0.start, $0.counters) }, uniquingKeysWith: +)
        let series = window.bucketStarts.map { SeriesPoint(start: $0, counters: byStart[$0] ?? StatsCounters()) }
        let totals = report.series.reduce(StatsCounters()) { $0 + $1.counters }
        try container.encode(Counters(counters: totals), forKey: .totals)
        try container.encode(DeliveryRates.deliveryRate(delivered: totals.delivered, bounced: totals.bouncedHard + totals.bouncedSoft,
                                                        failed: totals.failed).map(Self.rounded), forKey: .deliveryRate)
        try container.encode(DeliveryRates.bounceRate(delivered: totals.delivered, bounced: totals.bouncedHard + totals.bouncedSoft,
                                                      failed: totals.failed).map(Self.rounded), forKey: .bounceRate)
        let latencyCount = report.latencyCounts.values.reduce(0, +)
        let latency: [String: Int?] = [
            "p50": LatencyHistogram.quantile(0.5, counts: report.latencyCounts),
            "p95": LatencyHistogram.quantile(0.95, counts: report.latencyCounts),
            "p99": LatencyHistogram.quantile(0.99, counts: report.latencyCounts),
            "count": latencyCount,
        ]
        try container.encode(latency, forKey: .deliveryTime)
        try container.encode(series, forKey: .series)
        try container.encode(report.topErrors.map(ErrorJSON.init), forKey: .topErrors)
        try container.encode(report.providers.map { Breakdown(domain: nil, provider: $0.provider, counters: $0.counters) },
                             forKey: .providers)
        try container.encode(report.domains.map { Breakdown(domain: $0.domain, provider: $0.provider, counters: $0.counters) },
                             forKey: .domains)
        try container.encode(queue, forKey: .queue)
        if let reputation { try container.encode(reputation, forKey: .reputation) }
    }
}

/// The `reputation` section of `/v1/stats` (see docs/api.md, "Reputation guard").
struct ReputationJSON: Encodable {
    var state: String
    var reason: String?
    var pausedAt: String?
    var bounceRate: Double
    var complaintRate: Double
    var sends: Int
    var hardBounces: Int
    var complaints: Int
    var windowHours: Int
    var minimumSends: Int
    var bounceRateThreshold: Double
    var complaintRateThreshold: Double

    enum CodingKeys: String, CodingKey {
        case state, reason, pausedAt = "paused_at", bounceRate = "bounce_rate", complaintRate = "complaint_rate", sends,
             hardBounces = "hard_bounces", complaints, windowHours = "window_hours", minimumSends = "minimum_sends",
             bounceRateThreshold = "bounce_rate_threshold", complaintRateThreshold = "complaint_rate_threshold"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(state, forKey: .state)
        try container.encode(reason, forKey: .reason)
        try container.encode(pausedAt, forKey: .pausedAt)
        try container.encode(bounceRate, forKey: .bounceRate)
        try container.encode(complaintRate, forKey: .complaintRate)
        try container.encode(sends, forKey: .sends)
        try container.encode(hardBounces, forKey: .hardBounces)
        try container.encode(complaints, forKey: .complaints)
        try container.encode(windowHours, forKey: .windowHours)
        try container.encode(minimumSends, forKey: .minimumSends)
        try container.encode(bounceRateThreshold, forKey: .bounceRateThreshold)
        try container.encode(complaintRateThreshold, forKey: .complaintRateThreshold)
    }
}
