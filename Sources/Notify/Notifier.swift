import NIOCore

/// A nick proven to belong to an account's user (IRC-2): the caller persists it.
public struct Verification: Equatable, Sendable {
    public var account: String
    /// The nick as the server spelled it in the message that carried the code.
    public var nick: String

    public init(account: String, nick: String) {
        self.account = account
        self.nick = nick
    }
}

/// One PRIVMSG to send: "N new message(s) for <address>" and nothing else (IRC-1).
public struct Notice: Equatable, Sendable {
    public var nick: String
    public var text: String

    public init(nick: String, text: String) {
        self.nick = nick
        self.text = text
    }
}

/// The notification policy as a value (IRC-1..3): one-time verification codes, the verified nick
/// of each account, and the coalescing of new-mail notices. Time and randomness are arguments.
///
/// Coalescing: the first mail for an account after a quiet period opens a gathering window
/// (`gather`, default 30 s); when it ends, one notice carries the count of everything that arrived
/// meanwhile. After a notice, the next one waits until `interval` (default 5 minutes) has passed
/// since it, counting all mail that arrives in between — so an account gets at most one notice
/// per interval, and three mails in a row give exactly one notice, "3 new messages for …".
/// With `gather` zero the first mail after a quiet interval is noticed at once.
public struct Notifier: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// At most one notice per account per this interval (IRC-3).
        public var interval: TimeAmount
        /// How long the first mail after a quiet period waits for more before its notice.
        public var gather: TimeAmount
        /// A verification code is valid this long.
        public var codeLifetime: TimeAmount
        /// Characters of a code (RFC 4648 base32 alphabet, 5 bits each).
        public var codeLength: Int
        /// Codes held at once; beyond this the one closest to expiry goes.
        public var maxPendingCodes: Int

        public init(interval: TimeAmount = .minutes(5), gather: TimeAmount = .seconds(30),
                    codeLifetime: TimeAmount = .hours(24), codeLength: Int = 8, maxPendingCodes: Int = 10_000) {
            self.interval = interval
            self.gather = gather
            self.codeLifetime = codeLifetime
            self.codeLength = max(6, codeLength)
            self.maxPendingCodes = max(1, maxPendingCodes)
        }
    }

    private struct PendingCode: Sendable {
        var account: String
        var nick: String
        var expires: NIODeadline
    }

    private struct Coalescing: Sendable {
        var address: String
        var count = 0
        /// When the waiting count is sent; `nil` while nothing waits.
        var due: NIODeadline?
        var lastSent: NIODeadline?
    }

    public let configuration: Configuration
    /// Code (upper case) → whom it was issued for.
    private var codes: [String: PendingCode] = [:]
    /// Account → verified nick.
    private var verifiedNicks: [String: String] = [:]
    private var coalescing: [String: Coalescing] = [:]

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    // MARK: - Verification (IRC-2)

    static let codeAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// A new one-time code for `account` to send from `nick`. It replaces any earlier code of the
    /// account and is valid for `codeLifetime`.
    public mutating func code<R: RandomNumberGenerator>(for account: String, nick: String, now: NIODeadline,
                                                        using random: inout R) -> String {
        codes = codes.filter { $0.value.expires > now && $0.value.account != account }
        var code: String
        repeat {
            code = String(decoding: (0..<configuration.codeLength).map { _ in
                Self.codeAlphabet[Int(random.next(upperBound: UInt64(Self.codeAlphabet.count)))]
            }, as: UTF8.self)
        } while codes[code] != nil
        while codes.count >= configuration.maxPendingCodes, let oldest = codes.min(by: { $0.value.expires < $1.value.expires }) {
            codes[oldest.key] = nil
        }
        codes[code] = PendingCode(account: account, nick: nick, expires: now + configuration.codeLifetime)
        return code
    }

    public mutating func code(for account: String, nick: String, now: NIODeadline) -> String {
        var random = SystemRandomNumberGenerator()
        return code(for: account, nick: nick, now: now, using: &random)
    }

    /// A private message to the bot. When its text (trimmed, any case) is a pending, unexpired
    /// code issued for exactly this nick (RFC 2812 2.2 case mapping), the code is spent and the
    /// nick verified for its account. Anything else changes nothing and returns `nil` — a code
    /// sent from another nick stays pending for its owner.
    public mutating func received(privmsgFrom nick: String, text: String, now: NIODeadline) -> Verification? {
        let candidate = text.trimmingSpaces().uppercased()
        guard candidate.utf8.count == configuration.codeLength, let pending = codes[candidate] else { return nil }
        guard pending.expires > now else {
            codes[candidate] = nil
            return nil
        }
        guard IRCCaseMapping.equal(pending.nick, nick) else { return nil }
        codes[candidate] = nil
        verifiedNicks[pending.account] = nick
        return Verification(account: pending.account, nick: nick)
    }

    /// Codes waiting to be sent, for tests and the bound.
    public var pendingCodeCount: Int { codes.count }

    // MARK: - Verified nicks (persisted by the caller)

    public func verified(account: String) -> String? { verifiedNicks[account] }

    /// Loads the verified nicks the caller stored (account → nick), e.g. at start.
    public mutating func seedVerified(_ nicks: [String: String]) {
        for (account, nick) in nicks { verifiedNicks[account] = nick }
    }

    public mutating func setVerified(account: String, nick: String) { verifiedNicks[account] = nick }

    /// The user removed the nick, or the account is gone: no more notices, pending count dropped.
    public mutating func removeVerified(account: String) {
        verifiedNicks[account] = nil
        coalescing[account] = nil
        codes = codes.filter { $0.value.account != account }
    }

    // MARK: - Coalescing (IRC-3)

    public static func noticeText(count: Int, address: String) -> String {
        count == 1 ? "1 new message for \(address)" : "\(count) new messages for \(address)"
    }

    /// `count` new messages arrived for `account` (whose address is `address`). Returns the notices
    /// due now (with `gather` zero, the first mail after a quiet interval); the rest come from
    /// `tick`. Accounts without a verified nick are ignored.
    public mutating func mailArrived(account: String, address: String, count: Int, now: NIODeadline) -> [Notice] {
        guard count > 0, verifiedNicks[account] != nil else { return [] }
        var state = coalescing[account] ?? Coalescing(address: address)
        state.address = address
        state.count += count
        if state.due == nil {
            let gathered = now + configuration.gather
            state.due = state.lastSent.map { max(gathered, $0 + configuration.interval) } ?? gathered
        }
        coalescing[account] = state
        return tick(now: now)
    }

    /// The notices whose time has come. Also forgets accounts that have been quiet for an interval.
    public mutating func tick(now: NIODeadline) -> [Notice] {
        var notices: [Notice] = []
        for (account, var state) in coalescing {
            if let due = state.due, due <= now {
                if let nick = verifiedNicks[account], state.count > 0 {
                    notices.append(Notice(nick: nick, text: Self.noticeText(count: state.count, address: state.address)))
                    state.lastSent = now
                }
                state.count = 0
                state.due = nil
                coalescing[account] = state
            } else if state.due == nil, state.lastSent.map({ $0 + configuration.interval <= now }) ?? true {
                coalescing[account] = nil
            }
        }
        return notices
    }

    /// The earliest time `tick` will have a notice, if any waits.
    public var nextDeadline: NIODeadline? { coalescing.values.compactMap(\.due).min() }

    /// Accounts with coalescing state, for tests of the bound.
    var trackedAccountCount: Int { coalescing.count }
}

extension String {
    func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }
}
