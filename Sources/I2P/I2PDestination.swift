import Crypto
import Foundation

/// An I2P destination as SAM passes it: I2P's base64 (`-` and `~` for `+` and `/`) of the
/// destination bytes — 384 bytes of keys, then a certificate (type, 2-byte length, payload). The
/// `.b32.i2p` name is the base32 of the SHA-256 of exactly those bytes.
public struct I2PDestination: Sendable, Equatable, Hashable {
    /// The destination bytes (public part only).
    public let bytes: [UInt8]

    /// From SAM's base64 of a destination, or of private keys (whose first part is the destination).
    public init?(base64 text: String) {
        guard text.utf8.count <= 8192, let raw = I2PKeys.decode(text), raw.count >= 387 else { return nil }
        let certificateLength = Int(raw[385]) << 8 | Int(raw[386])
        guard raw.count >= 387 + certificateLength else { return nil }
        bytes = Array(raw[..<(387 + certificateLength)])
    }

    public var base64: String { I2PKeys.encode(bytes) }

    /// `xxxx….b32.i2p`: 52 base32 characters (RFC 4648, lower case, no padding).
    public var b32: String { Self.base32(Array(SHA256.hash(data: bytes))) + ".b32.i2p" }

    static func base32(_ bytes: [UInt8]) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        var out = ""
        var buffer = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return out
    }

    /// Whether `name` (a `.b32.i2p` name or a base64 destination) names this destination.
    public func isNamed(_ name: String) -> Bool {
        let lowered = name.lowercased()
        if lowered.hasSuffix(".b32.i2p") { return lowered == b32 }
        return I2PDestination(base64: name) == self
    }
}
