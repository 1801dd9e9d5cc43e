import Foundation
import Hummingbird
import RelayDomains
import RelayStore

/// `/v1/domains`: the sender domains a tenant may send from, their DKIM keys (never the private halves), the
/// DNS records to publish with the status of each, verification and key rotation.
struct DomainsController {
    let domains: DomainManager

    struct RecordJSON: Encodable {
        var purpose: String
        var type: String
        var name: String
        var value: String
        var priority: Int?
        var selector: String?
        var algorithm: String?
        var keyState: String?
        var status: String
        var found: String?
        var checkedAt: Date?
        enum CodingKeys: String, CodingKey {
            case purpose, type, name, value, priority, selector, algorithm, keyState = "key_state", status, found,
                 checkedAt = "checked_at"
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(purpose, forKey: .purpose)
            try container.encode(type, forKey: .type)
            try container.encode(name, forKey: .name)
            try container.encode(value, forKey: .value)
            try container.encodeIfPresent(priority, forKey: .priority)
            try container.encodeIfPresent(selector, forKey: .selector)
            try container.encodeIfPresent(algorithm, forKey: .algorithm)
            try container.encodeIfPresent(keyState, forKey: .keyState)
            try container.encode(status, forKey: .status)
            try container.encode(found, forKey: .found)
            try container.encode(checkedAt, forKey: .checkedAt)
        }
    }

    struct DomainJSON: Encodable {
        var name: String
        var status: String
        var dkimVerified: Bool
        var createdAt: Date
        var checkedAt: Date?
        var records: [RecordJSON]
        enum CodingKeys: String, CodingKey {
            case name, status, dkimVerified = "dkim_verified", createdAt = "created_at", checkedAt = "checked_at", records
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(status, forKey: .status)
            try container.encode(dkimVerified, forKey: .dkimVerified)
            try container.encode(createdAt, forKey: .createdAt)
            try container.encode(checkedAt, forKey: .checkedAt)
            try container.encode(records, forKey: .records)
        }
        init(_ view: DomainView) {
            name = view.domain.name
            dkimVerified = view.domain.dkimVerified
            status = view.domain.dkimVerified ? "verified" : "pending"
            createdAt = view.domain.createdAt
            checkedAt = view.domain.checkedAt
            records = view.records.map { item in
                RecordJSON(purpose: item.record.purpose, type: item.record.type, name: item.record.name, value: item.record.value,
                           priority: item.record.priority, selector: item.record.selector, algorithm: item.record.algorithm,
                           keyState: item.record.keyState?.rawValue, status: item.status.rawValue, found: item.found,
                           checkedAt: item.checkedAt)
            }
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
            let name = Self.normalized(raw)
            guard Self.isValidDomain(name) else {
                throw APIError.invalid("name", "\"\(raw)\" is not a valid domain name")
            }
            do {
                return try JSONResponse.make(.created, DomainJSON(try await domains.register(tenantID: tenant, name: name)))
            } catch let error as StoreError where error.code == .conflict {
                throw APIError(.conflict, code: "domain_exists", message: "the domain \(name) is already registered", field: "name")
            }
        }
        group.get("domains") { _, context in
            let tenant = try context.requireTenant()
            return try JSONResponse.make(.ok, DomainList(data: try await domains.domains(tenantID: tenant).map(DomainJSON.init)))
        }
        group.get("domains/:name") { _, context in
            let tenant = try context.requireTenant()
            guard let view = try await domains.domain(tenantID: tenant, name: try Self.name(context)) else { throw Self.notFound }
            return try JSONResponse.make(.ok, DomainJSON(view))
        }
        group.post("domains/:name/verify") { _, context in
            let tenant = try context.requireTenant()
            guard let view = try await domains.verify(tenantID: tenant, name: try Self.name(context)) else { throw Self.notFound }
            return try JSONResponse.make(.ok, DomainJSON(view))
        }
        group.post("domains/:name/dkim/rotate") { _, context in
            let tenant = try context.requireTenant()
            do {
                guard let view = try await domains.rotate(tenantID: tenant, name: try Self.name(context)) else { throw Self.notFound }
                return try JSONResponse.make(.created, DomainJSON(view))
            } catch let error as StoreError where error.code == .conflict {
                throw APIError(.conflict, code: "rotation_pending",
                               message: "a rotation is already waiting for its DNS records: publish them and verify, then rotate again")
            }
        }
    }

    static let notFound = APIError(.notFound, code: "not_found", message: "no such domain")

    static func name(_ context: RelayRequestContext) throws -> String {
        guard let raw = context.parameters.get("name") else { throw notFound }
        let name = normalized(raw)
        guard isValidDomain(name) else { throw notFound }
        return name
    }

    /// Lower case without a trailing dot, as domains are stored.
    static func normalized(_ raw: String) -> String {
        let lowered = raw.lowercased()
        return lowered.hasSuffix(".") ? String(lowered.dropLast()) : lowered
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
