// What the key book publishes for an account (KEYS-1): an uploaded public key, checked and cut
// down to the parts that concern the account's address.
//
// Kept, in this order (RFC 9580 10.1, a transferable public key):
//   the primary key packet; its direct-key self-signatures (0x1F) and key revocations (0x20) by
//   the key itself; ONE user ID whose address is the account's, with its self-certifications
//   (0x10–0x13) and certification revocations (0x30) by the key itself; each subkey that has a
//   binding signature (0x18) by the primary key, with its bindings and revocations (0x28).
// Stripped: user IDs without the address (they may name other accounts or real names), user
// attributes (photos), every signature by another key (third-party certifications reveal who
// knows whom; a designated revoker's revocation goes too), trust, marker and padding packets.
//
// Signatures are NOT verified cryptographically: "by the key itself" means the signature's issuer
// fingerprint (subpacket 33) or, lacking one, its issuer key ID (subpacket 16) is the primary
// key's. This is enough for the book because it only ever serves what an account owner uploaded
// after logging in for their own address: a forged self-signature can only hurt the uploader, and
// every OpenPGP client verifies the signatures it imports (gpg drops a user ID or subkey whose
// binding does not verify). The filtering is for privacy and size, not for trust.

public struct PreparedKey: Equatable, Sendable {
    /// The published key as described (user IDs: the kept one only).
    public let info: PublicKeyInfo
    /// The filtered transferable public key, binary (OpenPGP-format packet headers): what WKD serves.
    public let binary: [UInt8]
    /// `binary` in ASCII armour with its CRC-24: what HKP `op=get` serves.
    public let armored: String
}

public enum KeyPublication {
    /// Largest upload, armoured or binary.
    public static let maxUploadBytes = 64 * 1024
    /// Most packets in an upload (a key with many third-party signatures must be exported minimal).
    public static let maxPackets = 100
    public static let maxSubkeys = 16
    /// Longest user ID (any user ID in the upload).
    public static let maxUserIDBytes = 2048

    /// Checks an upload (ASCII armour or binary) for `address` and returns what to publish.
    /// `now` (seconds since 1970) refuses a key that has already expired.
    public static func prepare(upload: [UInt8], address: String, now: Int64) throws(KeyRefusal) -> PreparedKey {
        let key = try TransferableKey(packets: try packets(fromUpload: upload))
        let wanted = lowercasedASCII(address.trimmingWhitespace())

        // The user ID: the first with the account's address that the key certified itself.
        var matching: [TransferableKey.UserID] = []
        for userID in key.userIDs where addressOf(userID.bytes) == wanted { matching.append(userID) }
        guard !matching.isEmpty else {
            throw .noMatchingUserID(address: address, found: key.userIDs.map(\.text))
        }
        let primary = key.primary
        guard let kept = matching.first(where: { uid in
            uid.signatures.contains { SignaturePacket.userIDCertifications.contains($0.parsed.type) && $0.parsed.isIssued(by: primary) }
        }) else {
            throw .noSelfSignature(userID: matching[0].text)
        }

        let primarySignatures = key.primarySignatures.filter {
            ($0.parsed.type == SignaturePacket.directKey || $0.parsed.type == SignaturePacket.keyRevocation)
                && $0.parsed.isIssued(by: primary)
        }
        let userIDSignatures = kept.signatures.filter {
            (SignaturePacket.userIDCertifications.contains($0.parsed.type) || $0.parsed.type == SignaturePacket.certificationRevocation)
                && $0.parsed.isIssued(by: primary)
        }
        var subkeys: [(TransferableKey.Subkey, [TransferableKey.Signature])] = []
        for subkey in key.subkeys {
            let signatures = subkey.signatures.filter {
                ($0.parsed.type == SignaturePacket.subkeyBinding || $0.parsed.type == SignaturePacket.subkeyRevocation)
                    && $0.parsed.isIssued(by: primary)
            }
            if signatures.contains(where: { $0.parsed.type == SignaturePacket.subkeyBinding }) {
                subkeys.append((subkey, signatures))
            }
        }

        var binary = key.primaryPacket.serialized
        for signature in primarySignatures { binary += signature.packet.serialized }
        binary += kept.packet.serialized
        for signature in userIDSignatures { binary += signature.packet.serialized }
        for (subkey, signatures) in subkeys {
            binary += subkey.packet.serialized
            for signature in signatures { binary += signature.packet.serialized }
        }

        let info = describe(
            primary: primary, primarySignatures: primarySignatures,
            userIDs: [(kept.text, userIDSignatures)], subkeys: subkeys)
        if let expires = info.expires, expires <= now { throw .expired(at: expires) }
        return PreparedKey(info: info, binary: binary, armored: Armor.encode(binary))
    }

