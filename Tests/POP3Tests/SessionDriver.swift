import NIOCore
import Testing
import Wire
@testable import POP3

/// Runs a `POP3Session` against a backend in-process, performing its effects at once, as the
/// NIO handler does, and collecting what it sends.
final class SessionDriver {
    var session = POP3Session()
    let backend: FakePOP3Backend
    private(set) var closed = false
    /// Every effect the session asked for, in order (minus sends and close).
    private(set) var effects: [POP3Session.Action] = []
    private var output = ByteBuffer()

    init(backend: FakePOP3Backend) {
        self.backend = backend
    }

    /// The greeting.
    func start() async -> String {
        await perform(session.start())
        return takeOutput()
    }

    /// Sends one client line (without CRLF); returns what the server answered, raw.
    @discardableResult
    func send(_ line: String) async -> String {
        await receive(.line(ByteBuffer(string: line)))
    }

    func send(bytes: [UInt8]) async -> String {
        await receive(.line(ByteBuffer(bytes: bytes)))
    }

    @discardableResult
    func receive(_ frame: LineFrame) async -> String {
        #expect(!session.isAwaitingEffect, "driver contract: no input while an effect is pending")
        await perform(session.receive(frame))
        return takeOutput()
    }

    /// The connection drops (no QUIT).
    func dropConnection() async {
        await perform(session.connectionClosed())
    }

    func autologout() async -> String {
        await perform(session.autologoutExpired())
        return takeOutput()
    }

    func shutdown() async -> String {
        await perform(session.serverShuttingDown())
        return takeOutput()
    }

    func perform(_ actions: [POP3Session.Action]) async {
        for action in actions {
            switch action {
            case .send(var bytes):
                output.writeBuffer(&bytes)
            case .close:
                closed = true
            case .authenticate(let username, let password):
                effects.append(action)
                let outcome = await backend.authenticate(username: username, password: password)
                await perform(session.authenticated(outcome))
            case .lockAndList(let mailbox):
                effects.append(action)
                await perform(session.maildropOpened(await openMaildrop(mailbox)))
            case .fetch(let mailbox, let uid, _):
                effects.append(action)
                do {
                    let bytes = try await backend.messageBytes(in: mailbox, uid: uid)
                    await perform(session.fetched(.message(bytes)))
                } catch {
                    await perform(session.fetched(.failed))
                }
            case .delete(let mailbox, let uids):
                effects.append(action)
                do {
                    try await backend.deleteMessages(in: mailbox, uids: uids)
                    await perform(session.deleted(succeeded: true))
                } catch {
                    await perform(session.deleted(succeeded: false))
                }
            case .unlock(let mailbox):
                effects.append(action)
                await backend.unlockMaildrop(mailbox)
                await perform(session.unlocked())
            }
        }
    }

    func openMaildrop(_ mailbox: String) async -> POP3Session.MaildropOutcome {
        guard await backend.lockMaildrop(mailbox) else { return .inUse }
        do {
            return .opened(try await backend.listMessages(in: mailbox))
        } catch {
            return .listFailed
        }
    }

    private func takeOutput() -> String {
        defer { output.clear() }
        return String(decoding: output.readableBytesView, as: UTF8.self)
    }
}

/// Runs a dialogue written as `C: client line` / `S: server line` (CRLF added to both), and
/// `== closed` to require that the server has closed. Server lines between two client lines are
/// compared as a block, so a mismatch shows the whole reply.
func expectTranscript(
    _ script: String, backend: FakePOP3Backend = FakePOP3Backend(),
    sourceLocation: SourceLocation = #_sourceLocation
) async {
    let driver = SessionDriver(backend: backend)
    var actual = await driver.start()
    var expected = ""
    var lastClient = "(greeting)"
    for rawLine in script.split(separator: "\n", omittingEmptySubsequences: false) {
        let line = rawLine.drop { $0 == " " }
        if line.hasPrefix("S:") {
            expected += line.dropFirst(2).drop { $0 == " " } + "\r\n"
        } else if line.hasPrefix("C:") {
            #expect(actual == expected, "after \(lastClient)", sourceLocation: sourceLocation)
            let client = String(line.dropFirst(2).dropFirst(line.dropFirst(2).hasPrefix(" ") ? 1 : 0))
            lastClient = client
            actual = await driver.send(client)
            expected = ""
        } else if line == "== closed" {
            #expect(driver.closed, "the server should have closed after \(lastClient)",
                    sourceLocation: sourceLocation)
        } else if !line.isEmpty {
            Issue.record("bad transcript line: \(line)", sourceLocation: sourceLocation)
        }
    }
    #expect(actual == expected, "after \(lastClient)", sourceLocation: sourceLocation)
}
