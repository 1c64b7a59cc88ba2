// OpenPGP packet framing (RFC 4880 section 4.2, RFC 9580 section 4.2): legacy ("old") and
// OpenPGP ("new") headers, one-, two-, five-octet and partial body lengths. The reader is a loop
// over a byte array with every index checked: no recursion, no force unwrap on input.

/// Packet tags (RFC 9580 section 5) the key book names.
public enum PacketTag {
    public static let publicKeyEncryptedSessionKey: UInt8 = 1
    public static let signature: UInt8 = 2
    public static let symmetricKeyEncryptedSessionKey: UInt8 = 3
    public static let onePassSignature: UInt8 = 4
    public static let secretKey: UInt8 = 5
    public static let publicKey: UInt8 = 6
    public static let secretSubkey: UInt8 = 7
    public static let compressedData: UInt8 = 8
    public static let symmetricallyEncryptedData: UInt8 = 9
    public static let marker: UInt8 = 10
    public static let literalData: UInt8 = 11
    public static let trust: UInt8 = 12
    public static let userID: UInt8 = 13
    public static let publicSubkey: UInt8 = 14
    public static let userAttribute: UInt8 = 17
    public static let symmetricallyEncryptedIntegrityProtectedData: UInt8 = 18
    public static let modificationDetectionCode: UInt8 = 19
    public static let aeadEncryptedData: UInt8 = 20
    public static let padding: UInt8 = 21

    public static func name(_ tag: UInt8) -> String {
        switch tag {
        case 1: return "public-key encrypted session key"
        case 2: return "signature"
        case 3: return "symmetric-key encrypted session key"
        case 4: return "one-pass signature"
        case 5: return "secret key"
        case 6: return "public key"
        case 7: return "secret subkey"
        case 8: return "compressed data"
        case 9: return "symmetrically encrypted data"
        case 10: return "marker"
        case 11: return "literal data"
        case 12: return "trust"
        case 13: return "user ID"
        case 14: return "public subkey"
        case 17: return "user attribute"
        case 18: return "encrypted data"
        case 19: return "modification detection code"
        case 20: return "AEAD encrypted data"
        case 21: return "padding"
        default: return "unknown (tag \(tag))"
        }
    }

    /// The packets that may be sent with partial body lengths or, in the legacy format, an
    /// indeterminate length (RFC 9580 4.2.1.4: literal, compressed and encrypted data).
    static func mayStream(_ tag: UInt8) -> Bool {
        tag == compressedData || tag == symmetricallyEncryptedData || tag == literalData
            || tag == symmetricallyEncryptedIntegrityProtectedData || tag == aeadEncryptedData
    }
}

/// One packet: its tag and its body (partial bodies joined).
public struct OpenPGPPacket: Equatable, Sendable {
    public let tag: UInt8
    public let body: [UInt8]

    public init(tag: UInt8, body: [UInt8]) {
        self.tag = tag
        self.body = body
    }

    /// The packet with an OpenPGP-format header and the shortest definite body length.
    public var serialized: [UInt8] {
        var out: [UInt8] = [0xC0 | (tag & 0x3F)]
        let count = body.count
        if count < 192 {
            out.append(UInt8(count))
        } else if count < 8384 {
            let value = count - 192
            out.append(UInt8(value >> 8) + 192)
            out.append(UInt8(value & 0xFF))
        } else {
            out.append(0xFF)
            out.append(contentsOf: bigEndian(UInt32(truncatingIfNeeded: count), bytes: 4))
        }
        out.append(contentsOf: body)
        return out
    }
}

