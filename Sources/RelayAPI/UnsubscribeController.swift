import Foundation
import Hummingbird
import RelayCore
import RelayStore
import Synchronization

/// Relay-hosted unsubscribe links (RFC 8058). `POST /unsubscribe/{token}` — what a mailbox provider sends for a
/// one-click unsubscribe (body `List-Unsubscribe=One-Click`), and what the confirmation page's button sends —
/// puts the address on the tenant's suppression list (reason `unsubscribed`). `GET` only shows a page with that
/// button: link scanners and prefetchers follow GETs, so a GET must never unsubscribe (RFC 8058 §4).
final class UnsubscribeController: Sendable {
    let database: RelayDatabase
    private let codec = Mutex<UnsubscribeLink?>(nil)

    init(database: RelayDatabase) {
        self.database = database
    }

    func register(on router: Router<RelayRequestContext>) {
        router.get("unsubscribe/:token") { _, context in
            guard let id = try await self.recipient(context), let email = try await self.database.unsubscribeTarget(recipientID: id) else {
                return Self.page(.notFound, "Link not recognised", "This unsubscribe link is not valid. Nothing was changed.")
            }
            return Self.page(.ok, "Unsubscribe", """
                <p>Stop sending mail to <strong>\(Self.escape(email))</strong> from this sender?</p>
                <form method="post"><button type="submit">Unsubscribe</button></form>
                """)
        }
        router.post("unsubscribe/:token") { _, context in
            guard let id = try await self.recipient(context), let email = try await self.database.unsubscribe(recipientID: id) else {
                return Self.page(.notFound, "Link not recognised", "This unsubscribe link is not valid. Nothing was changed.")
            }
            return Self.page(.ok, "Unsubscribed", "<p><strong>\(Self.escape(email))</strong> will not receive mail from this sender any more.</p>")
        }
    }

    private func recipient(_ context: RelayRequestContext) async throws -> Int64? {
        guard let token = context.parameters.get("token") else { return nil }
        let link: UnsubscribeLink
        if let loaded = codec.withLock({ $0 }) {
            link = loaded
        } else {
            link = UnsubscribeLink(key: try await database.secret(named: "unsubscribe"), baseURL: "")
            codec.withLock { $0 = link }
        }
        return link.recipientID(of: token)
    }

    static func page(_ status: HTTPResponse.Status, _ title: String, _ body: String) -> Response {
        let html = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
            <title>\(title)</title><style>body{font:16px system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}
            button{font:inherit;padding:.5rem 1rem}</style></head><body><h1>\(title)</h1>\(body)</body></html>
            """
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
