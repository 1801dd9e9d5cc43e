import Foundation
import Hummingbird
import RelayStore

/// `POST /v1/domains` and `GET /v1/domains`: the sender domains a tenant may send from.
struct DomainsController {
    let database: RelayDatabase

    struct DomainJSON: Encodable {
        var name: String
        var createdAt: Date
        enum CodingKeys: String, CodingKey {
            case name, createdAt = "created_at"
        }
        init(_ record: DomainRecord) {
            name = record.name
            createdAt = record.createdAt
        }
    }

    struct DomainList: Encodable {
        var data: [DomainJSON]
    }

    func register(on group: RouterGroup<RelayRequestContext>) {
        group.post("domains") { request, context in
            let tenant = try context.requireTenant()
            let body = try await request.body.collect(upTo: 64 * 1024)
            let reader = try JSONObjectReader(JSONValue.parse(body.readableBytesView))
            try reader.rejectUnknown(["name"])
            guard let raw = try reader.string("name", required: true) else { throw APIError.invalid("name", "name is required") }
            let name = raw.lowercased().hasSuffix(".") ? String(raw.lowercased().dropLast()) : raw.lowercased()
            guard Self.isValidDomain(name) else {
                throw APIError.invalid("name", "\"\(raw)\" is not a valid domain name")
            }
            do {
                let record = try await database.addDomain(tenantID: tenant, name: name)
                return try JSONResponse.make(.created, DomainJSON(record))
            } catch let error as StoreError where error.code == .conflict {
                throw APIError(.conflict, code: "domain_exists", message: "the domain \(name) is already registered", field: "name")
            }
        }
        group.get("domains") { _, context in
            let tenant = try context.requireTenant()
            let domains = try await database.domains(tenantID: tenant)
            return try JSONResponse.make(.ok, DomainList(data: domains.map(DomainJSON.init)))
        }
    }

    /// A fully qualified host name: 2+ LDH labels of 1–63 octets, no leading/trailing hyphen, ≤ 253 octets.
    static func isValidDomain(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return false }
        return labels.allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
        } && !(labels.last!.allSatisfy(\.isNumber))
    }
}
