import Foundation
import MailCore
import NIOCore

/// The SMTP submission dialogue as a plain value: input in, actions out. It touches no channel,
/// clock or disk; `SubmissionServer` moves bytes and performs the effects it asks for.
///
/// Inputs: `command(_:)`, `dataLine(_:)`, `chunk(_:)` and `framingError(_:)`, chosen by
/// `inputMode`. Effects (`.authenticate`, `.checkRecipient`, `.deliver`) are answered through
/// `authenticated(_:)`, `recipientChecked(_:)` and `delivered(_:)`; no other input may be fed while
/// one is outstanding (`awaitingEffect`).
public struct SubmissionSession: Sendable {
    /// Who is on the other side, which decides what the dialogue allows.
    public enum Role: Sendable, Equatable {
        /// Users submitting their own mail (SMTP-2, SMTP-3): AUTH first; the envelope sender and
        /// the From header are the login's.
        case submission
        /// A trusted peer handing mail over (the core to the gateway, the gateway to the core):
        /// AUTH first, then any envelope, the null sender too; the header is the peer's business.
        case relay
        /// The public MX of the Internet domain (GW-2): no AUTH; any sender, which the backend
        /// checks (`checkSender`: blocklists, SPF); STARTTLS when a certificate is configured.
        case exchange
    }

    public struct Configuration: Sendable {
        /// Announced in the greeting and EHLO: the mail domain, never the machine's host name.
        public var domain: String
        public var role: Role
        /// Offer STARTTLS (RFC 3207; the exchange role only: I2P already encrypts the others).
        public var offersSTARTTLS: Bool
        public var maxMessageSize: Int
        public var maxRecipients: Int
        /// Failed AUTH attempts after which the connection is closed (SMTP-6).
        public var maxAuthFailures: Int
        /// Bad commands after which the connection is closed.
        public var maxErrors: Int

        public init(domain: String = "mail.i2p", role: Role = .submission, offersSTARTTLS: Bool = false,
                    maxMessageSize: Int = 32 * 1024 * 1024, maxRecipients: Int = 100,
                    maxAuthFailures: Int = 3, maxErrors: Int = 20) {
            self.domain = domain
            self.role = role
            self.offersSTARTTLS = offersSTARTTLS && role == .exchange
            self.maxMessageSize = maxMessageSize
            self.maxRecipients = maxRecipients
            self.maxAuthFailures = maxAuthFailures
            self.maxErrors = maxErrors
        }
    }

