// Public key and signature packets (RFC 9580 sections 5.2 and 5.5.2; RFC 4880 5.2 and 5.5.2) read
// far enough to name a key and to sort its signatures: version, creation time, algorithm, size,
// fingerprint and key ID; a signature's type, algorithms, creation time, key expiration and issuer.

/// A key as the book shows and indexes it.
public struct PublicKeyInfo: Equatable, Sendable {
    /// Key packet version: 4 or 6.
    public let version: Int
    /// Upper-case hex, no spaces: 40 digits (v4) or 64 (v6).
    public let fingerprint: String
    /// Upper-case hex, 16 digits: the low 64 bits of a v4 fingerprint, the high 64 of a v6 one.
    public let keyID: String
    /// The algorithm's name, e.g. "RSA", "EdDSA (legacy)", "Ed25519".
    public let algorithm: String
    /// The public-key algorithm number (RFC 9580 9.1), as HKP indexes show it.
    public let algorithmID: UInt8
    /// The curve of an ECC key with an OID, e.g. "Ed25519", "NIST P-256".
    public let curve: String?
    /// Modulus or prime bits for RSA, DSA, ElGamal; the curve's size for ECC keys.
    public let bits: Int?
    /// Creation time, seconds since 1970.
    public let created: Int64
    /// Expiry time, seconds since 1970, from the newest self-signature; nil if it does not expire.
    public let expires: Int64?
    /// A key revocation signature by the key itself is present.
    public let revoked: Bool
    /// The user IDs (the published key keeps only the one with the account's address).
    public let userIDs: [String]
    public let subkeys: [SubkeyInfo]

    public func isExpired(now: Int64) -> Bool {
        if let expires { return expires <= now }
        return false
    }
}

public struct SubkeyInfo: Equatable, Sendable {
    public let version: Int
    public let fingerprint: String
    public let keyID: String
    public let algorithm: String
    public let algorithmID: UInt8
    public let curve: String?
    public let bits: Int?
    public let created: Int64
    public let expires: Int64?
    public let revoked: Bool
}

// MARK: - Key packets

/// A parsed public-key or public-subkey packet.
struct KeyPacket {
    let version: UInt8
    let created: Int64
    let algorithm: UInt8
    let curve: String?
    let bits: Int?
    let fingerprint: [UInt8]
    let keyID: [UInt8]

    init(body: [UInt8], packet: Int) throws(KeyRefusal) {
        var cursor = ByteCursor(body)
        guard let version = cursor.byte() else {
            throw .truncated(packet: packet, detail: "(public key) is empty")
        }
        guard version == 4 || version == 6 else {
            throw .unsupportedVersion(packet: packet, what: "key", version: version)
        }
        guard let created = cursor.uint(4), let algorithm = cursor.byte() else {
            throw .truncated(packet: packet, detail: "(public key) ends inside its header")
        }
        if version == 6 {
            guard let count = cursor.uint(4) else {
                throw .truncated(packet: packet, detail: "(public key) ends inside its header")
            }
            guard Int(count) == cursor.remaining else {
                throw .malformed(packet: packet, detail: "says its key material is \(count) bytes but holds \(cursor.remaining)")
            }
        }
        let material = try KeyMaterial.read(&cursor, algorithm: algorithm, packet: packet)
        if material.known && !cursor.isAtEnd {
            throw .malformed(packet: packet, detail: "has \(cursor.remaining) bytes after its key material (is it a secret key?)")
        }
        self.version = version
        self.created = Int64(created)
        self.algorithm = algorithm
        self.curve = material.curve
        self.bits = material.bits
        if version == 4 {
            let hashed = [0x99] + bigEndian(UInt32(truncatingIfNeeded: body.count), bytes: 2) + body
            guard body.count <= 0xFFFF else {
                throw .malformed(packet: packet, detail: "is too long for a version 4 key")
            }
            fingerprint = KeyHash.sha1(hashed)
            keyID = Array(fingerprint.suffix(8))
        } else {
            let hashed = [0x9B] + bigEndian(UInt32(truncatingIfNeeded: body.count), bytes: 4) + body
            fingerprint = KeyHash.sha256(hashed)
            keyID = Array(fingerprint.prefix(8))
        }
    }

    var algorithmName: String { PublicKeyAlgorithm.name(algorithm) }
}

public enum PublicKeyAlgorithm {
    public static func name(_ id: UInt8) -> String {
        switch id {
        case 1: return "RSA"
        case 2: return "RSA (encrypt only)"
        case 3: return "RSA (sign only)"
        case 16: return "ElGamal"
        case 17: return "DSA"
        case 18: return "ECDH"
        case 19: return "ECDSA"
        case 20: return "ElGamal (legacy)"
        case 22: return "EdDSA (legacy)"
        case 25: return "X25519"
        case 26: return "X448"
        case 27: return "Ed25519"
        case 28: return "Ed448"
        default: return "unknown algorithm \(id)"
        }
    }
}

