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
        /// Where the next hop is: a host and port over TCP, or another transport.
        public var connector: any StreamConnector
        /// The EHLO name: the public mail domain, never the host's name (nothing about the core).
        public var helo: String
        public var username: String?
        public var password: String?
        /// The longest wait for each reply (RFC 5321 4.5.3.2 allows 5 minutes for most replies,
        /// 10 for the end of data; the queue retries anyway). The connection's own timeout is the
        /// connector's.
        public var replyTimeout: TimeAmount
        /// The longest a whole attempt may take, however the relay trickles its replies.
        public var sessionTimeout: TimeAmount
        /// STARTTLS (RFC 3207) toward the next hop.
        public var tls: TLSPolicy

        public init(host: String, port: Int, helo: String, username: String? = nil, password: String? = nil,
                    connectTimeout: TimeAmount = .seconds(30), replyTimeout: TimeAmount = .seconds(300),
                    sessionTimeout: TimeAmount = .minutes(30), tls: TLSPolicy = .none) {
            self.init(connector: TCPConnector(host: host, port: port, connectTimeout: connectTimeout), helo: helo,
                      username: username, password: password, replyTimeout: replyTimeout, sessionTimeout: sessionTimeout, tls: tls)
        }

        public init(connector: any StreamConnector, helo: String, username: String? = nil, password: String? = nil,
                    replyTimeout: TimeAmount = .seconds(300), sessionTimeout: TimeAmount = .minutes(30), tls: TLSPolicy = .none) {
            self.connector = connector
            self.tls = tls
            self.helo = helo
            self.username = username
            self.password = password
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

    /// How one attempt went, beyond the recipients' outcomes.
    public struct Attempt: Sendable, Equatable {
        public var outcomes: [Outcome]
        /// The message (or the attempt, if it failed) went over TLS.
        public var encrypted: Bool
        /// The TLS handshake after STARTTLS failed: under `.opportunistic`, a caller may try the
        /// same host again in clear (RFC 7435 opportunistic security: better than not at all).
        public var tlsFailed: Bool
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
        await attempt(from: sender, to: recipients, message: message).outcomes
    }

    /// `relay` with the attempt's TLS facts. `tls` overrides the configured policy (a retry in
    /// clear after a failed handshake).
    public func attempt(from sender: String, to recipients: [String], message: ByteBuffer, tls: TLSPolicy? = nil) async -> Attempt {
        let tls = tls ?? configuration.tls
        var encrypted = false
        var tlsFailed = false
        let outcomes = await relay(from: sender, to: recipients, message: message, tls: tls, encrypted: &encrypted, tlsFailed: &tlsFailed)
        return Attempt(outcomes: outcomes, encrypted: encrypted, tlsFailed: tlsFailed)
    }

    private func relay(from sender: String, to recipients: [String], message: ByteBuffer, tls: TLSPolicy,
                       encrypted: inout Bool, tlsFailed: inout Bool) async -> [Outcome] {
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
        let plaintextGuard = PlaintextGuard()
        do {
            channel = try await SMTPDialogue.connect(configuration.connector, group: group, replyTimeout: configuration.replyTimeout,
                                                     plaintextGuard: plaintextGuard)
        } catch {
            return rest(.temporary(code: nil, status: "4.4.1"))  // no answer from host
        }
        var tlsStarted = false
        // A relay that trickles its replies must not hold the queue for longer than this.
        let limit = channel.channel.eventLoop.scheduleTask(in: configuration.sessionTimeout) { [channel] in
            channel.channel.close(promise: nil)
        }
        defer { limit.cancel() }
        do {
            return try await channel.executeThenClose { inbound, outbound in
                var dialogue = SMTPDialogue(lines: inbound.makeAsyncIterator(), outbound: outbound, channel: channel.channel)
                do {
                    try Step.session.expect([220], try await dialogue.reply())
                    var ehlo = try await dialogue.hello(configuration.helo)
                    try Step.session.expect([250], ehlo)
                    var extensions = SMTPDialogue.extensions(of: ehlo)
                    if let upgrade = tls.upgrade {
                        if extensions.contains("STARTTLS") {
                            plaintextGuard.arm()
                            let reply = try await dialogue.command("STARTTLS")
                            if reply.code == 220 {
                                tlsStarted = true
                                try await upgrade(channel.channel)
                                plaintextGuard.open()
                            } else if tls.isRequired {
                                try Step.session.expect([220], reply)
                            } else {
                                // RFC 3207 4: a refused STARTTLS (454) leaves the session as it
                                // was: opportunistic delivery goes on in clear.
                                plaintextGuard.open()
                            }
                        }
                        if tlsStarted {
                            // RFC 3207 4.2: start over; what the server said in clear is void.
                            ehlo = try await dialogue.command("EHLO \(configuration.helo)")
                            try Step.session.expect([250], ehlo)
                            extensions = SMTPDialogue.extensions(of: ehlo)
                            encrypted = true
                        } else if tls.isRequired {
                            throw Refusal(outcome: .temporary(code: nil, status: "4.7.10"))  // RFC 5248: encryption needed
                        }
                    }
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
            // A failed handshake, or cleartext after the 220 to STARTTLS (the guard sealed the
            // connection): either way TLS failed here, which opportunistic delivery may retry in
            // clear — as it would if the STARTTLS offer had been stripped.
            if (tlsStarted || plaintextGuard.isSealed) && !encrypted {
                tlsFailed = true
                return rest(.temporary(code: nil, status: "4.7.5"))  // RFC 5248: cryptographic failure
            }
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

}
