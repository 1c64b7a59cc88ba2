import Crypto
import Foundation
import NIOConcurrencyHelpers

/// One browser's session: a random id (the cookie), a CSRF token for its forms, and what the app
/// keeps for it (the account name on the account pages; the mailbox credentials in the webmail —
/// memory only, never written anywhere).
public struct WebSession<Payload: Sendable>: Sendable {
    public let id: String
    public let csrfToken: String
    public var payload: Payload
    public var created: Double
    public var lastSeen: Double
    /// A one-time notice shown on the next page ("Password changed.").
    public var notice: String?

    /// CSRF check (OWASP synchroniser token): the form's token must equal the session's,
    /// compared in constant time so its bytes cannot be guessed one at a time.
    public func acceptsCSRF(_ token: String?) -> Bool {
        guard let token else { return false }
        return ConstantTime.equal(Array(token.utf8), Array(csrfToken.utf8))
    }
}

/// The sessions of one web app, in memory only: a restart logs everybody out, and nothing about a
/// session is ever on disk. Sessions end after `idleTimeout` without a request and after
/// `lifetime` in any case; the oldest go first when `capacity` is reached (anonymous visitors
/// cannot grow the table without bound).
public final class WebSessionStore<Payload: Sendable>: Sendable {
    public let idleTimeout: Double
    public let lifetime: Double
    public let capacity: Int
    private let now: @Sendable () -> Double
    private let sessions = NIOLockedValueBox<[String: WebSession<Payload>]>([:])

    public init(idleTimeout: Double = 1800, lifetime: Double = 12 * 3600, capacity: Int = 10_000,
                now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.idleTimeout = idleTimeout
        self.lifetime = lifetime
        self.capacity = capacity
        self.now = now
    }

    /// A new session with fresh random id and CSRF token (a new id at login: no session fixation).
    public func create(_ payload: Payload) -> WebSession<Payload> {
        let time = now()
        let session = WebSession(id: Self.token(), csrfToken: Self.token(), payload: payload, created: time, lastSeen: time)
        sessions.withLockedValue { table in
            if table.count >= capacity {
                table = table.filter { live($0.value, at: time) }
                if table.count >= capacity, let oldest = table.values.min(by: { $0.lastSeen < $1.lastSeen }) {
                    table.removeValue(forKey: oldest.id)
                }
            }
            table[session.id] = session
        }
        return session
    }

    /// The live session with this id, its idle clock restarted; nil (and forgotten) when expired.
    public func find(_ id: String?) -> WebSession<Payload>? {
        guard let id, !id.isEmpty, id.utf8.count <= 64 else { return nil }
        let time = now()
        return sessions.withLockedValue { table in
            guard var session = table[id] else { return nil }
            guard live(session, at: time) else {
                table.removeValue(forKey: id)
                return nil
            }
            session.lastSeen = time
            table[id] = session
            return session
        }
    }

    @discardableResult
    public func update(_ id: String, _ change: (inout WebSession<Payload>) -> Void) -> WebSession<Payload>? {
        sessions.withLockedValue { table in
            guard var session = table[id] else { return nil }
            change(&session)
            table[id] = session
            return session
        }
    }

    /// Takes the one-time notice of a session.
    public func takeNotice(_ id: String) -> String? {
        sessions.withLockedValue { table in
            let notice = table[id]?.notice
            table[id]?.notice = nil
            return notice
        }
    }

    public func remove(_ id: String) {
        _ = sessions.withLockedValue { $0.removeValue(forKey: id) }
    }

    /// Ends every session matching `predicate` (all of an account's after a password change or
    /// deletion).
    public func removeAll(where predicate: (WebSession<Payload>) -> Bool) {
        sessions.withLockedValue { table in table = table.filter { !predicate($0.value) } }
    }

    public var count: Int { sessions.withLockedValue { $0.count } }

    private func live(_ session: WebSession<Payload>, at time: Double) -> Bool {
        time - session.lastSeen < idleTimeout && time - session.created < lifetime
    }

    /// 256 random bits, base64url without padding.
    static func token() -> String {
        let key = SymmetricKey(size: .bits256)
        return key.withUnsafeBytes { Data($0) }.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}

/// Comparison whose time does not depend on where two byte strings differ.
public enum ConstantTime {
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
