import Foundation
import Hummingbird
import RelayCore
import RelayDomains
import RelayStore

/// `/admin/routes` (operator only): smarthost routes, which send the mail of matching recipient domains to an
/// upstream SMTP server instead of their MX hosts. Passwords are sealed like DKIM private keys and never returned.
/// Every worker node picks a change up within a few seconds (RelayQueue's RouteTable).
struct RoutesController {
    let database: RelayDatabase
    let domains: DomainManager

    /// The longest user name and password accepted (RFC 4954 allows long ones; these bound the stored row).
    static let maximumUsernameLength = 256
    static let maximumPasswordLength = 1024

    struct RouteJSON: Encodable {
        var id: String
        var domain: String
        var host: String
        var port: Int
        var username: String?
        var hasPassword: Bool
        var tls: String
        var verifyCertificate: Bool
        var createdAt: Date
        enum CodingKeys: String, CodingKey {
            case id, domain, host, port, username, hasPassword = "has_password", tls,
                 verifyCertificate = "verify_certificate", createdAt = "created_at"
        }

        init(_ route: StoredSMTPRoute) {
            id = route.id.apiString
            domain = route.domainPattern
            host = route.host
            port = route.port
            username = route.username
            hasPassword = route.sealedPassword != nil
            tls = route.tls
            verifyCertificate = route.verifyCertificate
            createdAt = route.createdAt
        }

        // `username` is written as null when there is none, so every route has the same fields.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(domain, forKey: .domain)
            try container.encode(host, forKey: .host)
            try container.encode(port, forKey: .port)
            try container.encode(username, forKey: .username)
            try container.encode(hasPassword, forKey: .hasPassword)
            try container.encode(tls, forKey: .tls)
            try container.encode(verifyCertificate, forKey: .verifyCertificate)
            try container.encode(createdAt, forKey: .createdAt)
        }
    }

    struct RouteList: Encodable {
        var data: [RouteJSON]
    }

    func register(on group: RouterGroup<RelayRequestContext>) {
        group.post("routes", use: create)
        group.get("routes") { _, _ in
            try JSONResponse.make(.ok, RouteList(data: try await database.routes().map(RouteJSON.init)))
        }
        group.get("routes/:id") { _, context in
            try JSONResponse.make(.ok, RouteJSON(try await Self.route(context, database)))
        }
        group.delete("routes/:id") { _, context in
            guard let id = Self.id(context), try await database.deleteRoute(id: id) else { throw APIError.notFound }
            context.logger.notice("smarthost route deleted", metadata: ["route": "\(id)"])
            return Response(status: .noContent)
        }
    }

    @Sendable func create(_ request: Request, context: RelayRequestContext) async throws -> Response {
        let body = try await request.body.collect(upTo: 64 * 1024)
        let reader = try JSONObjectReader(JSONValue.parse(body.readableBytesView))
        try reader.rejectUnknown(["domain", "host", "port", "username", "password", "tls", "verify_certificate"])
        let route = try Self.validate(reader)
        let id = UUID()
        var sealed: (sealed: [UInt8], sealedWith: String)?
        if let password = route.password {
            sealed = try await domains.secretKeyring().sealRoutePassword(password, routeID: id)
        }
        let stored: StoredSMTPRoute
        do {
            stored = try await database.insertRoute(StoredSMTPRoute(
                id: id, domainPattern: route.pattern.description, host: route.host, port: route.port, username: route.username,
                sealedPassword: sealed?.sealed, sealedWith: sealed?.sealedWith, tls: route.tls.rawValue,
                verifyCertificate: route.verifyCertificate))
        } catch let error as StoreError where error.code == .conflict {
            throw APIError(.conflict, code: "route_exists",
                           message: "a route for \(route.pattern) exists already; delete it first to replace it", field: "domain")
        }
        context.logger.notice("smarthost route created", metadata: [
            "route": "\(id)", "domain": "\(route.pattern)", "host": "\(route.host):\(route.port)"])
        return try JSONResponse.make(.created, RouteJSON(stored))
    }

    /// The route a request body describes; 422 naming the first field at fault.
    static func validate(_ reader: JSONObjectReader) throws -> SMTPRoute {
        let domainText = try reader.string("domain", required: true) ?? ""
        guard let pattern = RouteDomainPattern(domainText) else {
            throw APIError.invalid("domain", "domain must be a domain name (example.org), a wildcard for its subdomains (*.example.org), or * for every domain")
        }
        let hostText = try reader.string("host", required: true) ?? ""
        guard let host = SMTPRoute.normalizedHost(hostText) else {
            throw APIError.invalid("host", "host must be a host name or an IP address (IPv6 with or without brackets)")
        }
        var tls = RouteTLS.startTLS
        if let text = try reader.string("tls") {
            guard let parsed = RouteTLS(rawValue: text) else {
                throw APIError.invalid("tls", "tls must be one of \"starttls\", \"implicit\", \"none\"")
            }
            tls = parsed
        }
        let port: Int
        do {
            port = try reader.integer("port") ?? Self.defaultPort(tls)
        } catch {
            throw APIError.invalid("port", "port must be a whole number from 1 to 65535")
        }
        guard (1...65535).contains(port) else { throw APIError.invalid("port", "port must be a whole number from 1 to 65535") }
        let username = try credential(reader, "username", maximumLength: maximumUsernameLength)
        let password = try credential(reader, "password", maximumLength: maximumPasswordLength)
        if let problem = SMTPRoute.credentialProblem(username: username, password: password, tls: tls) {
            throw APIError.invalid(problem.field, problem.message)
        }
        return SMTPRoute(id: "", pattern: pattern, host: host, port: port, username: username, password: password, tls: tls,
                         verifyCertificate: try reader.bool("verify_certificate") ?? true)
    }

    /// The port when none is given: 587 for STARTTLS (submission, RFC 6409), 465 for implicit TLS (RFC 8314), 25.
    static func defaultPort(_ tls: RouteTLS) -> Int {
        switch tls {
        case .startTLS: 587
        case .implicit: 465
        case .none: 25
        }
    }

    /// A user name or password: a non-empty string without control characters (NUL would break AUTH PLAIN), its
    /// length counted in code points as JSON Schema counts it (docs/openapi.yaml).
    private static func credential(_ reader: JSONObjectReader, _ name: String, maximumLength: Int) throws -> String? {
        guard let value = try reader.string(name) else { return nil }
        guard !value.isEmpty, value.unicodeScalars.count <= maximumLength,
              !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw APIError.invalid(name, "\(name) must be 1 to \(maximumLength) characters without control characters")
        }
        return value
    }

    private static func id(_ context: RelayRequestContext) -> UUID? {
        context.parameters.get("id").flatMap(UUID.init(uuidString:))
    }

    private static func route(_ context: RelayRequestContext, _ database: RelayDatabase) async throws -> StoredSMTPRoute {
        guard let id = id(context), let route = try await database.routes(id: id).first else { throw APIError.notFound }
        return route
    }
}
