import Crypto
import Foundation

/// The credentials of the link between core and gateway: the same pair logs the core in at the
/// gateway and the gateway in at the core (`[relay] username` and `password_file` on the core,
/// `[gateway] username` and `password_file` on the gateway).
public struct PeerCredential: Sendable {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// Compared as digests in constant time: nothing leaks through timing.
    public func matches(username: String, password: String) -> Bool {
        let given = Array(SHA256.hash(data: Data((username + "\0" + password).utf8)))
        let expected = Array(SHA256.hash(data: Data((self.username + "\0" + self.password).utf8)))
        return zip(given, expected).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
