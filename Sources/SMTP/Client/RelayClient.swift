import Foundation
import MailCore
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
        /// The longest a whole attempt may take, however the relay trickles its replies.
        public var sessionTimeout: TimeAmount

        public init(host: String, port: Int, helo: String, username: String? = nil, password: String? = nil,
                    connectTimeout: TimeAmount = .seconds(30), replyTimeout: TimeAmount = .seconds(300),
                    sessionTimeout: TimeAmount = .minutes(30)) {
            self.host = host
            self.port = port
            self.helo = helo
            self.username = username
            self.password = password
            self.connectTimeout = connectTimeout
            self.replyTimeout = replyTimeout
            self.sessionTimeout = sessionTimeout
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
    ///
    /// Only a 5xx to MAIL, RCPT, DATA or the end of data is permanent. A refused greeting, EHLO
    /// or AUTH says something about the relay or this server's credentials, not about the
    /// message: it is temporary, so a rotated gateway password defers mail instead of bouncing it.
    /// Every step expects its own reply code (RFC 5321 4.3.2); any other answer, even a positive
    /// one, ends the attempt as a temporary failure.
    public func relay(from sender: String, to recipients: [String], message: ByteBuffer) async -> [Outcome] {
        var outcomes = [Outcome?](repeating: nil, count: recipients.count)
        func rest(_ outcome: Outcome) -> [Outcome] { outcomes.map { $0 ?? outcome } }
        // RFC 6531 3.2: a non-ASCII address can only travel with SMTPUTF8. UTF-8 in header fields
        // travels with SMTPUTF8 when the relay offers it, else as 8-bit data under 8BITMIME, as
        // mail from clients that never asked for SMTPUTF8 always has (Postfix does the same).
        // RFC 6152: 8-bit data needs 8BITMIME (or SMTPUTF8); it is not converted here.
        let header = message.readableBytesView.prefix(HeaderSection.parse(message.readableBytesView).bodyOffset)
        let utf8Addresses = !sender.utf8.allSatisfy { $0 < 0x80 } || recipients.contains { !$0.utf8.allSatisfy { $0 < 0x80 } }
        let utf8Header = header.contains { $0 >= 0x80 }
        let eightBit = message.readableBytesView.contains { $0 >= 0x80 }
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            let timeout = configuration.replyTimeout
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(configuration.connectTimeout)
                .connect(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // Idle means neither a reply line nor a completed write for `timeout`: the
                        // message is written in chunks, so a slow upload is not idle.
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: timeout))
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ReplyLineDecoder()))
                        try channel.pipeline.syncOperations.addHandler(CloseOnIdle())
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            return rest(.temporary(code: nil, status: "4.4.1"))  // no answer from host
        }
        // A relay that trickles its replies must not hold the queue for longer than this.
        let limit = channel.channel.eventLoop.scheduleTask(in: configuration.sessionTimeout) { [channel] in
            channel.channel.close(promise: nil)
        }
        defer { limit.cancel() }
        do {
            return try await channel.executeThenClose { inbound, outbound in
                var dialogue = Dialogue(lines: inbound.makeAsyncIterator(), outbound: outbound, channel: channel.channel)
                do {
                    try Step.session.expect([220], try await dialogue.reply())
                    var ehlo = try await dialogue.command("EHLO \(configuration.helo)")
                    if [500, 502].contains(ehlo.code) {  // RFC 5321 4.1.4: an old server, try HELO
                        ehlo = try await dialogue.command("HELO \(configuration.helo)")
                        ehlo.lines = [ehlo.lines.first ?? ""]
                    }
                    try Step.session.expect([250], ehlo)
                    let extensions = Set(ehlo.lines.dropFirst().map { $0.split(separator: " ").first.map { $0.uppercased() } ?? "" })
                    if let username = configuration.username, let password = configuration.password {
                        let mechanisms = ehlo.lines.first { $0.uppercased().hasPrefix("AUTH") }?.uppercased().split(separator: " ") ?? []
                        guard mechanisms.contains("PLAIN") else { throw Refusal(outcome: .temporary(code: nil, status: "4.7.0")) }
                        let token = Data(("\0" + username + "\0" + password).utf8).base64EncodedString()
                        // RFC 4954 says 235; any 2xx counts (as in Postfix: smtp-sink answers 250).
                        try Step.session.expect(Set(200..<300), try await dialogue.command("AUTH PLAIN \(token)"))
                    }
                    let smtpUTF8 = extensions.contains("SMTPUTF8")
                    if utf8Addresses && !smtpUTF8 {
                        throw Refusal(outcome: .permanent(code: 553, status: "5.6.7"))  // RFC 6531 3.2
                    }
                    if eightBit && !extensions.contains("8BITMIME") && !smtpUTF8 {
                        throw Refusal(outcome: .permanent(code: 554, status: "5.6.3"))  // RFC 6152 3: no downgrade here
                    }
                    let body = eightBit && extensions.contains("8BITMIME") ? " BODY=8BITMIME" : ""
                    let utf8 = smtpUTF8 && (utf8Addresses || utf8Header) ? " SMTPUTF8" : ""
                    let size = extensions.contains("SIZE") ? " SIZE=\(message.readableBytes)" : ""
                    try Step.transaction.expect([250], try await dialogue.command("MAIL FROM:<\(sender)>\(body)\(utf8)\(size)"))
                    var open: [Int] = []
                    for (index, recipient) in recipients.enumerated() {
                        let reply = try await dialogue.command("RCPT TO:<\(recipient)>")
                        if [250, 251].contains(reply.code) {
                            open.append(index)
                        } else {
                            outcomes[index] = reply.isTemporary || reply.isPermanent ? Self.outcome(of: reply) : Self.unexpected(reply)
                        }
                    }
                    guard !open.isEmpty else {
                        await dialogue.quit()
                        return rest(.temporary(code: nil, status: "4.4.2"))
                    }
                    try Step.transaction.expect([354], try await dialogue.command("DATA"))
                    try await dialogue.sendData(message)
                    let final = try await dialogue.reply()
                    let result: Outcome = (200..<300).contains(final.code) ? .delivered
                        : final.isTemporary || final.isPermanent ? Self.outcome(of: final) : Self.unexpected(final)
                    for index in open { outcomes[index] = result }
                    await dialogue.quit()
                    return rest(.temporary(code: nil, status: "4.4.2"))
                } catch let refusal as Refusal {
                    await dialogue.quit()
                    return rest(refusal.outcome)
                }
            }
        } catch {
            return rest(.temporary(code: nil, status: "4.4.2"))  // bad connection: garbage, hang or close
        }
    }

    /// What a refusal means at each step: the session's (greeting, EHLO, AUTH) is never the
    /// message's fault; the transaction's (MAIL, DATA) is permanent when it says 5xx.
    private enum Step {
        case session, transaction

        func expect(_ expected: Set<Int>, _ reply: SMTPReplyReader.Reply) throws {
            if expected.contains(reply.code) { return }
            guard reply.isTemporary || reply.isPermanent else { throw Refusal(outcome: RelayClient.unexpected(reply)) }
            switch self {
            case .transaction: throw Refusal(outcome: RelayClient.outcome(of: reply))
            case .session:
                let status = reply.enhanced.map { "4" + $0.dropFirst() } ?? "4.0.0"
                throw Refusal(outcome: .temporary(code: reply.code, status: status))
            }
        }
    }

    /// A reply that is not the one the step expects (a 354 to the end of data, say).
    static func unexpected(_ reply: SMTPReplyReader.Reply) -> Outcome {
        .temporary(code: reply.code, status: "4.5.0")
    }

    static func outcome(of reply: SMTPReplyReader.Reply) -> Outcome {
        let status = reply.enhanced ?? (reply.isPermanent ? "5.0.0" : "4.0.0")
        return reply.isPermanent ? .permanent(code: reply.code, status: status) : .temporary(code: reply.code, status: status)
    }

    private struct Refusal: Error { var outcome: Outcome }
    struct ConnectionLost: Error {}

    static let quitWait = TimeAmount.seconds(10)

    private struct Dialogue {
        var lines: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
        var outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
        let channel: any Channel
        var reader = SMTPReplyReader()

        init(lines: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
             channel: any Channel) {
            self.lines = lines
            self.outbound = outbound
            self.channel = channel
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

        /// QUIT, and its 221 awaited (RFC 5321 4.1.1.10: the client SHOULD wait for it) for at
        /// most `quitWait`: the outcome is settled already.
        mutating func quit() async {
            let channel = self.channel
            let cap = channel.eventLoop.scheduleTask(in: RelayClient.quitWait) { channel.close(promise: nil) }
            defer { cap.cancel() }
            _ = try? await command("QUIT")
        }

        mutating func command(_ line: String) async throws -> SMTPReplyReader.Reply {
            try await send(line)
            return try await reply()
        }

        /// The message, dot-stuffed (RFC 5321 4.5.2), then `.` on its own line, in 64 KiB
        /// writes: each completed write tells the idle timer the upload is moving.
        func sendData(_ message: ByteBuffer) async throws {
            var data = ByteBufferAllocator().buffer(capacity: 0)
            DotStuffing.writeMultiline(message, into: &data)
            while data.readableBytes > 0 {
                try await outbound.write(data.readSlice(length: min(65536, data.readableBytes))!)
            }
        }
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
