import Crypto
import CryptoExtras
import Foundation

/// A memory-hard password hash (ACCT-3): scrypt with a per-account salt, the parameters stored
/// beside the hash so they can be raised later without invalidating old hashes.
///
/// Encoded as `scrypt$<log2 N>$<r>$<p>$<salt base64>$<hash base64>`.
public struct PasswordHash: Sendable, Equatable {
    public struct Parameters: Sendable, Equatable {
        public var log2N: Int
        public var r: Int
        public var p: Int

        /// N = 2^15, r = 8, p = 1: 32 MiB and about 0.1 s per check on this machine class.
        public static let standard = Parameters(log2N: 15, r: 8, p: 1)

        public init(log2N: Int, r: Int, p: Int) {
            self.log2N = log2N
            self.r = r
            self.p = p
        }
    }

    public static let minimumPasswordLength = 10

    public let parameters: Parameters
    public let salt: [UInt8]
    public let hash: [UInt8]

    /// Hashes a new password with a fresh random salt.
    public static func make(password: String, parameters: Parameters = .standard) throws -> PasswordHash {
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let hash = try derive(password: password, salt: salt, parameters: parameters)
        return PasswordHash(parameters: parameters, salt: salt, hash: hash)
    }

    public init(parameters: Parameters, salt: [UInt8], hash: [UInt8]) {
        self.parameters = parameters
        self.salt = salt
        self.hash = hash
    }

    public init?(encoded: String) {
        let parts = encoded.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "scrypt",
              let log2N = Int(parts[1]), (10...22).contains(log2N),
              let r = Int(parts[2]), (1...32).contains(r),
              let p = Int(parts[3]), (1...16).contains(p),
              let salt = Data(base64Encoded: String(parts[4])), salt.count >= 8,
              let hash = Data(base64Encoded: String(parts[5])), hash.count == 32
        else { return nil }
        self.init(parameters: Parameters(log2N: log2N, r: r, p: p), salt: [UInt8](salt), hash: [UInt8](hash))
    }

    public var encoded: String {
        "scrypt$\(parameters.log2N)$\(parameters.r)$\(parameters.p)$\(Data(salt).base64EncodedString())$\(Data(hash).base64EncodedString())"
    }

    /// Recomputes the hash and compares in constant time (ACCT-3).
    public func verify(password: String) -> Bool {
        guard let candidate = try? Self.derive(password: password, salt: salt, parameters: parameters) else { return false }
        return constantTimeEqual(candidate, hash)
    }

    static func derive(password: String, salt: [UInt8], parameters: Parameters) throws -> [UInt8] {
        let key = try KDF.Scrypt.deriveKey(from: Array(password.utf8), salt: salt, outputByteCount: 32,
                                           rounds: 1 << parameters.log2N, blockSize: parameters.r, parallelism: parameters.p)
        return key.withUnsafeBytes { Array($0) }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in a.indices { difference |= a[i] ^ b[i] }
    return difference == 0
}
