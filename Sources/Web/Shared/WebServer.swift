import Hummingbird
import Logging
import NIOCore

public struct WebServerError: Error, CustomStringConvertible {
    public var description: String
}

/// Starts a Hummingbird app and returns once it listens (with the bound address, for the
/// "web listening on …" line and for publishing it on I2P) or throws when it cannot listen.
public enum WebServer {
    /// The framework's own logger: warnings and worse only. Its info lines name addresses
    /// ("listening on 127.0.0.1:…"); Postern prints its own listening line, and no log line
    /// carries an address (PRIV-6).
    static func frameworkLogger(_ logger: Logger) -> Logger {
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        return quiet
    }

    public static func start<App: ApplicationProtocol>(
        _ build: (@escaping @Sendable (SocketAddress?) async -> Void) -> App
    ) async throws -> (address: SocketAddress, task: Task<Void, any Error>) {
        let (addresses, continuation) = AsyncStream<SocketAddress?>.makeStream()
        let app = build { address in
            continuation.yield(address)
            continuation.finish()
        }
        let task = Task {
            defer { continuation.finish() }
            try await app.run()
        }
        for await address in addresses {
            if let address { return (address, task) }
        }
        try await task.value
        throw WebServerError(description: "the web server stopped before it listened")
    }
}