    /// Describes a stored key (binary or armoured) as it is, without filtering: for a key that
    /// `prepare` produced earlier.
    public static func inspect(_ bytes: [UInt8]) throws(KeyRefusal) -> PublicKeyInfo {
        let key = try TransferableKey(packets: try packets(fromUpload: bytes))
        let primary = key.primary
        let own = { (signature: TransferableKey.Signature) in signature.parsed.isIssued(by: primary) }
        return describe(
            primary: primary, primarySignatures: key.primarySignatures.filter(own),
            userIDs: key.userIDs.map { ($0.text, $0.signatures.filter(own)) },
            subkeys: key.subkeys.map { ($0, $0.signatures.filter(own)) })
    }

    /// The packets of an upload: ASCII armour (a public key block) or binary.
    static func packets(fromUpload upload: [UInt8]) throws(KeyRefusal) -> [OpenPGPPacket] {
        guard upload.count <= maxUploadBytes else { throw .tooLarge(size: upload.count, limit: maxUploadBytes) }
        guard upload.contains(where: { !isWhitespace($0) }) else { throw .empty }
        // A byte-order mark some editors put before pasted text is no packet header.
        let upload = upload.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(upload.dropFirst(3)) : upload
        let data: [UInt8]
        if let first = upload.first, first & 0x80 != 0 {
            data = upload
        } else if Armor.looksArmored(upload) {
            let block = try Armor.decode(upload)
            switch block.label {
            case Armor.publicKeyLabel:
                break
            case "PGP PRIVATE KEY BLOCK", "PGP SECRET KEY BLOCK":
                throw .secretKey
            case "PGP MESSAGE":
                throw .wrongArmor(label: "PGP message (encrypted or signed data)")
            case "PGP SIGNATURE":
                throw .wrongArmor(label: "PGP signature")
            case "PGP SIGNED MESSAGE":
                throw .wrongArmor(label: "signed PGP message")
            default:
                throw .wrongArmor(label: "\"\(block.label)\" block")
            }
            if block.moreBlocksFollow { throw .multipleKeys }
            guard !block.data.isEmpty else { throw .empty }
            data = block.data
        } else {
            throw .notOpenPGP
        }
        return try OpenPGPPacketReader.read(data, maxPackets: maxPackets)
    }

    private static func describe(
        primary: KeyPacket, primarySignatures: [TransferableKey.Signature],
        userIDs: [(String, [TransferableKey.Signature])], subkeys: [(TransferableKey.Subkey, [TransferableKey.Signature])]
    ) -> PublicKeyInfo {
        // Expiry: the newest direct-key self-signature's, when it states one (RFC 9580 puts it
        // there for v6 keys); otherwise the newest user ID self-certification's (gpg's v4 keys).
        let directKey = primarySignatures.filter { $0.parsed.type == SignaturePacket.directKey }
        var certifications: [TransferableKey.Signature] = []
        for (_, signatures) in userIDs {
            certifications += signatures.filter { SignaturePacket.userIDCertifications.contains($0.parsed.type) }
        }
        let expires: Int64?
        if let newestDirect = newest(directKey), newestDirect.keyExpiration != nil {
            expires = expiry(of: primary, newestOf: directKey)
        } else {
            expires = expiry(of: primary, newestOf: certifications)
        }
        let subkeyInfos = subkeys.map { subkey, signatures in
            let bindings = signatures.filter { $0.parsed.type == SignaturePacket.subkeyBinding }
            return SubkeyInfo(
                version: Int(subkey.key.version), fingerprint: hex(subkey.key.fingerprint), keyID: hex(subkey.key.keyID),
                algorithm: subkey.key.algorithmName, algorithmID: subkey.key.algorithm, curve: subkey.key.curve,
                bits: subkey.key.bits, created: subkey.key.created,
                expires: expiry(of: subkey.key, newestOf: bindings),
                revoked: signatures.contains { $0.parsed.type == SignaturePacket.subkeyRevocation })
        }
        return PublicKeyInfo(
            version: Int(primary.version), fingerprint: hex(primary.fingerprint), keyID: hex(primary.keyID),
            algorithm: primary.algorithmName, algorithmID: primary.algorithm, curve: primary.curve, bits: primary.bits,
            created: primary.created, expires: expires,
            revoked: primarySignatures.contains { $0.parsed.type == SignaturePacket.keyRevocation },
            userIDs: userIDs.map(\.0), subkeys: subkeyInfos)
    }

