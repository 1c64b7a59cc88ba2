// OpenPGP ASCII armour (RFC 4880 section 6; RFC 9580 section 6): decoding with the CRC-24
// checksum checked when present (RFC 9580 makes it optional: a missing one is accepted, a wrong
// one refused), and encoding with the checksum (older tools, gpg 2.2 among them, expect it).

public struct ArmoredBlock: Equatable, Sendable {
    /// What follows "BEGIN " on the armour line, e.g. "PGP PUBLIC KEY BLOCK".
    public let label: String
    /// Armour headers ("Comment", "Version", …) in order.
    public let headers: [ArmorHeader]
    public let data: [UInt8]
    /// Whether an `=XXXX` checksum line was present (and matched).
    public let hadChecksum: Bool
    /// Whether another armour block follows the first one.
    public let moreBlocksFollow: Bool
}

public struct ArmorHeader: Equatable, Sendable {
    public let key: String
    public let value: String
}

public enum Armor {
    public static let publicKeyLabel = "PGP PUBLIC KEY BLOCK"

    /// Whether `bytes` look like armour: "-----BEGIN PGP " somewhere at the start of a line.
    public static func looksArmored(_ bytes: [UInt8]) -> Bool {
        lines(bytes).contains { $0.starts(with: beginPrefix) }
    }

    /// Decodes the first armour block in `bytes`; text before it is ignored.
    public static func decode(_ bytes: [UInt8]) throws(KeyRefusal) -> ArmoredBlock {
        let all = lines(bytes)
        guard let begin = all.firstIndex(where: { $0.starts(with: beginPrefix) }) else {
            throw .armor("there is no -----BEGIN PGP … line")
        }
        let beginLine = Array(all[begin])
        guard beginLine.count > beginPrefix.count + dashes.count, beginLine.suffix(dashes.count).elementsEqual(dashes) else {
            throw .armor("the -----BEGIN line does not end with -----")
        }
        let label = String(decoding: beginLine[11..<(beginLine.count - dashes.count)], as: UTF8.self)
        var index = begin + 1
        var headers: [ArmorHeader] = []
        // Armour headers up to a blank line. Tolerated: no blank line when there are no headers.
        while index < all.count {
            let line = all[index]
            if line.isEmpty { index += 1; break }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { break }
            let key = String(decoding: line[..<colon], as: UTF8.self)
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingLeadingSpaces()
            headers.append(ArmorHeader(key: key, value: value))
            index += 1
        }
        var base64: [UInt8] = []
        var checksum: [UInt8]?
        var sawEnd = false
        while index < all.count {
            let line = all[index]
            index += 1
            if line.starts(with: endPrefix) {
                let expected = Array("-----END \(label)-----".utf8)
                guard line.elementsEqual(expected) else {
                    throw .armor("the END line does not match \"BEGIN \(label)\"")
                }
                sawEnd = true
                break
            }
            if line.isEmpty { continue }
            if line.first == UInt8(ascii: "=") {
                guard checksum == nil else { throw .armor("there are two checksum lines") }
                guard line.count == 5 else { throw .armor("the checksum line \"\(String(decoding: line.prefix(20), as: UTF8.self))\" is not = and four characters") }
                checksum = Array(line.dropFirst())
                continue
            }
            guard checksum == nil else { throw .armor("data follows the checksum line (line \(index))") }
            base64.append(contentsOf: line)
        }
        guard sawEnd else { throw .armor("there is no -----END \(label)----- line: the text was cut short") }
        guard let data = Base64.decode(base64) else {
            throw .armor("the data is not valid base64")
        }
        if let checksum {
            guard let stated = Base64.decode(checksum), stated.count == 3 else {
                throw .armor("the checksum line is not valid base64")
            }
            let statedValue = UInt32(stated[0]) << 16 | UInt32(stated[1]) << 8 | UInt32(stated[2])
            let computed = crc24(data)
            guard statedValue == computed else { throw .badChecksum(stated: statedValue, computed: computed) }
        }
        let more = all[index...].contains { $0.starts(with: beginPrefix) }
        return ArmoredBlock(label: label, headers: headers, data: data, hadChecksum: checksum != nil, moreBlocksFollow: more)
    }

