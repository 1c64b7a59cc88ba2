import Foundation
import HTTPTypes
import MailCore
import NIOCore
import NIOPosix
import POP3
import SMTP
import Store
import Wire

/// Where the webmail reaches the core: the user's I2P client tunnels (or the SAM bridge), and
/// what it needs to write mail.
public struct WebmailSettings: Sendable {
    public var pop3: any StreamConnector
    public var smtp: any StreamConnector
    /// For the login page ("reads mail at 127.0.0.1:7660").
    public var pop3Description: String
    public var smtpDescription: String
    /// The mail domain: `alice` logs in as alice@domain.
    public var domain: String
    public var dataDirectory: URL
    public var sessionIdle: Double
    public var maximumMessageSize: Int
    public var pageSize: Int
    /// Memory-hard cost of the key that seals the local folders (tests make it cheap).
    public var sealCost: ScryptCost

    public init(pop3: any StreamConnector, smtp: any StreamConnector, pop3Description: String, smtpDescription: String,
                domain: String, dataDirectory: URL, sessionIdle: Double = 1800, maximumMessageSize: Int = 32 << 20,
                pageSize: Int = 25, sealCost: ScryptCost = .standard) {
        self.pop3 = pop3
        self.smtp = smtp
        self.pop3Description = pop3Description
        self.smtpDescription = smtpDescription
        self.domain = domain
        self.dataDirectory = dataDirectory
        self.sessionIdle = sessionIdle
        self.maximumMessageSize = maximumMessageSize
        self.pageSize = pageSize
        self.sealCost = sealCost
    }
}

/// A message in the server's mailbox, as the inbox lists it (from its header only).
struct InboxEntry: Sendable {
    var uid: String
    var size: Int
    var from: String
    var subject: String
    var date: Int64?
    var seen: Bool
    /// Order of arrival (the POP3 message number when first seen): the sort key when dates lie.
    var arrival: Int
}

/// What the user is told when a mailbox operation fails; never a stack trace.
struct MailboxProblem: PageProblem {
    var description: String
    /// The mail server (through the user's tunnel) failed or refused: 502 Bad Gateway.
    var status: HTTPResponse.Status { .badGateway }
}

