import Foundation
import Testing
@testable import Store

/// ACCT-3: scrypt with per-account salt and parameters kept beside the hash; constant-time compare.
@Suite struct PasswordHashTests {
    @Test func verifiesTheRightPasswordOnly() throws {
        let hash = try PasswordHash.make(password: "correct horse battery", parameters: fastHash)
        #expect(hash.verify(password: "correct horse battery"))
        #expect(!hash.verify(password: "correct horse batterY"))
        #expect(!hash.verify(password: "correct horse battery "))
        #expect(!hash.verify(password: ""))
    }

    @Test func saltIsFreshForEveryHash() throws {
        let a = try PasswordHash.make(password: "same password", parameters: fastHash)
        let b = try PasswordHash.make(password: "same password", parameters: fastHash)
        #expect(a.salt.count == 16)
        #expect(a.hash.count == 32)
        #expect(a.salt != b.salt)
        #expect(a.hash != b.hash)
        #expect(a.encoded != b.encoded)
        #expect(a.verify(password: "same password") && b.verify(password: "same password"))
    }

    @Test func encodingKeepsParametersSaltAndHash() throws {
        let hash = try PasswordHash.make(password: "pässwörd ünïcode", parameters: PasswordHash.Parameters(log2N: 11, r: 4, p: 2))
        let parts = hash.encoded.split(separator: "$", omittingEmptySubsequences: false)
        #expect(parts.count == 6)
        #expect(Array(parts.prefix(4)) == ["scrypt", "11", "4", "2"])
        #expect(Data(base64Encoded: String(parts[4])).map([UInt8].init) == hash.salt)
        #expect(Data(base64Encoded: String(parts[5])).map([UInt8].init) == hash.hash)

        let decoded = try #require(PasswordHash(encoded: hash.encoded))
        #expect(decoded == hash)
        #expect(decoded.parameters == PasswordHash.Parameters(log2N: 11, r: 4, p: 2))
        #expect(decoded.verify(password: "pässwörd ünïcode"))
        #expect(!decoded.verify(password: "passwörd ünïcode"))
    }

    @Test func standardParametersAreMemoryHard() {
        // N = 2^15, r = 8: 128 · r · N = 32 MiB per check.
        #expect(PasswordHash.Parameters.standard == PasswordHash.Parameters(log2N: 15, r: 8, p: 1))
        #expect(PasswordHash.minimumPasswordLength == 10)
    }

    /// RFC 7914 section 12, test vector 2 (N = 1024, r = 8, p = 16): the first 32 octets of the
    /// derived key (PBKDF2 blocks do not depend on the output length).
    @Test func matchesRFC7914TestVector() throws {
        let expected: [UInt8] = [
            0xfd, 0xba, 0xbe, 0x1c, 0x9d, 0x34, 0x72, 0x00, 0x78, 0x56, 0xe7, 0x19, 0x0d, 0x01, 0xe9, 0xfe,
            0x7c, 0x6a, 0xd7, 0xcb, 0xc8, 0x23, 0x78, 0x30, 0xe7, 0x73, 0x76, 0x63, 0x4b, 0x37, 0x31, 0x62,
        ]
        let parameters = PasswordHash.Parameters(log2N: 10, r: 8, p: 16)
        let derived = try PasswordHash.derive(password: "password", salt: Array("NaCl".utf8), parameters: parameters)
        #expect(derived == expected)
        let stored = PasswordHash(parameters: parameters, salt: Array("NaCl".utf8), hash: expected)
        #expect(stored.verify(password: "password"))
        #expect(!stored.verify(password: "Password"))
    }

    static let salt8 = Data(repeating: 7, count: 8).base64EncodedString()
    static let salt7 = Data(repeating: 7, count: 7).base64EncodedString()
    static let hash32 = Data(repeating: 1, count: 32).base64EncodedString()
    static let hash31 = Data(repeating: 1, count: 31).base64EncodedString()
    static let hash33 = Data(repeating: 1, count: 33).base64EncodedString()

    @Test func minimalValidEncodingDecodes() throws {
        let decoded = try #require(PasswordHash(encoded: "scrypt$10$1$1$\(Self.salt8)$\(Self.hash32)"))
        #expect(decoded.parameters == PasswordHash.Parameters(log2N: 10, r: 1, p: 1))
        #expect(decoded.salt == Array(repeating: 7, count: 8))
        #expect(decoded.hash == Array(repeating: 1, count: 32))
        #expect(PasswordHash(encoded: "scrypt$22$32$16$\(Self.salt8)$\(Self.hash32)") != nil)
    }

    @Test(arguments: [
        "",
        "scrypt",
        "bcrypt$10$8$1$\(salt8)$\(hash32)",
        "SCRYPT$10$8$1$\(salt8)$\(hash32)",
        "scrypt$10$8$1$\(salt8)",
        "scrypt$10$8$1$\(salt8)$\(hash32)$extra",
        "scrypt$9$8$1$\(salt8)$\(hash32)",
        "scrypt$23$8$1$\(salt8)$\(hash32)",
        "scrypt$x$8$1$\(salt8)$\(hash32)",
        "scrypt$10$0$1$\(salt8)$\(hash32)",
        "scrypt$10$33$1$\(salt8)$\(hash32)",
        "scrypt$10$8$0$\(salt8)$\(hash32)",
        "scrypt$10$8$17$\(salt8)$\(hash32)",
        "scrypt$10$8$1$\(salt7)$\(hash32)",
        "scrypt$10$8$1$$\(hash32)",
        "scrypt$10$8$1$\(salt8)$\(hash31)",
        "scrypt$10$8$1$\(salt8)$\(hash33)",
        "scrypt$10$8$1$not*base64$\(hash32)",
        "scrypt$10$8$1$\(salt8)$not*base64",
    ])
    func malformedEncodingsAreRefused(encoded: String) {
        #expect(PasswordHash(encoded: encoded) == nil)
    }

    @Test func constantTimeEqualCompares() {
        #expect(constantTimeEqual([], []))
        #expect(constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEqual([0, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEqual([1, 2, 3], [1, 2]))
        #expect(!constantTimeEqual([], [0]))
        #expect(constantTimeEqual(Array(repeating: 0xff, count: 32), Array(repeating: 0xff, count: 32)))
        #expect(!constantTimeEqual(Array(repeating: 0xff, count: 32), Array(repeating: 0xff, count: 31) + [0x7f]))
    }
}