    /// Key creation plus the key expiration time of the newest signature (0 or none: never).
    private static func expiry(of key: KeyPacket, newestOf signatures: [TransferableKey.Signature]) -> Int64? {
        guard let seconds = newest(signatures)?.keyExpiration, seconds > 0 else { return nil }
        return key.created + Int64(seconds)
    }

    /// The signature with the latest creation time (the last of equals).
    private static func newest(_ signatures: [TransferableKey.Signature]) -> SignaturePacket? {
        var newest: SignaturePacket?
        for signature in signatures.map(\.parsed) where (signature.created ?? 0) >= (newest?.created ?? Int64.min) {
            newest = signature
        }
        return newest
    }
}

/// A transferable public key as uploaded, cut into its components (RFC 9580 10.1).
struct TransferableKey {
    struct Signature {
        let packet: OpenPGPPacket
        let parsed: SignaturePacket
    }
    struct UserID {
        let packet: OpenPGPPacket
        var signatures: [Signature] = []
        var bytes: [UInt8] { packet.body }
        var text: String { String(decoding: packet.body, as: UTF8.self) }
    }
    struct Subkey {
        let packet: OpenPGPPacket
        let key: KeyPacket
        var signatures: [Signature] = []
    }

    let primaryPacket: OpenPGPPacket
    let primary: KeyPacket
    private(set) var primarySignatures: [Signature] = []
    private(set) var userIDs: [UserID] = []
    private(set) var subkeys: [Subkey] = []

    init(packets: [OpenPGPPacket]) throws(KeyRefusal) {
        // Packets that carry nothing of the key, wherever they stand.
        let ignored: Set<UInt8> = [PacketTag.marker, PacketTag.trust, PacketTag.padding]
        guard let start = packets.firstIndex(where: { !ignored.contains($0.tag) }) else { throw .empty }
        let first = packets[start]
        guard first.tag == PacketTag.publicKey else {
            throw .notAKey(found: PacketTag.name(first.tag))
        }
        primaryPacket = first
        primary = try KeyPacket(body: first.body, packet: start + 1)

        enum Component { case primary, userID, userAttribute, subkey }
        var current = Component.primary
        var subkeyCount = 0
        for index in (start + 1)..<max(start + 1, packets.count) {
            let packet = packets[index]
            let number = index + 1
            switch packet.tag {
            case PacketTag.signature:
                let signature = Signature(packet: packet, parsed: try SignaturePacket(body: packet.body, packet: number))
                switch current {
                case .primary: primarySignatures.append(signature)
                case .userID: userIDs[userIDs.count - 1].signatures.append(signature)
                case .userAttribute: break
                case .subkey: subkeys[subkeys.count - 1].signatures.append(signature)
                }
            case PacketTag.userID:
                guard packet.body.count <= KeyPublication.maxUserIDBytes else {
                    throw .userIDTooLong(size: packet.body.count, limit: KeyPublication.maxUserIDBytes)
                }
                userIDs.append(UserID(packet: packet))
                current = .userID
            case PacketTag.userAttribute:
                current = .userAttribute
            case PacketTag.publicSubkey:
                subkeyCount += 1
                guard subkeyCount <= KeyPublication.maxSubkeys else {
                    throw .tooManySubkeys(count: packets.filter { $0.tag == PacketTag.publicSubkey }.count, limit: KeyPublication.maxSubkeys)
                }
                subkeys.append(Subkey(packet: packet, key: try KeyPacket(body: packet.body, packet: number)))
                current = .subkey
            case PacketTag.publicKey:
                throw .multipleKeys
            case let tag where ignored.contains(tag):
                continue
            default:
                throw .unexpectedPacket(packet: number, found: PacketTag.name(packet.tag))
            }
        }
    }
}

/// The address in a user ID: inside the last `<…>`, or the whole (trimmed) user ID; lower-cased.
func addressOf(_ userID: [UInt8]) -> String {
    var candidate = userID[...]
    if let open = userID.lastIndex(of: UInt8(ascii: "<")),
       let close = userID[open...].firstIndex(of: UInt8(ascii: ">")) {
        candidate = userID[(open + 1)..<close]
    }
    return lowercasedASCII(String(decoding: candidate, as: UTF8.self).trimmingWhitespace())
}

func lowercasedASCII(_ text: String) -> String {
    String(decoding: text.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
}

private func isWhitespace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        let bytes = Array(utf8)
        guard let first = bytes.firstIndex(where: { !isWhitespace($0) }),
              let last = bytes.lastIndex(where: { !isWhitespace($0) }) else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
