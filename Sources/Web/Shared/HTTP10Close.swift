import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// HTTP/1.0 clients that do not ask for keep-alive expect the server to close the connection
/// after the response (RFC 9112 9.3); gpg's dirmngr is one, and waits for that close. Hummingbird
/// closes only on `Connection: close`, which the HTTP types no longer derive from the version: so
/// such a request is given that header before the version is lost.
final class HTTP10CloseMarker: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(var head) = unwrapInboundIn(data), !head.isKeepAlive {
            head.headers.replaceOrAdd(name: "connection", value: "close")
            context.fireChannelRead(wrapInboundOut(.head(head)))
            return
        }
        context.fireChannelRead(data)
    }
}

/// Added after Hummingbird's HTTP/1 codec (where additional handlers go); puts the marker in
/// front of that codec, where the HTTP/1 version is still known, and leaves.
final class HTTP10CloseInstaller: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Never

    func handlerAdded(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        if let codec = try? pipeline.handler(type: HTTP1ToHTTPServerCodec.self) {
            try? pipeline.addHandler(HTTP10CloseMarker(), position: .before(codec))
        }
        _ = pipeline.removeHandler(context: context)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with the HTTP/1.0 close rule, and idle connections closed after `idleTimeout`.
    static func postern(idleTimeout: TimeAmount = .seconds(120)) -> HTTPServerBuilder {
        .http1(configuration: .init(additionalChannelHandlers: [HTTP10CloseInstaller()], idleTimeout: idleTimeout))
    }
}
