import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /dashboard`: the dashboard's three static files, embedded in the binary. The page holds no data: it
/// asks for an API key (or the admin token) and reads the JSON API with it. A strict Content-Security-Policy
/// allows nothing but these files, so text from remote SMTP servers shown on the page can never run as code.
struct DashboardController {
    static let securityHeaders: [(HTTPField.Name, String)] = [
        (.contentSecurityPolicy,
         "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
        (HTTPField.Name("X-Content-Type-Options")!, "nosniff"),
        (HTTPField.Name("Referrer-Policy")!, "no-referrer"),
        (.cacheControl, "no-cache"),
    ]

    func register(on router: Router<RelayRequestContext>) {
        serve(router, path: "dashboard", bytes: PackageResources.index_html, type: "text/html; charset=utf-8")
        serve(router, path: "dashboard/app.css", bytes: PackageResources.app_css, type: "text/css; charset=utf-8")
        serve(router, path: "dashboard/app.js", bytes: PackageResources.app_js, type: "text/javascript; charset=utf-8")
    }

    private func serve(_ router: Router<RelayRequestContext>, path: String, bytes: [UInt8], type: String) {
        let body = ByteBuffer(bytes: bytes)
        router.get(RouterPath(path)) { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = type
            for (name, value) in Self.securityHeaders { headers[name] = value }
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: body))
        }
    }
}