public enum OpenPGPPacketReader {
    /// Cuts `bytes` into packets. Refuses secret-key packets at once (tags 5 and 7), partial or
    /// indeterminate lengths on packets that may not have them, and more than `maxPackets`.
    public static func read(_ bytes: [UInt8], maxPackets: Int = 100) throws(KeyRefusal) -> [OpenPGPPacket] {
        var packets: [OpenPGPPacket] = []
        var offset = 0
        while offset < bytes.count {
            let number = packets.count + 1
            if packets.count >= maxPackets { throw .tooManyPackets(limit: maxPackets) }
            let first = bytes[offset]
            guard first & 0x80 != 0 else {
                if packets.isEmpty { throw .notOpenPGP }
                throw .malformed(packet: number, detail: "does not start with a packet header (byte 0x\(hex([first])) at offset \(offset))")
            }
            offset += 1
            let tag: UInt8
            var body: [UInt8] = []
            if first & 0x40 == 0 {
                // Legacy format: tag in bits 5..2, length type in bits 1..0.
                tag = (first >> 2) & 0x0F
                try refuseSecret(tag)
                let lengthType = first & 0x03
                if lengthType == 3 {
                    guard PacketTag.mayStream(tag) else {
                        throw .malformed(packet: number, detail: "(\(PacketTag.name(tag))) has an indeterminate length, which only data packets may have")
                    }
                    body = Array(bytes[offset...])
                    offset = bytes.count
                } else {
                    let width = lengthType == 0 ? 1 : (lengthType == 1 ? 2 : 4)
                    guard bytes.count - offset >= width else {
                        throw .truncated(packet: number, detail: "(\(PacketTag.name(tag))) has its length cut off")
                    }
                    var length = 0
                    for index in 0..<width { length = length << 8 | Int(bytes[offset + index]) }
                    offset += width
                    guard length <= bytes.count - offset else {
                        throw .truncated(packet: number, detail: "(\(PacketTag.name(tag))) claims \(length) bytes but only \(bytes.count - offset) follow")
                    }
                    body = Array(bytes[offset..<(offset + length)])
                    offset += length
                }
            } else {
                tag = first & 0x3F
                try refuseSecret(tag)
                var isFirstPart = true
                while true {
                    guard offset < bytes.count else {
                        throw .truncated(packet: number, detail: "(\(PacketTag.name(tag))) has its length cut off")
                    }
                    let octet = bytes[offset]
                    var length: Int
                    var partial = false
                    if octet < 192 {
                        length = Int(octet)
                        offset += 1
                    } else if octet < 224 {
                        guard bytes.count - offset >= 2 else {
                            throw .truncated(packet: number, detail: "(\(PacketTag.name(tag))) has its length cut off")
                        }
                        length = (Int(octet) - 192) << 8 + Int(bytes[offset + 1]) + 192
                        offset += 2
                    } else if octet == 255 {
                        guard bytes.count - offset >= 5 else {
                            throw .truncated(packet: number, detail: "(\(PacketTag.name(tag))) has its length cut off")
                        }
                        length = 0
                        for index in 1...4 { length = length << 8 | Int(bytes[offset + index]) }
                        offset += 5
                    } else {
                        guard PacketTag.mayStream(tag) else { throw .partialLength(packet: number, tag: tag) }
                        length = 1 << Int(octet & 0x1F)
                        partial = true
                        offset += 1
                        if isFirstPart && length < 512 {
                            throw .malformed(packet: number, detail: "(\(PacketTag.name(tag))) starts with a partial body of \(length) bytes; the first part must be at least 512")
                        }
                    }
                    guard length <= bytes.count - offset else {
                        throw .truncated(packet: number, detail: "(\(PacketTag.name(tag))) claims \(length) bytes but only \(bytes.count - offset) follow")
                    }
                    body.append(contentsOf: bytes[offset..<(offset + length)])
                    offset += length
                    isFirstPart = false
                    if !partial { break }
                }
            }
            packets.append(OpenPGPPacket(tag: tag, body: body))
        }
        return packets
    }

    private static func refuseSecret(_ tag: UInt8) throws(KeyRefusal) {
        if tag == PacketTag.secretKey || tag == PacketTag.secretSubkey { throw .secretKey }
    }
}

// MARK: - Byte helpers

/// A bounds-checked reader over a packet body.
struct ByteCursor {
    let bytes: [UInt8]
    private(set) var offset: Int

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }
    var isAtEnd: Bool { offset >= bytes.count }

    mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func take(_ count: Int) -> [UInt8]? {
        guard count >= 0, count <= remaining else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, count <= remaining else { return false }
        offset += count
        return true
    }

    mutating func uint(_ width: Int) -> UInt32? {
        guard width <= 4, let raw = take(width) else { return nil }
        return raw.reduce(0) { $0 << 8 | UInt32($1) }
    }
}

func bigEndian(_ value: UInt32, bytes count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: value >> UInt32(8 * (count - 1 - $0))) }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits: [UInt8] = Array("0123456789ABCDEF".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}
