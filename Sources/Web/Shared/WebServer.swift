import Hummingbird
import NIOCore

public struct WebServerError: Error, CustomStringConvertible {
    public var description: String
}

/// Starts a Hummingbird app and returns once it listens (with the bound address, for the
/// "web listening on …" line and for publishing it on I2P) or throws when it cannot listen.
public enum WebServer {
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
