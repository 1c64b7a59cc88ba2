import Foundation
import Logging
import NIOCore
import NIOPosix
import Wire

/// Carries one message over SMTP to the next hop (the gateway, or any SMTP server): EHLO,
/// AUTH PLAIN when configured, MAIL, RCPT for each recipient, DATA. The outcome is per recipient;
/// anything that goes wrong with the connection or the dialogue — refused connection, a hang,
/// garbage, a close in the middle — is a temporary failure for every recipient still open, so the
/// queue retries later (RFC 5321 4.5.4.1). Replies are kept to their codes by the callers.
public struct RelayClient: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// The EHLO name: the public mail domain, never the host's name (nothing about the core).
        public var helo: String
        public var username: String?
        public var password: String?
        /// The longest wait for the connection and for each reply (RFC 5321 4.5.3.2 allows 5
        /// minutes for most replies, 10 for the end of data; the queue retries anyway).
        public var connectTimeout: TimeAmount
        public var replyTimeout: TimeAmount

        public init(host: String, port: Int, helo: String, username: String? = nil, password: String? = nil,
                    connectTimeout: TimeAmount = .seconds(30), replyTimeout: TimeAmount = .seconds(300)) {
            self.host = host
            self.port = port
            self.helo = helo
            self.username = username
            self.password = password
            self.connectTimeout = connectTimeout
            self.replyTimeout = replyTimeout
        }
    }

    /// What happened to one recipient.
    public enum Outcome: Sendable, Equatable {
        case delivered
        /// Try again later. `code` is nil when the relay gave no usable reply.
        case temporary(code: Int?, status: String)
        case permanent(code: Int, status: String)
    }

    public let configuration: Configuration
    private let group: any EventLoopGroup

    public init(configuration: Configuration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.configuration = configuration
        self.group = group
    }

    /// Relays `message` (CRLF text, not dot-stuffed) from `sender` to `recipients`; one outcome
    /// per recipient, in order.
    public func relay(from sender: String, to recipients: [String], message: ByteBuffer) async -> [Outcome] {
        var outcomes = [Outcome?](repeating: nil, count: recipients.count)
        func rest(_ outcome: Outcome) -> [Outcome] { outcomes.map { $0 ?? outcome } }
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            let timeout = configuration.replyTimeout
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(configuration.connectTimeout)
                .connect(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: timeout))
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ReplyLineDecoder()))
                        try channel.pipeline.syncOperations.addHandler(CloseOnIdle())
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            return rest(.temporary(code: nil, status: "4.4.1"))  // no answer from host
        }
        do {
            return try await channel.executeThenClose { inbound, outbound in
                var dialogue = Dialogue(lines: inbound.makeAsyncIterator(), outbound: outbound)
                func expect(_ reply: SMTPReplyReader.Reply, _ what: String) throws -> SMTPReplyReader.Reply {
                    if reply.isPositive { return reply }
                    throw Refusal(reply: reply)
                }
                do {
                    _ = try expect(try await dialogue.reply(), "greeting")
                    let ehlo = try expect(try await dialogue.command("EHLO \(configuration.helo)"), "EHLO")
                    let extensions = Set(ehlo.lines.dropFirst().map { $0.split(separator: " ").first.map { $0.uppercased() } ?? "" })
                    if let username = configuration.username, let password = configuration.password {
                        let mechanisms = ehlo.lines.first { $0.uppercased().hasPrefix("AUTH") }?.uppercased().split(separator: " ") ?? []
                        guard mechanisms.contains("PLAIN") else { throw Refusal(reply: .init(code: 454, enhanced: "4.7.0", lines: [])) }
                        let token = Data(("\0" + username + "\0" + password).utf8).base64EncodedString()
                        _ = try expect(try await dialogue.command("AUTH PLAIN \(token)"), "AUTH")
                    }
                    let body = extensions.contains("8BITMIME") && message.readableBytesView.contains(where: { $0 >= 0x80 }) ? " BODY=8BITMIME" : ""
                    let size = extensions.contains("SIZE") ? " SIZE=\(message.readableBytes)" : ""
                    _ = try expect(try await dialogue.command("MAIL FROM:<\(sender)>\(body)\(size)"), "MAIL")
                    var open: [Int] = []
                    for (index, recipient) in recipients.enumerated() {
                        let reply = try await dialogue.command("RCPT TO:<\(recipient)>")
                        if reply.isPositive { open.append(index) } else { outcomes[index] = Self.outcome(of: reply) }
                    }
                    guard !open.isEmpty else {
                        try? await dialogue.send("QUIT")
                        return rest(.temporary(code: nil, status: "4.4.2"))
                    }
                    _ = try expect(try await dialogue.command("DATA"), "DATA")
                    try await dialogue.sendData(message)
                    let final = try await dialogue.reply()
                    for index in open { outcomes[index] = final.isPositive ? .delivered : Self.outcome(of: final) }
                    try? await dialogue.send("QUIT")
                    return rest(.temporary(code: nil, status: "4.4.2"))
                } catch let refusal as Refusal {
                    // A refusal of the whole transaction (greeting, EHLO, AUTH, MAIL, DATA).
                    try? await dialogue.send("QUIT")
                    return rest(Self.outcome(of: refusal.reply))
                }
            }
        } catch {
            return rest(.temporary(code: nil, status: "4.4.2"))  // bad connection: garbage, hang or close
        }
    }

    static func outcome(of reply: SMTPReplyReader.Reply) -> Outcome {
        let status = reply.enhanced ?? (reply.isPermanent ? "5.0.0" : "4.0.0")
        return reply.isPermanent ? .permanent(code: reply.code, status: status) : .temporary(code: reply.code, status: status)
    }

    private struct Refusal: Error { var reply: SMTPReplyReader.Reply }
    struct ConnectionLost: Error {}

    private struct Dialogue {
        var lines: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
        var outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
        var reader = SMTPReplyReader()

        init(lines: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
            self.lines = lines
            self.outbound = outbound
        }

        mutating func reply() async throws -> SMTPReplyReader.Reply {
            while true {
                guard let line = try await lines.next() else { throw ConnectionLost() }
                if let reply = try reader.feed(String(decoding: line.readableBytesView, as: UTF8.self)) { return reply }
            }
        }

        func send(_ line: String) async throws {
            try await outbound.write(ByteBuffer(string: line + "\r\n"))
        }

        mutating func command(_ line: String) async throws -> SMTPReplyReader.Reply {
            try await send(line)
            return try await reply()
        }

        /// The message, dot-stuffed (RFC 5321 4.5.2), then `.` on its own line.
        func sendData(_ message: ByteBuffer) async throws {
            try await outbound.write(RelayClient.dotStuffed(message))
        }
    }

    /// `message` with a `.` added before every line that starts with one, ending in CRLF.CRLF.
    static func dotStuffed(_ message: ByteBuffer) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: message.readableBytes + 64)
        let bytes = message.readableBytesView
        var atLineStart = true
        var runStart = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if atLineStart && bytes[index] == UInt8(ascii: ".") {
                out.writeBytes(bytes[runStart..<index])
                out.writeInteger(UInt8(ascii: "."))
                runStart = index
            }
            atLineStart = bytes[index] == 10 && index > bytes.startIndex && bytes[index - 1] == 13
            index += 1
        }
        out.writeBytes(bytes[runStart..<bytes.endIndex])
        if !(bytes.count >= 2 && bytes[bytes.endIndex - 2] == 13 && bytes[bytes.endIndex - 1] == 10) && !bytes.isEmpty {
            out.writeString("\r\n")
        }
        out.writeString(".\r\n")
        return out
    }
}

/// Reply lines: CRLF-terminated, at most 2048 octets (RFC 5321 4.5.3.1.5 says 512; some servers
/// send longer). A bare LF is tolerated from a server; an overlong line ends the dialogue.
struct ReplyLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    static let maxLine = 2048

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: 10) else {
            if buffer.readableBytes > Self.maxLine { throw RelayClient.ConnectionLost() }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        guard length <= Self.maxLine else { throw RelayClient.ConnectionLost() }
        var line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytesView.last == 13 { line.moveWriterIndex(to: line.writerIndex - 1) }
        context.fireChannelRead(Self.wrapInboundOut(line))
        return .continue
    }
}

/// Closes the connection when the relay stays silent past the reply timeout.
final class CloseOnIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }
}
