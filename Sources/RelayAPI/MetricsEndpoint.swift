import HTTPTypes
import Hummingbird
import NIOCore
import RelayMetrics

/// Counts every HTTP request by method, matched route pattern and status, and times it. Outermost, so it sees
/// the status of error responses too.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = RelayRequestContext
    let metrics: RelayMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(request, context, status: response.status.code, since: start)
            return response
        } catch let error as any HTTPResponseError {
            record(request, context, status: error.status.code, since: start)
            throw error
        } catch {
            record(request, context, status: 500, since: start)
            throw error
        }
    }

    private func record(_ request: Request, _ context: Context, status: Int, since start: ContinuousClock.Instant) {
        metrics.httpRequest(method: request.method.rawValue, route: context.endpointPath ?? "unmatched", status: status,
                            duration: ContinuousClock.now - start)
    }
}

/// `GET /metrics`: the Prometheus text format. Gauges that describe shared state (queue depth) are refreshed
/// at scrape time, so every node reports the same queue and nothing polls the database in between.
struct MetricsController {
    let metrics: RelayMetrics
    let refresh: @Sendable () async -> Void

    func register(on router: Router<RelayRequestContext>) {
        router.get("metrics") { _, _ in
            await refresh()
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.render())))
        }
    }
}
