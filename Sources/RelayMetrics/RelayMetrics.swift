import CoreMetrics
import Prometheus
import Synchronization

/// Relay's Prometheus metrics (`GET /metrics`), recorded through swift-metrics with a factory owned by one
/// application instance (not the process-wide `MetricsSystem`), so that several instances in one test process
/// keep separate figures. Names and labels are a contract with dashboards (deploy/grafana/): change them only
/// with the dashboard.
public final class RelayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let gauges = Mutex<[String: CoreMetrics.Gauge]>([:])

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Delivery attempts take from milliseconds (a local MX) to the 10-minute end-of-data timeout.
        factory.durationHistogramBuckets["relay_delivery_duration_seconds"] = [
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
            .seconds(60), .seconds(300), .seconds(600),
        ]
        factory.durationHistogramBuckets["relay_http_request_duration_seconds"] = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
            .seconds(5),
        ]
        self.factory = factory
    }

    /// A message was stored; `source` is `api` or `smtp`.
    public func messageAccepted(source: String) {
        CoreMetrics.Counter(label: "relay_messages_accepted_total", dimensions: [("source", source)], factory: factory).increment()
    }

    /// One recipient's delivery attempt ended with `result` (delivered, deferred, bounced, failed) and a reply of
    /// class 2xx/4xx/5xx (`none` without an SMTP reply).
    public func deliveryFinished(result: String, replyCode: Int?, duration: Duration) {
        let codeClass = replyCode.map { "\($0 / 100)xx" } ?? "none"
        CoreMetrics.Counter(label: "relay_deliveries_total", dimensions: [("result", result), ("code_class", codeClass)], factory: factory)
            .increment()
        CoreMetrics.Timer(label: "relay_delivery_duration_seconds", dimensions: [], factory: factory).recordNanoseconds(Self.nanoseconds(duration))
    }

    /// One webhook attempt ended: `result` is `succeeded` or `failed`; `code_class` the HTTP status class
    /// (`2xx` … `5xx`), `none` when there was no answer (timeout, connection error, refused address).
    public func webhookAttempt(succeeded: Bool, responseCode: Int?) {
        let codeClass = responseCode.map { "\($0 / 100)xx" } ?? "none"
        CoreMetrics.Counter(label: "relay_webhook_attempts_total",
                            dimensions: [("result", succeeded ? "succeeded" : "failed"), ("code_class", codeClass)], factory: factory)
            .increment()
    }

    /// An HTTP request was answered. `route` is the matched route pattern (e.g. `/v1/messages/:id`), never the
    /// raw path, so that ids cannot blow up the number of series.
    public func httpRequest(method: String, route: String, status: Int, duration: Duration) {
        CoreMetrics.Counter(label: "relay_http_requests_total",
                dimensions: [("method", method), ("route", route), ("status", "\(status)")], factory: factory).increment()
        CoreMetrics.Timer(label: "relay_http_request_duration_seconds", dimensions: [("method", method), ("route", route)], factory: factory)
            .recordNanoseconds(Self.nanoseconds(duration))
    }

    /// Sets a gauge (queue depth, sessions, connections), read at scrape time.
    public func set(_ name: String, _ labels: [(String, String)] = [], to value: Double) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let gauge = gauges.withLock { gauges in
            if let gauge = gauges[key] { return gauge }
            let gauge = CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
            gauges[key] = gauge
            return gauge
        }
        gauge.record(value)
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// The Prometheus text exposition of every metric.
    public func render() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