/// One logged-in user's mailbox: the credentials (memory only), the inbox as last fetched over
/// POP3, a few recently read messages, and the sealed local folders. An actor: a user's
/// operations run one at a time, like the POP3 maildrop lock they take.
actor Mailbox {
    let user: String
    let address: String
    private let password: String
    let folders: SealedFolders?
    private let settings: WebmailSettings
    private(set) var inbox: [String: InboxEntry] = [:]
    private(set) var lastChecked: Date?
    private var recent: [(uid: String, bytes: [UInt8])] = []
    private static let recentLimit = 6

    init(user: String, address: String, password: String, folders: SealedFolders?, settings: WebmailSettings) {
        self.user = user
        self.address = address
        self.password = password
        self.folders = folders
        self.settings = settings
    }

    /// Logs in over POP3 and checks the password; used at the webmail's login.
    static func verify(user: String, password: String, settings: WebmailSettings) async throws {
        let client = try await open(user: user, password: password, settings: settings)
        try? await client.quit()
    }

    private static func open(user: String, password: String, settings: WebmailSettings) async throws -> POP3Client {
        let client: POP3Client
        do {
            client = try await POP3Client.connect(settings.pop3, timeout: .seconds(120), maximumMessageSize: settings.maximumMessageSize + 1 << 20)
        } catch {
            throw MailboxProblem(description: "The mail server cannot be reached at \(settings.pop3Description). Is your I2P client tunnel for POP3 running?")
        }
        do {
            try await client.login(user: user, password: password)
        } catch let error as POP3ClientError {
            await client.close()
            if case .authenticationFailed = error { throw MailboxProblem(description: "Wrong account name or password (or too many attempts: wait a minute).") }
            throw MailboxProblem(description: "The mail server refused the login: \(error)")
        }
        return client
    }

    /// Runs `body` in one POP3 session; QUIT at the end commits deletions (RFC 1939 6).
    private func session<T: Sendable>(_ body: (POP3Client) async throws -> T) async throws -> T {
        let client = try await Self.open(user: user, password: password, settings: settings)
        do {
            let result = try await body(client)
            try await client.quit()
            return result
        } catch let problem as MailboxProblem {
            await client.close()
            throw problem
        } catch {
            await client.close()
            throw MailboxProblem(description: "The mail server connection failed: \(error)")
        }
    }

    /// Fetches the list of messages and the header of each new one ("check for new mail").
    func refresh() async throws {
        let known = inbox
        let fresh: [String: InboxEntry] = try await session { client in
            let sizes = Dictionary(try await client.list().map { ($0.number, $0.size) }, uniquingKeysWith: { first, _ in first })
            var entries: [String: InboxEntry] = [:]
            for (number, uid) in try await client.uidl() {
                if var entry = known[uid] {
                    entry.size = sizes[number] ?? entry.size
                    entries[uid] = entry
                    continue
                }
                // RFC 1939 7: TOP n 0 gives the header section only.
                let header = try await client.top(number, lines: 0)
                let view = MessageView(parsing: header)
                entries[uid] = InboxEntry(uid: uid, size: sizes[number] ?? header.count, from: view.from, subject: view.subject,
                                          date: view.date, seen: false, arrival: number)
            }
            return entries
        }
        inbox = fresh
        recent.removeAll { fresh[$0.uid] == nil }
        lastChecked = Date()
    }

    /// The whole message `uid` (from memory when read lately), marked as seen.
    func message(_ uid: String) async throws -> [UInt8] {
        if let index = recent.firstIndex(where: { $0.uid == uid }) {
            let bytes = recent[index].bytes
            recent.remove(at: index)
            recent.append((uid, bytes))
            return bytes
        }
        let bytes = try await session { client -> [UInt8] in
            guard let number = try await client.uidl().first(where: { $0.uid == uid })?.number else {
                throw MailboxProblem(description: "This message is no longer on the server.")
            }
            return try await client.retrieve(number)
        }
        recent.append((uid, bytes))
        if recent.count > Self.recentLimit { recent.removeFirst() }
        inbox[uid]?.seen = true
        return bytes
    }

    /// Moves `uid` from the server to the local Trash, in one POP3 session: the copy is sealed
    /// before DELE, which takes effect only at QUIT (RFC 1939 6), so a failure in between leaves
    /// the message on the server rather than nowhere.
    func moveToTrash(_ uid: String, now: Int64) async throws {
        let cached = recent.first { $0.uid == uid }?.bytes
        let folders = self.folders
        try await session { client in
            guard let number = try await client.uidl().first(where: { $0.uid == uid })?.number else {
                throw MailboxProblem(description: "This message is no longer on the server.")
            }
            if let folders {
                let bytes: [UInt8]
                if let cached { bytes = cached } else { bytes = try await client.retrieve(number) }
                let view = MessageView(parsing: bytes)
                do {
                    _ = try await folders.save(bytes, in: .trash,
                                               summary: (subject: view.subject, from: view.from, to: view.to.joined(separator: ", "), date: view.date),
                                               now: now)
                } catch {
                    throw MailboxProblem(description: "The message could not be kept in Trash (\(error)); it stays on the server.")
                }
            }
            try await client.delete(number)
        }
        inbox[uid] = nil
        recent.removeAll { $0.uid == uid }
    }

    /// Submits `message` over SMTP with AUTH (the core applies its submission policy again).
    func send(_ message: [UInt8], from sender: String, to recipients: [String]) async -> [RelayClient.Outcome] {
        let client = RelayClient(configuration: .init(connector: settings.smtp, helo: "localhost", username: user, password: password,
                                                      replyTimeout: .seconds(300), sessionTimeout: .minutes(30)))
        var buffer = ByteBufferAllocator().buffer(capacity: message.count)
        buffer.writeBytes(message)
        return await client.relay(from: sender, to: recipients, message: buffer)
    }
}
