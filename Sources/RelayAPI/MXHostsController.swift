import Foundation
import Hummingbird
import RelayStore

/// `/admin/mx-hosts`: the cluster-wide view of outbound connections per MX host and the throttles in force
/// (a host that answered 421 or a 4.7.x rate complaint gets a lower connection limit for a while).
struct MXHostsController {
    let database: RelayDatabase
    /// The limit of a host that is not throttled.
    let configuredLimit: Int

    struct HostJSON: Encodable {
        var host: String
        var connections: Int
        var throttled: Bool
        var connectionLimit: Int
        var throttledUntil: Date?
        var reply: String?
        enum CodingKeys: String, CodingKey {
            case host, connections, throttled, connectionLimit = "connection_limit", throttledUntil = "throttled_until", reply
        }
    }

    struct HostList: Encodable {
        var data: [HostJSON]
    }

    func register(on group: RouterGroup<RelayRequestContext>) {
        group.get("mx-hosts") { _, _ in
            let hosts = try await database.mxHostStatuses()
            return try JSONResponse.make(.ok, HostList(data: hosts.map {
                HostJSON(host: $0.host, connections: $0.connections, throttled: $0.throttledLimit != nil,
                         connectionLimit: $0.throttledLimit ?? configuredLimit, throttledUntil: $0.throttledUntil, reply: $0.reply)
            }))
        }
        // Lifts a throttle before it runs out (the operator knows the host recovered): 204, or 404 when the
        // host is not throttled.
        group.delete("mx-hosts/:host/throttle") { _, context in
            guard let host = context.parameters.get("host")?.lowercased(), !host.isEmpty,
                  try await database.liftMXThrottle(host: host) else { throw APIError.notFound }
            context.logger.notice("MX throttle lifted", metadata: ["mx": "\(host)"])
            return Response(status: .noContent)
        }
    }
}
