import MailCore
import NIOConcurrencyHelpers
import NIOCore
import Testing
import Wire
@testable import SMTP

/// An in-memory backend: alice and bob exist, full@ has no room, every other domain is foreign.
final class FakeSubmissionBackend: SubmissionBackend {
    let delivered = NIOLockedValueBox<[(SubmissionEnvelope, String)]>([])
    let passwords = ["alice": "correct-horse-1", "bob": "correct-horse-2"]

    func authenticate(username: String, password: String) async -> SMTPAuthOutcome {
        authenticateNow(username: username, password: password)
    }

    func authenticateNow(username: String, password: String) -> SMTPAuthOutcome {
        let name = username.lowercased().replacingOccurrences(of: "@mail.i2p", with: "")
        if username == "tempfail" { return .temporaryFailure }
        if username == "gateway" { return password == "peer-secret" ? .peer : .failure }
        guard passwords[name] == password else { return .failure }
        return .success(EmailAddress(localPart: name, domain: "mail.i2p"))
    }

    func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress]) async -> RecipientVerdict {
        checkNow(recipient)
    }

    func checkNow(_ recipient: EmailAddress) -> RecipientVerdict {
        guard recipient.domain == "mail.i2p" else {
            return .rejected(SMTPReply(550, "5.7.1", "Relaying denied"))
        }
        let name = recipient.localPart.lowercased()
        if name == "full" { return .rejected(SMTPReply(452, "4.2.2", "Mailbox full")) }
        guard passwords[name] != nil else { return .rejected(SMTPReply(550, "5.1.1", "No such user here")) }
        return .accepted
    }

    /// The exchange role's sender check: one domain publishes an SPF record that fails us.
    func checkSender(_ sender: EmailAddress?, helo: String) async -> RecipientVerdict {
        sender?.domain == "spf-fail.test"
            ? .rejected(SMTPReply(550, "5.7.23", "SPF check failed")) : .accepted
    }

    func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer) async -> DeliveryOutcome {
        deliverNow(envelope, message: message)
    }

    func deliverNow(_ envelope: SubmissionEnvelope, message: ByteBuffer) -> DeliveryOutcome {
        delivered.withLockedValue { $0.append((envelope, String(buffer: message))) }
        return .accepted
    }

    // Answered on the event loop itself: the live tests' blocking `LineClient` holds a
    // cooperative thread in recv, and on a two-core machine a parallel suite can hold the other,
    // so the default variants (a Swift task each) could wait past the client's timeout.
    func authenticate(username: String, password: String, on loop: any EventLoop) -> EventLoopFuture<SMTPAuthOutcome> {
        loop.makeSucceededFuture(authenticateNow(username: username, password: password))
    }

    func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress],
                        on loop: any EventLoop) -> EventLoopFuture<RecipientVerdict> {
        loop.makeSucceededFuture(checkNow(recipient))
    }

    func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer, on loop: any EventLoop) -> EventLoopFuture<DeliveryOutcome> {
        loop.makeSucceededFuture(deliverNow(envelope, message: message))
    }

    var messages: [String] { delivered.withLockedValue { $0.map(\.1) } }
    var envelopes: [SubmissionEnvelope] { delivered.withLockedValue { $0.map(\.0) } }
}

/// Drives a `SubmissionSession` exactly as `SubmissionHandler` does — framer, input modes,
/// effects — but in memory, so dialogues can be checked byte for byte.
struct TranscriptDriver {
    var session: SubmissionSession
    var framer = CRLFLineFramer(maxLineLength: 512)
    let backend: FakeSubmissionBackend
    var closed = false
    /// How often the session asked for TLS (the driver only notes it: bytes stay in clear).
    var tlsStarts = 0

    init(configuration: SubmissionSession.Configuration = .init(maxMessageSize: 10_000), backend: FakeSubmissionBackend = .init()) {
        self.session = SubmissionSession(configuration: configuration)
        self.backend = backend
    }