    public enum Action: Sendable, Equatable {
        case reply(SMTPReply)
        case authenticate(username: String, password: String)
        /// The exchange role's check of a new transaction's sender (nil: the null sender) and the
        /// client's EHLO name, answered through `senderChecked(_:)`.
        case checkSender(EmailAddress?, helo: String)
        /// `earlier`: the recipients this transaction already accepted (the Internet quota counts them).
        case checkRecipient(EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress])
        case deliver(SubmissionEnvelope, ByteBuffer)
        /// Close the connection after the replies before it are written.
        case close
        /// Write the replies before it in clear, then start TLS as the server (RFC 3207 4): any
        /// input the client sent after STARTTLS is thrown away unread (it came before the
        /// handshake, so nothing vouches for it), and the session starts over.
        case startTLS
    }

    /// How the driver must cut the next input.
    public enum InputMode: Equatable, Sendable {
        /// Command lines, at most 512 octets with CRLF (RFC 5321 4.5.3.1.4).
        case command
        /// A SASL response line, at most 12288 octets (RFC 4954 4).
        case authResponse
        /// DATA text lines, at most 1000 octets with CRLF (RFC 5321 4.5.3.1.6).
        case dataLine
        /// Raw BDAT bytes still to read (RFC 3030).
        case chunk(remaining: Int)

        public var lineLimit: Int {
            switch self {
            case .command: return 512
            case .authResponse: return 12288
            case .dataLine: return 1000
            case .chunk: return 512
            }
        }
    }

    public enum FramingError: Sendable { case tooLong, bareLineBreak }

    private enum AuthStep: Sendable {
        case plain
        case loginUsername
        case loginPassword(username: String)
    }

    private struct Transaction: Sendable {
        var sender: EmailAddress?
        var declaredSize: Int?
        var bodyType: BodyType
        var smtpUTF8: Bool
        var recipients: [EmailAddress] = []
    }

    /// A message being received, by DATA or by BDAT chunks.
    private struct Body: Sendable {
        var bytes: ByteBuffer
        var overflow = false
        var lineTooLong = false
        var badBytes = false
        var chunked = false
    }

    private enum Pending: Sendable { case none, auth, sender(Transaction), recipient(EmailAddress), delivery }

    public let configuration: Configuration
    private var greeted = false
    /// The role now: a submission session becomes a relay when the peer logs in.
    private var role: Role
    private var peerLoggedIn = false
    /// The client's EHLO/HELO name: SPF checks it for the null sender (RFC 7208 2.3); never stored.
    private var helo = ""
    private var tlsActive = false
    private var login: EmailAddress?
    private var authStep: AuthStep?
    private var transaction: Transaction?
    private var body: Body?
    private var receivingData = false
    private var chunkRemaining = 0
    private var chunkIsLast = false
    /// A BDAT chunk whose bytes are read and thrown away (the command was refused).
    private var discardingChunk = false
    private var pending: Pending = .none
    private var authFailures = 0
    private var errors = 0
    private var closed = false

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.role = configuration.role
    }

    public var awaitingEffect: Bool {
        if case .none = pending { return false }
        return true
    }

    public var isClosed: Bool { closed }

    public var inputMode: InputMode {
        if chunkRemaining > 0 { return .chunk(remaining: chunkRemaining) }
        if receivingData { return .dataLine }
        if authStep != nil { return .authResponse }
        return .command
    }

    /// The greeting (RFC 5321 4.3.1). Names the mail domain only: no host name, no time (SMTP-8).
    public func greeting() -> SMTPReply {
        SMTPReply(220, lines: ["\(configuration.domain) ESMTP Postern"])
    }

    // MARK: - Inputs

    public mutating func framingError(_ error: FramingError) -> [Action] {
        switch inputMode {
        case .dataLine:
            if error == .tooLong {
                body?.lineTooLong = true
                return []
            }
            // RFC 5321 2.3.8 and 4.1.1.4: only CRLF.CRLF ends DATA. A bare CR or LF inside DATA is
            // how SMTP smuggling works; we refuse the message and end the session, as Postfix does.
            closed = true
            return [.reply(SMTPReply(521, "5.5.2", "Bare CR or LF in message data: lines must end in CRLF (RFC 5321 2.3.8); closing connection")), .close]
        case .authResponse:
            authStep = nil
            return countError(SMTPReply(501, "5.5.2", "Invalid SASL response line"))
        case .command, .chunk:
            return countError(error == .tooLong ? .commandTooLong : .bareLineBreakInCommand)
        }
    }

    public mutating func command(_ line: ByteBuffer) -> [Action] {
        precondition(!awaitingEffect && !closed)
        if authStep != nil { return authResponse(line) }
        switch SMTPCommand.parse(line) {
        case .failure(let error):
            return countError(error.reply)
        case .success(let command):
            return handle(command)
        }
    }

    /// One line of DATA, without its CRLF, still dot-stuffed.
    public mutating func dataLine(_ line: ByteBuffer) -> [Action] {
        precondition(receivingData && !awaitingEffect)
        var line = line
        if line.readableBytes == 1 && line.getInteger(at: line.readerIndex, as: UInt8.self) == UInt8(ascii: ".") {
            receivingData = false
            return finishMessage()
        }
        // RFC 5321 4.5.2: a leading dot was doubled by the client.
        if line.getInteger(at: line.readerIndex, as: UInt8.self) == UInt8(ascii: ".") {
            line.moveReaderIndex(forwardBy: 1)
        }
        append(line, addCRLF: true)
        return []
    }

    /// Several lines of DATA at once, CRLFs included, none of them starting with "." (the
    /// framer's `nextOrdinaryLines`): stored as they are, in one write.
    public mutating func dataLines(_ lines: ByteBuffer) -> [Action] {
        precondition(receivingData && !awaitingEffect)
        append(lines, addCRLF: false)
        return []
    }

    /// Raw BDAT bytes (RFC 3030), never more than `inputMode`'s remaining count.
    public mutating func chunk(_ bytes: ByteBuffer) -> [Action] {
        precondition(chunkRemaining > 0 && bytes.readableBytes <= chunkRemaining)
        chunkRemaining -= bytes.readableBytes
        if !discardingChunk { append(bytes, addCRLF: false) }
        guard chunkRemaining == 0 else { return [] }
        if discardingChunk {
            discardingChunk = false
            return []
        }
        if chunkIsLast { return finishMessage() }
        if let body, body.overflow {
            // RFC 3030 2: a failed chunk fails the transaction.
            resetTransaction()
            return [.reply(sizeExceeded())]
        }
        return [.reply(SMTPReply(250, "2.0.0", "\(body?.bytes.readableBytes ?? 0) octets received"))]
    }

    // MARK: - Effect results

    public mutating func authenticated(_ outcome: SMTPAuthOutcome) -> [Action] {
        guard case .auth = pending else { preconditionFailure("no authentication pending") }
        pending = .none
        switch outcome {
        case .success(let address):
            // A relay port is for the peer only: an account's login gets nothing there.
            guard role != .relay else { return authFailed() }
            login = address
            return [.reply(SMTPReply(235, "2.7.0", "Authentication successful"))]
        case .peer:
            peerLoggedIn = true
            role = .relay
            return [.reply(SMTPReply(235, "2.7.0", "Authentication successful"))]
        case .failure:
            return authFailed()
        case .temporaryFailure:
            return [.reply(.authTemporary)]
        }
    }

    public mutating func senderChecked(_ verdict: RecipientVerdict) -> [Action] {
        guard case .sender(let checked) = pending else { preconditionFailure("no sender check pending") }
        pending = .none
        switch verdict {
        case .accepted:
            transaction = checked
            return [.reply(SMTPReply(250, "2.1.0", "Sender OK"))]
        case .rejected(let reply):
            return [.reply(reply)]
        }
    }

    public mutating func recipientChecked(_ verdict: RecipientVerdict) -> [Action] {
        guard case .recipient(let recipient) = pending else { preconditionFailure("no recipient check pending") }
        pending = .none
        switch verdict {
        case .accepted:
            if !(transaction?.recipients.contains(recipient) ?? true) { transaction?.recipients.append(recipient) }
            return [.reply(SMTPReply(250, "2.1.5", "Recipient OK"))]
        case .rejected(let reply):
            // An exchange counts refused recipients as errors: whoever tries name after name
            // (harvesting the account list) is cut off after `maxErrors`.
            if role == .exchange && reply.code >= 500 { return countError(reply) }
            return [.reply(reply)]
        }
    }

    public mutating func delivered(_ outcome: DeliveryOutcome) -> [Action] {
        guard case .delivery = pending else { preconditionFailure("no delivery pending") }
        pending = .none
        resetTransaction()
        switch outcome {
        case .accepted: return [.reply(SMTPReply(250, "2.0.0", "Message accepted for delivery"))]
        case .rejected(let reply): return [.reply(reply)]
        }
    }

    // MARK: - Commands

    private mutating func handle(_ command: SMTPCommand) -> [Action] {
        // A BDAT's bytes follow the command whatever we answer: read them even when refusing it.
        if case .bdat(let size, let last) = command {
            return bdat(size: size, last: last)
        }
        switch command {
        case .quit:
            closed = true
            return [.reply(.bye), .close]
        case .noop:
            return [.reply(.ok)]
        case .rset:
            resetTransaction()
            return [.reply(.ok)]
        case .ehlo(let name):
            greeted = true
            helo = String(name.prefix(255))
            resetTransaction()
            return [.reply(ehloReply())]
        case .helo(let name):
            greeted = true
            helo = String(name.prefix(255))
            resetTransaction()
            return [.reply(SMTPReply(250, lines: [configuration.domain]))]
        case .auth(let mechanism, let initial):
            guard role != .exchange else {
                return countError(SMTPReply(502, "5.5.1", "AUTH not available here: this is a mail exchanger"))
            }
            return auth(mechanism: mechanism, initial: initial)
        case .starttls:
            return startTLS()
        default:
            break
        }
        // SMTP-2: nothing else before authentication (an exchange takes mail from anyone).
        let login = self.login
        guard login != nil || peerLoggedIn || role == .exchange else { return countError(.authRequired) }
        switch command {
        case .mail(let reversePath, let parameters):
            return mail(from: reversePath, parameters: parameters, login: login)
        case .rcpt(let forwardPath, _):
            return rcpt(forwardPath)
        case .data:
            return data()
        case .vrfy:
            // SPEC SMTP-1: VRFY reveals nothing (RFC 5321 3.5.3).
            return [.reply(SMTPReply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"))]
        case .expn:
            return countError(SMTPReply(502, "5.5.1", "EXPN not available"))
        case .help:
            return [.reply(SMTPReply(214, "2.0.0", "See RFC 5321; commands: EHLO HELO AUTH MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT"))]
        default:
            return countError(.unrecognised)
        }
    }

    private func ehloReply() -> SMTPReply {
        var lines = [
            configuration.domain,
            "PIPELINING",                                   // RFC 2920
            "SIZE \(configuration.maxMessageSize)",         // RFC 1870
            "8BITMIME",                                     // RFC 6152
            "ENHANCEDSTATUSCODES",                          // RFC 2034
            "SMTPUTF8",                                     // RFC 6531
            "CHUNKING",                                     // RFC 3030
        ]
        switch role {
        case .submission, .relay: lines.append("AUTH PLAIN LOGIN")         // RFC 4954
        case .exchange: if configuration.offersSTARTTLS && !tlsActive { lines.append("STARTTLS") }  // RFC 3207
        }
        lines.append("HELP")
        return SMTPReply(250, lines: lines)
    }

    private mutating func startTLS() -> [Action] {
        guard configuration.offersSTARTTLS else {
            // SMTP-2: no TLS on the I2P side; I2P encrypts end to end.
            let why = role == .exchange ? "no certificate is configured" : "I2P already encrypts this connection"
            return countError(SMTPReply(502, "5.5.1", "STARTTLS not offered: \(why)"))
        }
        guard !tlsActive else { return countError(SMTPReply(503, "5.5.1", "TLS already active")) }
        guard greeted else { return countError(SMTPReply(503, "5.5.1", "Send EHLO first")) }
        // RFC 3207 4.2: after the handshake the client starts over with EHLO; nothing it said
        // before (EHLO name, transaction) survives.
        tlsActive = true
        greeted = false
        helo = ""
        resetTransaction()
        return [.reply(SMTPReply(220, "2.0.0", "Ready to start TLS")), .startTLS]
    }

    private mutating func auth(mechanism: String, initial: String?) -> [Action] {
        // RFC 4954 4: AUTH is an ESMTP command, not allowed after a successful AUTH or in a transaction.
        guard greeted else { return countError(SMTPReply(503, "5.5.1", "Send EHLO first")) }
        guard login == nil && !peerLoggedIn else { return countError(SMTPReply(503, "5.5.1", "Already authenticated")) }
        guard transaction == nil else { return countError(SMTPReply(503, "5.5.1", "AUTH not allowed during a mail transaction")) }
        switch mechanism {
        case "PLAIN":
            guard let initial else {
                authStep = .plain
                return [.reply(SMTPReply(334, lines: [""]))]
            }
            return plainResponse(initial)
        case "LOGIN":
            guard let initial else {
                authStep = .loginUsername
                return [.reply(SMTPReply(334, lines: ["VXNlcm5hbWU6"]))]  // "Username:"
            }
            return loginUsername(initial)
        default:
            return countError(SMTPReply(504, "5.5.4", "Unrecognized authentication mechanism: use PLAIN or LOGIN"))
        }
    }

    private mutating func authResponse(_ line: ByteBuffer) -> [Action] {
        let text = String(decoding: line.readableBytesView, as: UTF8.self)
        guard let step = authStep else { return [] }
        authStep = nil
        // RFC 4954 4: "*" cancels the exchange.
        if text == "*" { return [.reply(SMTPReply(501, "5.0.0", "Authentication canceled"))] }
        switch step {
        case .plain: return plainResponse(text)
        case .loginUsername: return loginUsername(text)
        case .loginPassword(let username):
            guard let password = Self.decodeBase64(text) else { return malformedAuth() }
            return startAuthentication(username: username, password: String(decoding: password, as: UTF8.self))
        }
    }

    private mutating func plainResponse(_ text: String) -> [Action] {
        // RFC 4954 4: "=" is an empty initial response.
        guard text != "=", let decoded = Self.decodeBase64(text) else { return malformedAuth() }
        // RFC 4616 2: [authzid] NUL authcid NUL passwd
        let parts = decoded.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return malformedAuth() }
        let authzid = String(decoding: parts[0], as: UTF8.self)
        let username = String(decoding: parts[1], as: UTF8.self)
        let password = String(decoding: parts[2], as: UTF8.self)
        guard !username.isEmpty, !password.isEmpty else { return malformedAuth() }
        // Acting for someone else is not allowed: the authorization identity must be the login.
        if !authzid.isEmpty && authzid.lowercased() != username.lowercased() { return authFailed() }
        return startAuthentication(username: username, password: password)
    }

    private mutating func loginUsername(_ text: String) -> [Action] {
        guard let decoded = Self.decodeBase64(text), !decoded.isEmpty else { return malformedAuth() }
        authStep = .loginPassword(username: String(decoding: decoded, as: UTF8.self))
        return [.reply(SMTPReply(334, lines: ["UGFzc3dvcmQ6"]))]  // "Password:"
    }

    private mutating func startAuthentication(username: String, password: String) -> [Action] {
        guard username.utf8.count <= 320, password.utf8.count <= 1024 else { return authFailed() }
        pending = .auth
        return [.authenticate(username: username, password: password)]
    }

    /// A response that cannot be decoded counts as a failed attempt: it is how guessing scripts look.
    private mutating func malformedAuth() -> [Action] {
        authFailures += 1
        if authFailures >= configuration.maxAuthFailures {
            closed = true
            return [.reply(.tooManyAuthFailures), .close]
        }
        return [.reply(SMTPReply(501, "5.5.2", "Cannot decode SASL response (base64 expected)"))]
    }

    private mutating func authFailed() -> [Action] {
        authFailures += 1
        if authFailures >= configuration.maxAuthFailures {
            closed = true
            return [.reply(.tooManyAuthFailures), .close]
        }
        return [.reply(.authInvalid)]
    }

    private mutating func mail(from reversePath: EmailAddress?, parameters: [MailParameter], login: EmailAddress?) -> [Action] {
        guard transaction == nil else { return countError(SMTPReply(503, "5.5.1", "Nested MAIL command")) }
        // RFC 5321 4.1.4: MAIL before EHLO/HELO is a bad sequence.
        guard greeted else { return countError(SMTPReply(503, "5.5.1", "Send EHLO first")) }
        var sender = reversePath
        if role == .submission, let login {
            // SMTP-3: the envelope sender is exactly the account; no null sender on submission.
            guard let reversePath else {
                return [.reply(SMTPReply(553, "5.7.1", "Null sender not allowed on submission"))]
            }
            guard reversePath.canonical == login.canonical else {
                return [.reply(SMTPReply(553, "5.7.1", "Sender address must be your own address <\(login)>"))]
            }
            sender = login
        }
        var transaction = Transaction(sender: sender, declaredSize: nil, bodyType: .sevenBit, smtpUTF8: false)
        for parameter in parameters {
            switch parameter {
            case .size(let size):
                // RFC 1870 6.2
                if size > configuration.maxMessageSize { return [.reply(sizeExceeded())] }
                transaction.declaredSize = size
            case .body(let type): transaction.bodyType = type
            case .smtputf8: transaction.smtpUTF8 = true
            case .auth: break
            }
        }
        if !transaction.smtpUTF8, let sender, sender.description.utf8.contains(where: { $0 >= 0x80 }) {
            return [.reply(SMTPCommandError.nonASCIIAddress.reply)]
        }
        if role == .exchange {
            pending = .sender(transaction)
            return [.checkSender(sender, helo: helo)]
        }
        self.transaction = transaction
        return [.reply(SMTPReply(250, "2.1.0", "Sender OK"))]
    }

    private mutating func rcpt(_ recipient: EmailAddress) -> [Action] {
        guard let transaction else { return countError(SMTPReply(503, "5.5.1", "Need MAIL before RCPT")) }
        guard body == nil else { return countError(SMTPReply(503, "5.5.1", "RCPT not allowed during BDAT")) }
        if !transaction.smtpUTF8 && recipient.description.utf8.contains(where: { $0 >= 0x80 }) {
            return [.reply(SMTPCommandError.nonASCIIAddress.reply)]
        }
        // RFC 5321 4.5.3.1.10: 452 for too many recipients, the client may send the rest later.
        guard transaction.recipients.count < configuration.maxRecipients else {
            return [.reply(SMTPReply(452, "4.5.3", "Too many recipients: at most \(configuration.maxRecipients) per message"))]
        }
        pending = .recipient(recipient)
        return [.checkRecipient(recipient, sender: transaction.sender, declaredSize: transaction.declaredSize,
                                earlier: transaction.recipients)]
    }

    private mutating func data() -> [Action] {
        guard let transaction else { return countError(SMTPReply(503, "5.5.1", "Need MAIL before DATA")) }
        guard body == nil else { return countError(SMTPReply(503, "5.5.1", "DATA not allowed after BDAT")) }
        guard !transaction.recipients.isEmpty else { return countError(SMTPReply(554, "5.5.1", "No valid recipients")) }
        body = Body(bytes: ByteBufferAllocator().buffer(capacity: min(transaction.declaredSize ?? 16 * 1024, configuration.maxMessageSize)))
        receivingData = true
        return [.reply(SMTPReply(354, lines: ["End data with <CR><LF>.<CR><LF>"]))]
    }

    private mutating func bdat(size: Int, last: Bool) -> [Action] {
        chunkRemaining = size
        chunkIsLast = last
        func refuse(_ reply: SMTPReply) -> [Action] {
            if size > 0 { discardingChunk = true }
            return countError(reply)
        }
        guard login != nil || peerLoggedIn || role == .exchange else { return refuse(.authRequired) }
        guard let transaction else { return refuse(SMTPReply(503, "5.5.1", "Need MAIL before BDAT")) }
        guard !transaction.recipients.isEmpty else { return refuse(SMTPReply(554, "5.5.1", "No valid recipients")) }
        if body == nil {
            body = Body(bytes: ByteBufferAllocator().buffer(capacity: min(size, configuration.maxMessageSize)), chunked: true)
        }
        if size == 0 {
            // RFC 3030 2: "BDAT 0 LAST" ends the message; a zero-size non-last chunk is acknowledged.
            return last ? finishMessage() : [.reply(SMTPReply(250, "2.0.0", "0 octets received"))]
        }
        return []
    }

    private mutating func append(_ bytes: ByteBuffer, addCRLF: Bool) {
        guard var current = body else { return }
        body = nil  // keep the buffer uniquely referenced while writing into it
        let incoming = bytes.readableBytes + (addCRLF ? 2 : 0)
        if current.overflow || current.bytes.readableBytes + incoming > configuration.maxMessageSize {
            // SMTP-5: keep reading to the end, but hold nothing beyond the limit.
            current.overflow = true
        } else {
            if !current.badBytes && bytes.withUnsafeReadableBytes({ $0.count > 0 && memchr($0.baseAddress!, 0, $0.count) != nil }) {
                current.badBytes = true
            }
            var bytes = bytes
            current.bytes.writeBuffer(&bytes)
            if addCRLF { current.bytes.writeStaticString("\r\n") }
        }
        body = current
    }

    private mutating func finishMessage() -> [Action] {
        guard let transaction, let finished = body else { return [.reply(.badSequence)] }
        body = nil
        if finished.overflow {
            resetTransaction()
            return [.reply(sizeExceeded())]
        }
        if finished.lineTooLong {
            resetTransaction()
            return [.reply(SMTPReply(554, "5.6.0", "Message refused: a line is longer than 1000 octets (RFC 5321 4.5.3.1.6)"))]
        }
        if finished.badBytes {
            resetTransaction()
            return [.reply(SMTPReply(554, "5.6.0", "Message refused: it contains NUL characters"))]
        }
        if finished.chunked, let problem = MessageText.lineProblem(in: finished.bytes.readableBytesView) {
            resetTransaction()
            return [.reply(SMTPReply(554, "5.6.0", "Message refused: \(problem)"))]
        }
        // SMTP-3: the header From must be the account's address (a display name is fine).
        if role == .submission, let sender = transaction.sender,
           let problem = Self.fromHeaderProblem(in: finished.bytes, login: sender) {
            resetTransaction()
            return [.reply(SMTPReply(553, "5.7.1", problem))]
        }
        pending = .delivery
        let envelope = SubmissionEnvelope(sender: transaction.sender, recipients: transaction.recipients,
                                          bodyType: transaction.bodyType, smtpUTF8: transaction.smtpUTF8, overTLS: tlsActive)
        return [.deliver(envelope, finished.bytes)]
    }

    /// Why the From header is unacceptable, or nil. A missing From is acceptable: the server adds
    /// the account's address (PRIV-1).
    static func fromHeaderProblem(in message: ByteBuffer, login: EmailAddress) -> String? {
        let header = HeaderSection.parse(message.readableBytesView)
        let fromFields = header.fields(named: "From")
        if fromFields.isEmpty { return nil }
        guard fromFields.count == 1 else { return "Message has more than one From header field (RFC 5322 3.6)" }
        let addresses = AddressList.addresses(in: fromFields[0].value)
        guard addresses.count == 1, let address = addresses[0] else {
            return "From header must hold exactly your own address <\(login)>"
        }
        guard address.canonical == login.canonical else {
            return "From header address <\(address)> is not your address <\(login)>; a display name is allowed, another address is not"
        }
        return nil
    }

    private func sizeExceeded() -> SMTPReply {
        SMTPReply(552, "5.3.4", "Message size exceeds fixed maximum message size of \(configuration.maxMessageSize) octets")
    }

    private mutating func resetTransaction() {
        transaction = nil
        body = nil
        receivingData = false
        if !discardingChunk { chunkRemaining = 0 }
    }

    /// Replies with an error and closes the session once the client has made too many of them.
    private mutating func countError(_ reply: SMTPReply) -> [Action] {
        errors += 1
        if errors >= configuration.maxErrors {
            closed = true
            return [.reply(reply), .reply(SMTPReply(421, "4.7.0", "Too many errors, closing connection")), .close]
        }
        return [.reply(reply)]
    }

    static func decodeBase64(_ text: String) -> [UInt8]? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
        guard let data = Data(base64Encoded: text) else { return nil }
        return [UInt8](data)
    }
}

/// Checks on the line structure of raw message bytes (used for BDAT, where no framer ran).
enum MessageText {
    /// The first violation of CRLF-only, ≤1000-octet, NUL-free lines, or nil.
    static func lineProblem<Bytes: Collection>(in bytes: Bytes) -> String? where Bytes.Element == UInt8 {
        var lineLength = 0
        var previous: UInt8 = 0
        for byte in bytes {
            switch byte {
            case 0: return "it contains NUL characters"
            case UInt8(ascii: "\n"):
                if previous != UInt8(ascii: "\r") { return "bare LF: lines must end in CRLF (RFC 5321 2.3.8)" }
                lineLength = 0
            default:
                if previous == UInt8(ascii: "\r") { return "bare CR: lines must end in CRLF (RFC 5321 2.3.8)" }
                lineLength += 1
                if lineLength > 998 { return "a line is longer than 1000 octets (RFC 5321 4.5.3.1.6)" }
            }
            previous = byte
        }
        if previous == UInt8(ascii: "\r") { return "bare CR at the end (RFC 5321 2.3.8)" }
        return nil
    }
}
