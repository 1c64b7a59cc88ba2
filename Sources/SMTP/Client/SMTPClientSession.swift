import Wire
import Foundation
import NIOCore
import NIOPosix

/// A long-lived SMTP client session driven one command at a time from outside: the gateway's
/// exchange asks the core about each recipient while the Internet sender is still connected
/// (GW-2), through one session per exchange session. Opening connects, reads the greeting, says
/// EHLO and logs in with AUTH PLAIN; then every `command` and `data` waits for its reply. Any
/// failure (refused step, garbage, hang, close) ends the session: that call and all later ones
/// answer nil, and the caller opens a new one or gives a temporary error.
public final class SMTPClientSession: Sendable {
    public typealias Reply = SMTPReplyReader.Reply

    private enum Request: Sendable {
        case command(String, CheckedContinuation<Reply?, Never>)
        case data(ByteBuffer, CheckedContinuation<Reply?, Never>)
        case quit
    }

    private let requests: AsyncStream<Request>.Continuation

    private init(requests: AsyncStream<Request>.Continuation) {
        self.requests = requests
    }

    /// Opens a session; nil when the peer cannot be reached or refuses the greeting, EHLO or login.
    public static func open(connector: any StreamConnector, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                            helo: String, username: String?, password: String?,
                            replyTimeout: TimeAmount = .seconds(60)) async -> SMTPClientSession? {
        let (stream, continuation) = AsyncStream<Request>.makeStream()
        let session = SMTPClientSession(requests: continuation)
        let opened: Bool = await withCheckedContinuation { ready in
            Task {
                let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
                do {
                    channel = try await SMTPDialogue.connect(connector, group: group, replyTimeout: replyTimeout)
                } catch {
                    continuation.finish()
                    return ready.resume(returning: false)
                }
                var signalled = false
                var requests = stream.makeAsyncIterator()
                try? await channel.executeThenClose { inbound, outbound in
                    var dialogue = SMTPDialogue(lines: inbound.makeAsyncIterator(), outbound: outbound, channel: channel.channel)
                    guard try await dialogue.reply().code == 220, try await dialogue.hello(helo).code == 250 else { return }
                    if let username, let password {
                        let token = Data(("\0" + username + "\0" + password).utf8).base64EncodedString()
                        guard (200..<300).contains(try await dialogue.command("AUTH PLAIN \(token)").code) else { return }
                    }
                    signalled = true
                    ready.resume(returning: true)
                    while let request = await requests.next() {
                        switch request {
                        case .command(let line, let answer):
                            let reply = try? await dialogue.command(line)
                            answer.resume(returning: reply)
                            if reply == nil { return }
                        case .data(let message, let answer):
                            var reply: Reply?
                            do {
                                try await dialogue.sendData(message)
                                reply = try await dialogue.reply()
                            } catch {}
                            answer.resume(returning: reply)
                            if reply == nil { return }
                        case .quit:
                            await dialogue.quit()
                            return
                        }
                    }
                }
                continuation.finish()
                if !signalled { ready.resume(returning: false) }
                // Whoever still waits hears that the session is gone.
                while let request = await requests.next() {
                    switch request {
                    case .command(_, let answer), .data(_, let answer): answer.resume(returning: nil)
                    case .quit: break
                    }
                }
            }
        }
        return opened ? session : nil
    }

    /// Sends one command line and returns the reply; nil when the session is gone.
    public func command(_ line: String) async -> Reply? {
        await withCheckedContinuation { answer in
            if case .terminated = requests.yield(.command(line, answer)) { answer.resume(returning: nil) }
        }
    }

    /// After a 354: sends the message (dot-stuffed, ended by `.`) and returns the final reply.
    public func data(_ message: ByteBuffer) async -> Reply? {
        await withCheckedContinuation { answer in
            if case .terminated = requests.yield(.data(message, answer)) { answer.resume(returning: nil) }
        }
    }

    /// QUIT and close (without waiting).
    public func close() {
        requests.yield(.quit)
        requests.finish()
    }
}