/// The algorithm-specific public key fields (RFC 9580 5.5.5), read to find the key's size and
/// where the packet's key material ends.
private struct KeyMaterial {
    var bits: Int?
    var curve: String?
    /// False for an algorithm the book does not know: its material is not checked.
    var known = true

    static func read(_ cursor: inout ByteCursor, algorithm: UInt8, packet: Int) throws(KeyRefusal) -> KeyMaterial {
        func mpi() throws(KeyRefusal) -> Int {
            guard let declared = cursor.uint(2) else {
                throw .truncated(packet: packet, detail: "(public key) ends inside its key material")
            }
            guard let value = cursor.take((Int(declared) + 7) / 8) else {
                throw .truncated(packet: packet, detail: "(public key) ends inside its key material")
            }
            return bitLength(value)
        }
        func oid() throws(KeyRefusal) -> [UInt8] {
            guard let length = cursor.byte(), length != 0, length != 0xFF, let value = cursor.take(Int(length)) else {
                throw .malformed(packet: packet, detail: "has a bad curve OID")
            }
            return value
        }
        func fixed(_ count: Int) throws(KeyRefusal) {
            guard cursor.skip(count) else {
                throw .truncated(packet: packet, detail: "(public key) ends inside its key material")
            }
        }
        var material = KeyMaterial()
        switch algorithm {
        case 1, 2, 3:  // RSA: n, e
            material.bits = try mpi()
            _ = try mpi()
        case 17:  // DSA: p, q, g, y
            material.bits = try mpi()
            for _ in 0..<3 { _ = try mpi() }
        case 16, 20:  // ElGamal: p, g, y
            material.bits = try mpi()
            for _ in 0..<2 { _ = try mpi() }
        case 19, 22:  // ECDSA, EdDSA (legacy): OID, point
            let curve = Curve(oid: try oid())
            material.curve = curve.name
            material.bits = curve.bits
            _ = try mpi()
        case 18:  // ECDH: OID, point, KDF parameters
            let curve = Curve(oid: try oid())
            material.curve = curve.name
            material.bits = curve.bits
            _ = try mpi()
            guard let size = cursor.byte(), size >= 3, size != 0xFF, cursor.skip(Int(size)) else {
                throw .malformed(packet: packet, detail: "has bad ECDH KDF parameters")
            }
        case 25: try fixed(32); material.bits = 255
        case 26: try fixed(56); material.bits = 448
        case 27: try fixed(32); material.bits = 255
        case 28: try fixed(57); material.bits = 448
        default:
            material.known = false
        }
        return material
    }
}

private func bitLength(_ value: [UInt8]) -> Int {
    guard let index = value.firstIndex(where: { $0 != 0 }) else { return 0 }
    let lead = value[index]
    return (value.count - index - 1) * 8 + (8 - lead.leadingZeroBitCount)
}

private struct Curve {
    let name: String?
    let bits: Int?

    init(oid: [UInt8]) {
        switch hex(oid) {
        case "2A8648CE3D030107": name = "NIST P-256"; bits = 256
        case "2B81040022": name = "NIST P-384"; bits = 384
        case "2B81040023": name = "NIST P-521"; bits = 521
        case "2B8104000A": name = "secp256k1"; bits = 256
        case "2B2403030208010107": name = "brainpoolP256r1"; bits = 256
        case "2B240303020801010B": name = "brainpoolP384r1"; bits = 384
        case "2B240303020801010D": name = "brainpoolP512r1"; bits = 512
        case "2B06010401DA470F01": name = "Ed25519"; bits = 255
        case "2B060104019755010501": name = "Curve25519"; bits = 255
        case "2B656E": name = "X25519"; bits = 255  // 1.3.101.110
        case "2B656F": name = "X448"; bits = 448  // 1.3.101.111
        case "2B6570": name = "Ed25519"; bits = 255  // 1.3.101.112
        case "2B6571": name = "Ed448"; bits = 448  // 1.3.101.113
        default: name = nil; bits = nil
        }
    }
}

// MARK: - Signature packets

