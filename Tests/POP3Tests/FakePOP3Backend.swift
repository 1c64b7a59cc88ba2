import NIOCore
import POP3

/// An in-memory `POP3Backend` with switches for every failure the session must handle.
actor FakePOP3Backend: POP3Backend {
    struct Account {
        var password: String
        var mailbox: String
    }

    struct StoredMessage {
        var uid: String
        var bytes: String
    }

    struct Failure: Error {}

    var accounts: [String: Account]
    var mailboxes: [String: [StoredMessage]]
    private(set) var locked: Set<String> = []
    private(set) var lockCount = 0
    private(set) var unlockCount = 0
    private(set) var deleteCalls: [[String]] = []
    private(set) var authenticateCalls = 0

    var authenticationUnavailable = false
    var listingFails = false
    var fetchFails = false
    var deletionFails = false

    init(accounts: [String: Account] = FakePOP3Backend.defaultAccounts,
         mailboxes: [String: [StoredMessage]] = FakePOP3Backend.defaultMailboxes) {
        self.accounts = accounts
        self.mailboxes = mailboxes
    }

    static let defaultAccounts: [String: Account] = [
        "alice@mail.i2p": Account(password: "secret pass", mailbox: "alice@mail.i2p"),
        "bob@mail.i2p": Account(password: "hunter2", mailbox: "bob@mail.i2p"),
    ]

    static let firstMessage = "From: bob@mail.i2p\r\nSubject: hi\r\n\r\nHello\r\n.hidden\r\n.\r\nbye\r\n"
    static let secondMessage = "Subject: two\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"
    static let thirdMessage = "Subject: no final line break\r\n\r\nlast"

    static let defaultMailboxes: [String: [StoredMessage]] = [
        "alice@mail.i2p": [
            StoredMessage(uid: "uid-1", bytes: firstMessage),
            StoredMessage(uid: "uid-2", bytes: secondMessage),
            StoredMessage(uid: "uid-3", bytes: thirdMessage),
        ],
        "bob@mail.i2p": [],
    ]

    enum Switch: Sendable { case authenticationUnavailable, listingFails, fetchFails, deletionFails }

    func set(_ failure: Switch, _ value: Bool) {
        switch failure {
        case .authenticationUnavailable: authenticationUnavailable = value
        case .listingFails: listingFails = value
        case .fetchFails: fetchFails = value
        case .deletionFails: deletionFails = value
        }
    }

    /// Takes a lock as another session would.
    func holdLock(_ mailbox: String) { locked.insert(mailbox) }

    func messages(in mailbox: String) -> [String] { (mailboxes[mailbox] ?? []).map(\.uid) }

    // MARK: POP3Backend

    func authenticate(username: String, password: String) async -> POP3AuthOutcome {
        authenticateCalls += 1
        if authenticationUnavailable { return .temporaryFailure }
        guard let account = accounts[username], account.password == password else { return .failure }
        return .success(mailbox: account.mailbox)
    }

    func lockMaildrop(_ mailbox: String) async -> Bool {
        guard !locked.contains(mailbox) else { return false }
        locked.insert(mailbox)
        lockCount += 1
        return true
    }

    func unlockMaildrop(_ mailbox: String) async {
        locked.remove(mailbox)
        unlockCount += 1
    }

    func listMessages(in mailbox: String) async throws -> [POP3MessageInfo] {
        if listingFails { throw Failure() }
        return (mailboxes[mailbox] ?? []).map { POP3MessageInfo(uid: $0.uid, size: $0.bytes.utf8.count) }
    }

    func messageBytes(in mailbox: String, uid: String) async throws -> ByteBuffer {
        if fetchFails { throw Failure() }
        guard let message = mailboxes[mailbox]?.first(where: { $0.uid == uid }) else { throw Failure() }
        return ByteBuffer(string: message.bytes)
    }

    func deleteMessages(in mailbox: String, uids: [String]) async throws {
        if deletionFails { throw Failure() }
        deleteCalls.append(uids)
        mailboxes[mailbox]?.removeAll { uids.contains($0.uid) }
    }
}
