import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Wire

/// STARTTLS as a client (RFC 3207). `upgrade` puts a TLS client handler first in the pipeline
/// and returns once the handshake is done (throwing when it fails).
public enum TLSPolicy: Sendable {
    /// Never: the link to the gateway runs over I2P, which encrypts already.
    case none
    /// When the server offers it (RFC 7435 opportunistic security); the certificate is not
    /// checked, as for any MX without DANE or MTA-STS.
    case opportunistic(upgrade: @Sendable (any Channel) async throws -> Void)
    /// Always: a server that does not offer STARTTLS gets no mail (temporary failure).
    case required(upgrade: @Sendable (any Channel) async throws -> Void)

    var upgrade: (@Sendable (any Channel) async throws -> Void)? {
        switch self {
        case .none: return nil
        case .opportunistic(let upgrade), .required(let upgrade): return upgrade
        }
    }

    var isRequired: Bool { if case .required = self { return true } else { return false } }
}

/// One SMTP client dialogue over an `NIOAsyncChannel` of reply lines: commands out, whole replies
/// in (strictly parsed by `SMTPReplyReader`). Shared by the relay client and the link session.
public struct SMTPDialogue {
    var lines: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    var outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let channel: any Channel
    var reader = SMTPReplyReader()

    struct ConnectionLost: Error {}
    static let quitWait = TimeAmount.seconds(10)

    /// Connects through `connector` with the reply-line pipeline: idle means neither a reply
    /// line nor a completed write for `replyTimeout` (the message is written in chunks, so a
    /// slow upload is not idle).
    public static func connect(_ connector: any StreamConnector, group: any EventLoopGroup, replyTimeout: TimeAmount,
                               plaintextGuard: PlaintextGuard = PlaintextGuard()) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await connector.connect(group: group) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: replyTimeout))
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ReplyLineDecoder(plaintextGuard: plaintextGuard)))
                try channel.pipeline.syncOperations.addHandler(CloseOnIdle())
                return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    }

    /// EHLO, or HELO for an old server that does not know it (RFC 5321 4.1.4).
    public mutating func hello(_ name: String) async throws -> SMTPReplyReader.Reply {
        var ehlo = try await command("EHLO \(name)")
        if [500, 502].contains(ehlo.code) {
            ehlo = try await command("HELO \(name)")
            ehlo.lines = [ehlo.lines.first ?? ""]
        }
        return ehlo
    }

    /// The extension keywords of an EHLO reply, upper-cased (RFC 5321 4.1.1.1).
    public static func extensions(of ehlo: SMTPReplyReader.Reply) -> Set<String> {
        Set(ehlo.lines.dropFirst().map { $0.split(separator: " ").first.map { $0.uppercased() } ?? "" })
    }

    public init(lines: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
                channel: any Channel) {
        self.lines = lines
        self.outbound = outbound
        self.channel = channel
    }

    public mutating func reply() async throws -> SMTPReplyReader.Reply {
        while true {
            guard let line = try await lines.next() else { throw ConnectionLost() }
            if let reply = try reader.feed(String(decoding: line.readableBytesView, as: UTF8.self)) { return reply }
        }
    }

    public func send(_ line: String) async throws {
        try await outbound.write(ByteBuffer(string: line + "\r\n"))
    }

    /// QUIT, and its 221 awaited (RFC 5321 4.1.1.10: the client SHOULD wait for it) for at
    /// most `quitWait`: the outcome is settled already.
    public mutating func quit() async {
        let channel = self.channel
        let cap = channel.eventLoop.scheduleTask(in: SMTPDialogue.quitWait) { channel.close(promise: nil) }
        defer { cap.cancel() }
        _ = try? await command("QUIT")
    }

    public mutating func command(_ line: String) async throws -> SMTPReplyReader.Reply {
        try await send(line)
        return try await reply()
    }

    /// The message, dot-stuffed (RFC 5321 4.5.2), then `.` on its own line, in 64 KiB
    /// writes: each completed write tells the idle timer the upload is moving.
    public func sendData(_ message: ByteBuffer) async throws {
        var data = ByteBufferAllocator().buffer(capacity: 0)
        DotStuffing.writeMultiline(message, into: &data)
        while data.readableBytes > 0 {
            try await outbound.write(data.readSlice(length: min(65536, data.readableBytes))!)
        }
    }
}

/// Reply lines: CRLF-terminated, at most 2048 octets (RFC 5321 4.5.3.1.5 says 512; some servers
/// send longer). A bare LF is tolerated from a server; an overlong line ends the dialogue.
struct ReplyLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    static let maxLine = 2048
    var plaintextGuard = PlaintextGuard()

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        // RFC 3207 5 (and CVE-2021-38371): nothing the server sent in clear after its reply to
        // STARTTLS may be read as a reply inside TLS.
        if plaintextGuard.isSealed && buffer.readableBytes > 0 { throw SMTPDialogue.ConnectionLost() }
        guard let newline = buffer.readableBytesView.firstIndex(of: 10) else {
            if buffer.readableBytes > Self.maxLine { throw SMTPDialogue.ConnectionLost() }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        guard length <= Self.maxLine else { throw SMTPDialogue.ConnectionLost() }
        var line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytesView.last == 13 { line.moveWriterIndex(to: line.writerIndex - 1) }
        let isFinalLine = line.readableBytes == 3 || line.getInteger(at: line.readerIndex + 3, as: UInt8.self) == UInt8(ascii: " ")
        if isFinalLine, plaintextGuard.replyEnds() && buffer.readableBytes > 0 { throw SMTPDialogue.ConnectionLost() }
        context.fireChannelRead(Self.wrapInboundOut(line))
        return .continue
    }
}

/// The STARTTLS boundary of a client connection: armed before STARTTLS is sent, sealed by the end
/// of its reply (after which any plaintext byte is an attack or a broken server), opened again
/// once TLS runs.
public final class PlaintextGuard: Sendable {
    private enum State { case open, armed, sealed }
    private let state = NIOLockedValueBox(State.open)

    public init() {}

    public func arm() { state.withLockedValue { $0 = .armed } }
    public func open() { state.withLockedValue { $0 = .open } }
    var isSealed: Bool { state.withLockedValue { $0 == .sealed } }

    /// A reply ended: true when it was the reply to STARTTLS (the connection is sealed now).
    func replyEnds() -> Bool {
        state.withLockedValue { state in
            guard state == .armed else { return false }
            state = .sealed
            return true
        }
    }
}

/// Closes the connection when the relay stays silent past the reply timeout.
final class CloseOnIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }
}
