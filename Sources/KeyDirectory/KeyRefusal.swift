// Why an upload was not published (KEYS-1). Every case names the problem in words a user can act
// on; the web page shows `description` as it is.

public enum KeyRefusal: Error, Equatable, CustomStringConvertible {
    /// The upload is larger than the book takes.
    case tooLarge(size: Int, limit: Int)
    /// Nothing was uploaded.
    case empty
    /// Neither ASCII armour nor binary OpenPGP packets.
    case notOpenPGP
    /// The ASCII armour is broken (the text says how).
    case armor(String)
    /// The armour's `=XXXX` checksum does not match its data.
    case badChecksum(stated: UInt32, computed: UInt32)
    /// Armour of another kind: a message, a signature.
    case wrongArmor(label: String)
    /// A packet ends beyond the data, or its header is cut short.
    case truncated(packet: Int, detail: String)
    /// A packet's contents do not follow the format.
    case malformed(packet: Int, detail: String)
    /// A partial body length on a packet that may not have one (RFC 9580 4.2.1.4).
    case partialLength(packet: Int, tag: UInt8)
    /// A key or signature packet version the book does not read.
    case unsupportedVersion(packet: Int, what: String, version: UInt8)
    /// Secret key material (tags 5 and 7).
    case secretKey
    /// The data starts with something other than a public key packet.
    case notAKey(found: String)
    /// A packet that has no place in a transferable public key.
    case unexpectedPacket(packet: Int, found: String)
    /// More than one primary key.
    case multipleKeys
    case tooManyPackets(limit: Int)
    case tooManySubkeys(count: Int, limit: Int)
    case userIDTooLong(size: Int, limit: Int)
    /// No user ID carries the account's address.
    case noMatchingUserID(address: String, found: [String])
    /// The user ID with the address is not certified by the key itself.
    case noSelfSignature(userID: String)
    /// The key has expired.
    case expired(at: Int64)

    public var description: String {
        switch self {
        case let .tooLarge(size, limit):
            return "The key is too large (\(size) bytes; the limit is \(limit)). Export it without other people's signatures: gpg --export --export-options export-minimal --armor ADDRESS"
        case .empty:
            return "Nothing was uploaded: paste or upload your public key (gpg --export --armor ADDRESS)."
        case .notOpenPGP:
            return "This is not an OpenPGP key: it is neither ASCII armour (-----BEGIN PGP PUBLIC KEY BLOCK-----) nor binary OpenPGP data."
        case let .armor(problem):
            return "The ASCII armour is broken: \(problem)."
        case let .badChecksum(stated, computed):
            return "The ASCII armour's checksum is wrong (it says \(hex24(stated)), the data gives \(hex24(computed))): the key was damaged when it was copied. Copy it again in full."
        case let .wrongArmor(label):
            return "This is a \(label), not a public key. Export the public key with gpg --export --armor ADDRESS."
        case let .truncated(packet, detail):
            return "The key is cut short: packet \(packet) \(detail). Copy it again in full."
        case let .malformed(packet, detail):
            return "The key is malformed: packet \(packet) \(detail)."
        case let .partialLength(packet, tag):
            return "The key is malformed: packet \(packet) (\(PacketTag.name(tag))) uses a partial body length, which only data packets may use."
        case let .unsupportedVersion(packet, what, version):
            return "Packet \(packet) is a version \(version) \(what), which the key book does not read (it reads version 4 and 6 keys)."
        case .secretKey:
            return "This is a secret key: never upload it; export the public key with gpg --export --armor ADDRESS"
        case let .notAKey(found):
            return "This is not a public key: it starts with a \(found) packet. Export the public key with gpg --export --armor ADDRESS."
        case let .unexpectedPacket(packet, found):
            return "This is not just a public key: packet \(packet) is a \(found) packet."
        case .multipleKeys:
            return "The upload holds more than one key: upload one key at a time (gpg --export --armor ADDRESS)."
        case let .tooManyPackets(limit):
            return "The key has more than \(limit) packets. Export it without other people's signatures: gpg --export --export-options export-minimal --armor ADDRESS"
        case let .tooManySubkeys(count, limit):
            return "The key has \(count) subkeys; the key book takes at most \(limit)."
        case let .userIDTooLong(size, limit):
            return "A user ID is \(size) bytes long; the limit is \(limit)."
        case let .noMatchingUserID(address, found):
            let list = found.isEmpty ? "none" : found.map { "\"\($0)\"" }.joined(separator: ", ")
            return "The key has no user ID with your address \(address) (its user IDs: \(list)). Add one with gpg --quick-add-uid FINGERPRINT \(address) and export it again."
        case let .noSelfSignature(userID):
            return "The user ID \"\(userID)\" is not signed by the key itself, so no one would accept it. Add it again with gpg --quick-add-uid and export the key again."
        case let .expired(at):
            return "The key expired (at \(at), seconds since 1970). Extend it with gpg --quick-set-expire FINGERPRINT 2y and upload it again."
        }
    }
}

private func hex24(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
}
