import Foundation
import NIOCore
import NIOPosix
import RelayTestSupport
import Testing

/// Children (test peers; the managed PostgreSQL uses the same spawn actions) inherit nothing but standard input,
/// output and error. NIO's sockets are not close-on-exec: a peer holding a copy kept connections open after the
/// tests closed them.
@Suite struct ChildProcessTests {
    @Test func aChildInheritsOnlyItsStandardDescriptors() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let child = try ChildProcess("/bin/sleep", ["30"])
        defer { child.signal(SIGKILL) }
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(child.pid)/fd").compactMap(Int.init).sorted()
        #expect(descriptors == [0, 1, 2])
    }
}
