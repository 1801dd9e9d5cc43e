import Foundation
import Hummingbird
import RelayCore
import RelayStore

/// `/admin` routes (operator only, `RELAY_ADMIN_TOKEN`).
struct AdminController {
    let database: RelayDatabase

    struct TenantCreated: Encodable {
        var id: String
        var name: String
        var apiKey: String
        var createdAt: Date
        enum CodingKeys: String, CodingKey {
            case id, name, apiKey = "api_key", createdAt = "created_at"
        }
    }

    struct TenantResumed: Encodable {
        var id: String
        var paused: Bool
        var wasPaused: Bool
        enum CodingKeys: String, CodingKey {
            case id, paused, wasPaused = "was_paused"
        }
    }

    struct NodeJSON: Encodable {
        var id: String
        var hostname: String
        var roles: [String]
        var version: String
        var startedAt: Date
        var heartbeatAt: Date
        var draining: Bool
        enum CodingKeys: String, CodingKey {
            case id, hostname, roles, version, startedAt = "started_at", heartbeatAt = "heartbeat_at", draining
        }
    }

    struct NodeList: Encodable {
        var data: [NodeJSON]
    }

    /// A node is listed while its heartbeat (every 5 s) is younger than this.
    static let nodeLiveWindow: Duration = .seconds(20)

    func register(on group: RouterGroup<RelayRequestContext>) {
        group.get("nodes") { _, _ in
            let nodes = try await database.liveNodes(within: Self.nodeLiveWindow)
            return try JSONResponse.make(.ok, NodeList(data: nodes.map {
                NodeJSON(id: $0.id.apiString, hostname: $0.hostname, roles: $0.roles, version: $0.version,
                         startedAt: $0.startedAt, heartbeatAt: $0.heartbeatAt, draining: $0.draining)
            }))
        }
        group.post("tenants") { request, context in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let reader = try JSONObjectReader(JSONValue.parse(body.readableBytesView))
            try reader.rejectUnknown(["name"])
            guard let name = try reader.string("name", required: true)?.trimmingCharacters(in: .whitespaces),
                  !name.isEmpty, name.count <= 200, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw APIError.invalid("name", "name must be a non-empty string of at most 200 characters without control characters")
            }
            let (tenant, key) = try await database.createTenant(name: name)
            context.logger.info("tenant created", metadata: ["tenant": "\(tenant.id)"])
            return try JSONResponse.make(.created, TenantCreated(id: tenant.id.apiString, name: tenant.name, apiKey: key, createdAt: tenant.createdAt))
        }
        // Lifts a reputation-guard pause: sending is accepted again and held mail becomes due.
        group.post("tenants/:id/resume") { _, context in
            guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else { throw APIError.notFound }
            guard let wasPaused = try await database.resumeTenant(id) else { throw APIError.notFound }
            context.logger.notice("tenant resumed", metadata: ["tenant": "\(id)", "was_paused": "\(wasPaused)"])
            return try JSONResponse.make(.ok, TenantResumed(id: id.apiString, paused: false, wasPaused: wasPaused))
        }
    }
}
