import Foundation
import Hummingbird
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

    func register(on group: RouterGroup<RelayRequestContext>) {
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
    }
}