    /// Armour for `data`: LF line ends, 64 characters a line, the CRC-24 checksum, no headers.
    public static func encode(_ data: [UInt8], label: String = publicKeyLabel) -> String {
        var out = "-----BEGIN \(label)-----\n\n"
        let text = Base64.encode(data)
        var start = text.startIndex
        while start < text.endIndex {
            let end = text.index(start, offsetBy: 64, limitedBy: text.endIndex) ?? text.endIndex
            out += text[start..<end]
            out += "\n"
            start = end
        }
        let crc = crc24(data)
        out += "=" + Base64.encode(bigEndian(crc, bytes: 3)) + "\n"
        out += "-----END \(label)-----\n"
        return out
    }

    /// CRC-24 of RFC 4880 section 6.1 (initial value 0xB704CE, generator 0x1864CFB).
    public static func crc24(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xB704CE
        for byte in data {
            crc ^= UInt32(byte) << 16
            for _ in 0..<8 {
                crc <<= 1
                if crc & 0x1000000 != 0 { crc ^= 0x1864CFB }
            }
        }
        return crc & 0xFFFFFF
    }

    private static let beginPrefix = Array("-----BEGIN PGP ".utf8)
    private static let endPrefix = Array("-----END ".utf8)
    private static let dashes = Array("-----".utf8)

    /// Lines without their CR/LF and without trailing spaces and tabs.
    private static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        var start = 0
        var index = 0
        while index <= bytes.count {
            if index == bytes.count || bytes[index] == 0x0A {
                var end = index
                while end > start, bytes[end - 1] == 0x0D || bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
                var first = start
                // Leading white space too (pasted text is often indented).
                while first < end, bytes[first] == 0x20 || bytes[first] == 0x09 { first += 1 }
                result.append(bytes[first..<end])
                start = index + 1
            }
            index += 1
        }
        return result
    }
}

enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let values: [Int8] = {
        var table = [Int8](repeating: -1, count: 256)
        for (index, char) in alphabet.enumerated() { table[Int(char)] = Int8(index) }
        return table
    }()

    static func encode(_ data: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((data.count + 2) / 3 * 4)
        var index = 0
        while index < data.count {
            let b0 = UInt32(data[index])
            let b1 = index + 1 < data.count ? UInt32(data[index + 1]) : 0
            let b2 = index + 2 < data.count ? UInt32(data[index + 2]) : 0
            let group = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(group >> 18 & 63)])
            out.append(alphabet[Int(group >> 12 & 63)])
            out.append(index + 1 < data.count ? alphabet[Int(group >> 6 & 63)] : UInt8(ascii: "="))
            out.append(index + 2 < data.count ? alphabet[Int(group & 63)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Strict decoding: the alphabet only, padding only at the end; nil otherwise.
    static func decode<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 4 * 3)
        var accumulator: UInt32 = 0
        var count = 0
        var padding = 0
        for char in text {
            if char == UInt8(ascii: "=") {
                padding += 1
                if padding > 2 { return nil }
                continue
            }
            guard padding == 0 else { return nil }
            let value = values[Int(char)]
            guard value >= 0 else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            count += 1
            if count == 4 {
                out.append(UInt8(truncatingIfNeeded: accumulator >> 16))
                out.append(UInt8(truncatingIfNeeded: accumulator >> 8))
                out.append(UInt8(truncatingIfNeeded: accumulator))
                accumulator = 0
                count = 0
            }
        }
        switch count {
        case 0: return padding == 0 ? out : nil
        case 2:
            guard padding == 0 || padding == 2 else { return nil }
            out.append(UInt8(truncatingIfNeeded: accumulator >> 4))
        case 3:
            guard padding == 0 || padding == 1 else { return nil }
            out.append(UInt8(truncatingIfNeeded: accumulator >> 10))
            out.append(UInt8(truncatingIfNeeded: accumulator >> 2))
        default:
            return nil
        }
        return out
    }
}

extension String {
    fileprivate func trimmingLeadingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" })
    }
}