    /// Feeds raw bytes; returns every reply line the server wrote.
    mutating func send(_ bytes: [UInt8]) async -> [String] {
        var output = ByteBuffer()
        framer.append(ByteBuffer(bytes: bytes))
        while !closed && !session.isClosed {
            let mode = session.inputMode
            var actions: [SubmissionSession.Action]
            if case .chunk(let remaining) = mode {
                guard let chunk = framer.nextBytes(upTo: remaining) else { break }
                actions = session.chunk(chunk)
            } else {
                framer.maxLineLength = mode.lineLimit
                guard let frame = framer.next() else { break }
                switch (frame, mode) {
                case (.line(let line), .dataLine): actions = session.dataLine(line)
                case (.line(let line), _): actions = session.command(line)
                case (.tooLong, _): actions = session.framingError(.tooLong)
                case (.bareLineBreak, _): actions = session.framingError(.bareLineBreak)
                }
            }
            while !actions.isEmpty {
                let action = actions.removeFirst()
                switch action {
                case .reply(let reply): reply.write(into: &output)
                case .close: closed = true
                case .startTLS:
                    tlsStarts += 1
                    framer.discardBuffered()
                case .checkSender(let sender, let helo):
                    actions += session.senderChecked(await backend.checkSender(sender, helo: helo))
                case .authenticate(let user, let password):
                    actions += session.authenticated(await backend.authenticate(username: user, password: password))
                case .checkRecipient(let recipient, let sender, let size, let earlier):
                    actions += session.recipientChecked(await backend.checkRecipient(recipient, sender: sender, declaredSize: size, earlier: earlier))
                case .deliver(let envelope, let message):
                    actions += session.delivered(await backend.deliver(envelope, message: message))
                }
            }
        }
        let text = String(buffer: output)
        var lines = text.components(separatedBy: "\r\n")
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    mutating func send(_ text: String) async -> [String] { await send(Array(text.utf8)) }
}

/// A transcript: lines starting `C: ` are sent by the client (CRLF added; consecutive client lines
/// go in one write, as a pipelining client sends them), lines starting `S: ` are the expected
/// server lines, compared exactly. `S: ...` matches any single line; a line `S: 250 *` matches a
/// line by prefix. `<CRLF>`-free raw input can be given with `R: ` (escapes \r \n \0 processed,
/// no CRLF added). `closed` asserts the server closed the connection.
func runTranscript(_ transcript: String, configuration: SubmissionSession.Configuration = .init(maxMessageSize: 10_000),
                   backend: FakeSubmissionBackend = .init(), greeting: Bool = true,
                   sourceLocation: SourceLocation = #_sourceLocation) async {
    var driver = TranscriptDriver(configuration: configuration, backend: backend)
    var pending: [UInt8] = []
    var expected: [String] = []
    var actual: [String] = []
    if greeting {
        var buffer = ByteBuffer()
        driver.session.greeting().write(into: &buffer)
        actual.append(contentsOf: String(buffer: buffer).components(separatedBy: "\r\n").filter { !$0.isEmpty })
    }
    var expectClosed = false
    func flush() async {
        if !pending.isEmpty {
            actual.append(contentsOf: await driver.send(pending))
            pending.removeAll()
        }
    }
    for rawLine in transcript.split(separator: "\n", omittingEmptySubsequences: false) {
        let line = String(rawLine)
        if line.hasPrefix("C: ") || line == "C:" {
            pending += Array(line.dropFirst(min(3, line.count)).utf8) + [13, 10]
        } else if line.hasPrefix("R: ") {
            let body = String(line.dropFirst(3))
                .replacingOccurrences(of: "\\r", with: "\r").replacingOccurrences(of: "\\n", with: "\n")
                .replacingOccurrences(of: "\\0", with: "\0")
            pending += Array(body.utf8)
        } else if line.hasPrefix("S: ") {
            await flush()
            expected.append(String(line.dropFirst(3)))
        } else if line == "closed" {
            await flush()
            expectClosed = true
        }
    }
    await flush()
    #expect(actual.count == expected.count, "server wrote \(actual.count) lines, expected \(expected.count):\n\(actual.joined(separator: "\n"))", sourceLocation: sourceLocation)
    for (got, want) in zip(actual, expected) {
        if want == "..." { continue }
        if want.hasSuffix("*") {
            #expect(got.hasPrefix(String(want.dropLast())), "got \(got), expected \(want)", sourceLocation: sourceLocation)
        } else {
            #expect(got == want, sourceLocation: sourceLocation)
        }
    }
    #expect(driver.closed == expectClosed, "connection closed: \(driver.closed)", sourceLocation: sourceLocation)
}

/// base64 of "\0alice\0correct-horse-1"
let alicePlain = "AGFsaWNlAGNvcnJlY3QtaG9yc2UtMQ=="

let ehloReply = """
S: 250-mail.i2p
S: 250-PIPELINING
S: 250-SIZE 10000
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250-AUTH PLAIN LOGIN
S: 250 HELP
"""

/// EHLO and AUTH PLAIN as alice: the usual start of a transcript.
let loginAsAlice = """
C: EHLO client.example
\(ehloReply)
C: AUTH PLAIN \(alicePlain)
S: 235 2.7.0 Authentication successful
"""