/// A signature packet read far enough to sort it (RFC 9580 5.2; v3 per RFC 4880 5.2.2).
/// Signatures are NOT cryptographically verified.
struct SignaturePacket {
    let version: UInt8
    let type: UInt8
    let publicKeyAlgorithm: UInt8
    let hashAlgorithm: UInt8
    /// Signature creation time (hashed subpacket 2, or the v3 field).
    var created: Int64?
    /// Key expiration time: seconds after the key's creation (hashed subpacket 9); 0 = never.
    var keyExpiration: UInt32?
    /// Issuer key ID (subpacket 16, hashed or not; the v3 field).
    var issuerKeyID: [UInt8]?
    /// Issuer fingerprint without its version octet (subpacket 33, hashed or not).
    var issuerFingerprint: [UInt8]?

    static let userIDCertifications: ClosedRange<UInt8> = 0x10...0x13
    static let subkeyBinding: UInt8 = 0x18
    static let directKey: UInt8 = 0x1F
    static let keyRevocation: UInt8 = 0x20
    static let subkeyRevocation: UInt8 = 0x28
    static let certificationRevocation: UInt8 = 0x30

    init(body: [UInt8], packet: Int) throws(KeyRefusal) {
        var cursor = ByteCursor(body)
        let cut = KeyRefusal.truncated(packet: packet, detail: "(signature) ends too early")
        guard let version = cursor.byte() else { throw cut }
        switch version {
        case 3:
            guard let hashedLength = cursor.byte() else { throw cut }
            guard hashedLength == 5 else {
                throw .malformed(packet: packet, detail: "(version 3 signature) has a hashed length of \(hashedLength), not 5")
            }
            guard let type = cursor.byte(), let created = cursor.uint(4), let issuer = cursor.take(8),
                  let publicKeyAlgorithm = cursor.byte(), let hashAlgorithm = cursor.byte(), cursor.skip(2)
            else { throw cut }
            self.version = 3
            self.type = type
            self.publicKeyAlgorithm = publicKeyAlgorithm
            self.hashAlgorithm = hashAlgorithm
            self.created = Int64(created)
            self.issuerKeyID = issuer
        case 4, 6:
            guard let type = cursor.byte(), let publicKeyAlgorithm = cursor.byte(), let hashAlgorithm = cursor.byte()
            else { throw cut }
            self.version = version
            self.type = type
            self.publicKeyAlgorithm = publicKeyAlgorithm
            self.hashAlgorithm = hashAlgorithm
            let width = version == 4 ? 2 : 4
            guard let hashedLength = cursor.uint(width), let hashed = cursor.take(Int(hashedLength)) else { throw cut }
            guard let unhashedLength = cursor.uint(width), let unhashed = cursor.take(Int(unhashedLength)) else { throw cut }
            guard cursor.skip(2) else { throw cut }  // left 16 bits of the hash
            if version == 6 {
                guard let saltLength = cursor.byte(), cursor.skip(Int(saltLength)) else { throw cut }
            }
            guard !cursor.isAtEnd else { throw cut }  // the signature itself
            try readSubpackets(hashed, hashed: true, packet: packet)
            try readSubpackets(unhashed, hashed: false, packet: packet)
        default:
            throw .unsupportedVersion(packet: packet, what: "signature", version: version)
        }
    }

    private mutating func readSubpackets(_ area: [UInt8], hashed: Bool, packet: Int) throws(KeyRefusal) {
        var cursor = ByteCursor(area)
        while !cursor.isAtEnd {
            guard let first = cursor.byte() else { break }
            var length: Int
            if first < 192 {
                length = Int(first)
            } else if first < 255 {
                guard let second = cursor.byte() else {
                    throw .malformed(packet: packet, detail: "(signature) has a subpacket length cut off")
                }
                length = (Int(first) - 192) << 8 + Int(second) + 192
            } else {
                guard let value = cursor.uint(4) else {
                    throw .malformed(packet: packet, detail: "(signature) has a subpacket length cut off")
                }
                length = Int(value)
            }
            guard length >= 1, let content = cursor.take(length) else {
                throw .malformed(packet: packet, detail: "(signature) has a subpacket that runs past its area")
            }
            let type = content[0] & 0x7F
            let data = Array(content.dropFirst())
            switch type {
            case 2 where hashed && data.count == 4:
                created = Int64(data.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            case 9 where hashed && data.count == 4:
                keyExpiration = data.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            case 16 where data.count == 8:
                if issuerKeyID == nil || hashed { issuerKeyID = data }
            case 33 where data.count == 21 || data.count == 33:
                if issuerFingerprint == nil || hashed { issuerFingerprint = Array(data.dropFirst()) }
            default:
                break
            }
        }
    }

    /// Whether the signature names `key` as its issuer (by fingerprint when it carries one).
    func isIssued(by key: KeyPacket) -> Bool {
        if let issuerFingerprint { return issuerFingerprint == key.fingerprint }
        if let issuerKeyID { return issuerKeyID == key.keyID }
        return false
    }
}
