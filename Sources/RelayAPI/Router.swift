import Hummingbird

/// Builds Relay's HTTP routes: health and `/metrics`, `/admin` (admin token), `/v1` (API key), `/dashboard`.
/// With `serveAPI` false (a node without the `api` role) only the health endpoints and `/metrics` are served.
public func buildRouter(_ dependencies: APIDependencies, serveAPI: Bool = true) -> Router<RelayRequestContext> {
    let router = Router(context: RelayRequestContext.self)
    router.add(middleware: MetricsMiddleware(metrics: dependencies.metrics))
    router.add(middleware: ErrorMiddleware())
    HealthController(database: dependencies.database, isReady: dependencies.isReady, isDraining: dependencies.isDraining).register(on: router)
    MetricsController(metrics: dependencies.metrics, refresh: dependencies.refreshMetrics).register(on: router)
    guard serveAPI else { return router }
    DashboardController().register(on: router)
    UnsubscribeController(database: dependencies.database).register(on: router)
    let ready = ReadinessMiddleware(isReady: dependencies.isReady)
    let admin = router.group("admin").add(middleware: AdminAuthMiddleware(adminToken: dependencies.adminToken)).add(middleware: ready)
    AdminController(database: dependencies.database).register(on: admin)
    MXHostsController(database: dependencies.database, configuredLimit: dependencies.mxMaxConnections).register(on: admin)
    RoutesController(database: dependencies.database, domains: dependencies.domains).register(on: admin)
    let v1 = router.group("v1").add(middleware: ready)
        .add(middleware: TenantAuthMiddleware(database: dependencies.database, cache: KeyCache()))
    DomainsController(domains: dependencies.domains).register(on: v1)
    MessagesController(dependencies: dependencies).register(on: v1)
    LogController(database: dependencies.database).register(on: v1)
    SuppressionsController(database: dependencies.database).register(on: v1)
    TemplatesController(database: dependencies.database).register(on: v1)
    WebhooksController(database: dependencies.database, targetCheck: dependencies.webhookTargetCheck).register(on: v1)
    QueueController(database: dependencies.database).register(on: v1)
    let stats = StatsController(database: dependencies.database, thresholds: dependencies.reputation)
    stats.register(tenantRoutes: v1)
    stats.register(adminRoutes: admin)
    return router
}

/// Answers 503 `not_ready` until the schema is migrated, so no request runs against a missing table.
struct ReadinessMiddleware: RouterMiddleware {
    typealias Context = RelayRequestContext
    let isReady: @Sendable () -> Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard isReady() else {
            throw APIError(.serviceUnavailable, code: "not_ready", message: "Relay is starting: the database is not reachable or not migrated yet")
        }
        return try await next(request, context)
    }
}
