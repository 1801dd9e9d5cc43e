#if canImport(Glibc)
import Glibc
#endif

/// Child processes (the managed PostgreSQL, test peers) must not inherit this process's descriptors: NIO's sockets
/// are not close-on-exec, and a child holding a copy keeps a connection open (no FIN) after this process closed it,
/// or a listening port bound after this process exited.
public enum SpawnActions {
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// Adds "close every descriptor from 3 up" to `actions` (glibc's `posix_spawn_file_actions_addclosefrom_np`,
    /// since 2.34, looked up at run time because Swift's Glibc module does not export it). Returns false when the
    /// C library lacks it.
    @discardableResult
    public static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) -> Bool {
        guard let symbol = closeFromSymbol else { return false }
        let closeFrom = unsafeBitCast(symbol, to: CloseFrom.self)
        return withUnsafeMutablePointer(to: &actions) { closeFrom($0, 3) } == 0
    }

    private nonisolated(unsafe) static let closeFromSymbol: UnsafeMutableRawPointer? =
        dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np")
}
