// The Web Key Directory's names (draft-koch-openpgp-webkey-service section 3.1): the local part,
// ASCII upper case mapped to lower case, hashed with SHA-1 and encoded in z-base-32 (32
// characters). A key is then served, binary and unarmoured, at
//   https://<domain>/.well-known/openpgpkey/hu/<hash>            (direct method)
// The web layer also serves an empty /.well-known/openpgpkey/policy to announce the directory.

public enum WKD {
    /// z-base-32 (RFC 6189 section 5.1.6 alphabet), no padding.
    public static func zBase32(_ data: [UInt8]) -> String {
        let alphabet = Array("ybndrfg8ejkmcpqxot1uwisza345h769".utf8)
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for byte in data {
            buffer = buffer << 8 | UInt32(byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[Int(buffer >> UInt32(bits - 5) & 31)])
                bits -= 5
            }
            buffer &= (1 << UInt32(bits)) - 1
        }
        if bits > 0 { out.append(alphabet[Int(buffer << UInt32(5 - bits) & 31)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The WKD hash of a local part, e.g. "Joe.Doe" → "iy9q119eutrkn8s1mk4r39qejnbu3n5q".
    public static func hash(localPart: String) -> String {
        zBase32(KeyHash.sha1(Array(lowercasedASCII(localPart).utf8)))
    }
}

/// The WKD hash of a local part (see `WKD.hash(localPart:)`).
public func wkdHash(localPart: String) -> String {
    WKD.hash(localPart: localPart)
}
