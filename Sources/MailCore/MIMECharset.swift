/// Bytes in a declared charset (RFC 2045 5.1, RFC 2046 4.1.2) to a String, without Foundation or
/// iconv: the charsets real mail uses are small tables. Anything else is read as UTF-8 with
/// replacement characters, and the caller is told so it can say so.
public enum MIMECharset {
    /// The result of a decode: the text, and whether the charset was one we know.
    public struct Decoded: Sendable, Equatable {
        public var text: String
        public var known: Bool
        /// The bytes did not fit the charset (invalid UTF-8, odd UTF-16 length).
        public var malformed: Bool
    }

    /// Lower-cased, quotes and an RFC 2231 5 language suffix (`utf-8*en`) removed.
    static func normalise(_ name: String) -> String {
        var n = name.trimmingSpaces().lowercased()
        if n.hasPrefix("\""), n.hasSuffix("\""), n.count >= 2 { n = String(n.dropFirst().dropLast()) }
        if let star = n.firstIndex(of: "*") { n = String(n[..<star]) }
        return n
    }

    public static func isKnown(_ name: String) -> Bool { kind(normalise(name)) != nil }

    private enum Kind { case utf8, ascii, latin1, latin9, cp1252, latin2, cp1251, koi8r, utf16, utf16be, utf16le }

    private static func kind(_ n: String) -> Kind? {
        switch n {
        case "utf-8", "utf8", "unicode-1-1-utf-8": return .utf8
        case "us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "us": return .ascii
        case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "iso-ir-100", "cp819": return .latin1
        case "iso-8859-15", "iso8859-15", "iso_8859-15", "latin-9", "latin9", "l9": return .latin9
        case "windows-1252", "cp1252", "x-cp1252", "ms-ansi": return .cp1252
        case "iso-8859-2", "iso8859-2", "iso_8859-2", "latin2", "latin-2", "l2": return .latin2
        case "windows-1251", "cp1251", "x-cp1251": return .cp1251
        case "koi8-r", "koi8r", "cskoi8r": return .koi8r
        case "utf-16", "utf16": return .utf16
        case "utf-16be", "unicodefffe": return .utf16be
        case "utf-16le": return .utf16le
        default: return nil
        }
    }

    /// Decodes `bytes`. nil or empty `charset` means "not declared": UTF-8 when the bytes are valid
    /// UTF-8, else windows-1252 (the usual undeclared 8-bit text); RFC 2045 5.2's us-ascii default
    /// is a subset of both.
    public static func decode<Bytes: Collection>(_ bytes: Bytes, charset: String?) -> Decoded where Bytes.Element == UInt8 {
        let name = charset.map(normalise) ?? ""
        if name.isEmpty {
            if let text = String(validating: bytes, as: UTF8.self) { return Decoded(text: text, known: true, malformed: false) }
            return Decoded(text: singleByte(bytes, high: windows1252Full), known: true, malformed: false)
        }
        guard let kind = kind(name) else {
            return Decoded(text: String(decoding: bytes, as: UTF8.self), known: false, malformed: false)
        }
        switch kind {
        case .utf8:
            if let text = String(validating: bytes, as: UTF8.self) { return Decoded(text: text, known: true, malformed: false) }
            return Decoded(text: String(decoding: bytes, as: UTF8.self), known: true, malformed: true)
        case .ascii:
            // Mislabelled 8-bit text is common; read it like undeclared text rather than failing.
            return decode(bytes, charset: nil)
        case .latin1, .cp1252:
            // WHATWG Encoding: browsers read ISO-8859-1 as windows-1252; its C1 range holds no text.
            return Decoded(text: singleByte(bytes, high: windows1252Full), known: true, malformed: false)
        case .latin9:
            return Decoded(text: singleByte(bytes, high: latin9Full), known: true, malformed: false)
        case .latin2:
            return Decoded(text: singleByte(bytes, high: latin2Full), known: true, malformed: false)
        case .cp1251:
            return Decoded(text: singleByte(bytes, high: windows1251), known: true, malformed: false)
        case .koi8r:
            return Decoded(text: singleByte(bytes, high: koi8r), known: true, malformed: false)
        case .utf16, .utf16be, .utf16le:
            return utf16(Array(bytes), kind == .utf16le ? false : true, bomAllowed: kind == .utf16)
        }
    }

    /// `high` maps 0x80...0xFF; bytes below are ASCII.
    private static func singleByte<Bytes: Collection>(_ bytes: Bytes, high: [UInt16]) -> String where Bytes.Element == UInt8 {
        var scalars = String.UnicodeScalarView()
        scalars.reserveCapacity(bytes.count)
        for b in bytes {
            let code = b < 0x80 ? UInt32(b) : UInt32(high[Int(b) - 0x80])
            scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
        }
        return String(scalars)
    }

    /// RFC 2781: big-endian unless a byte order mark says otherwise.
    private static func utf16(_ bytes: [UInt8], _ bigEndianDefault: Bool, bomAllowed: Bool) -> Decoded {
        var bigEndian = bigEndianDefault
        var start = 0
        if bomAllowed, bytes.count >= 2 {
            if bytes[0] == 0xFE && bytes[1] == 0xFF { start = 2 } else if bytes[0] == 0xFF && bytes[1] == 0xFE { bigEndian = false; start = 2 }
        }
        var units: [UInt16] = []
        units.reserveCapacity(bytes.count / 2)
        var i = start
        while i + 1 < bytes.count {
            units.append(bigEndian ? UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]) : UInt16(bytes[i + 1]) << 8 | UInt16(bytes[i]))
            i += 2
        }
        var text = String(decoding: units, as: UTF16.self)
        let odd = (bytes.count - start) % 2 == 1
        if odd { text.append("\u{FFFD}") }
        return Decoded(text: text, known: true, malformed: odd || String(validating: units, as: UTF16.self) == nil)
    }

    // Tables generated once from the Unicode mapping files; unmapped positions are U+FFFD.
    static let windows1252Full: [UInt16] = windows1252 + (0xA0...0xFF).map { UInt16($0) }
    static let latin9Full: [UInt16] = (0x80...0xFF).map { b -> UInt16 in
        // ISO-8859-15 differs from Latin-1 in eight positions (euro sign, Š, š, Ž, ž, Œ, œ, Ÿ).
        switch b {
        case 0xA4: return 0x20AC
        case 0xA6: return 0x0160
        case 0xA8: return 0x0161
        case 0xB4: return 0x017D
        case 0xB8: return 0x017E
        case 0xBC: return 0x0152
        case 0xBD: return 0x0153
        case 0xBE: return 0x0178
        default: return UInt16(b)
        }
    }
    static let latin2Full: [UInt16] = (0x80...0x9F).map { UInt16($0) } + iso88592
    static let windows1252: [UInt16] = [
        0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD,
        0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178,
    ]
    static let iso88592: [UInt16] = [
        0x00A0, 0x0104, 0x02D8, 0x0141, 0x00A4, 0x013D, 0x015A, 0x00A7, 0x00A8, 0x0160, 0x015E, 0x0164, 0x0179, 0x00AD, 0x017D, 0x017B,
        0x00B0, 0x0105, 0x02DB, 0x0142, 0x00B4, 0x013E, 0x015B, 0x02C7, 0x00B8, 0x0161, 0x015F, 0x0165, 0x017A, 0x02DD, 0x017E, 0x017C,
        0x0154, 0x00C1, 0x00C2, 0x0102, 0x00C4, 0x0139, 0x0106, 0x00C7, 0x010C, 0x00C9, 0x0118, 0x00CB, 0x011A, 0x00CD, 0x00CE, 0x010E,
        0x0110, 0x0143, 0x0147, 0x00D3, 0x00D4, 0x0150, 0x00D6, 0x00D7, 0x0158, 0x016E, 0x00DA, 0x0170, 0x00DC, 0x00DD, 0x0162, 0x00DF,
        0x0155, 0x00E1, 0x00E2, 0x0103, 0x00E4, 0x013A, 0x0107, 0x00E7, 0x010D, 0x00E9, 0x0119, 0x00EB, 0x011B, 0x00ED, 0x00EE, 0x010F,
        0x0111, 0x0144, 0x0148, 0x00F3, 0x00F4, 0x0151, 0x00F6, 0x00F7, 0x0159, 0x016F, 0x00FA, 0x0171, 0x00FC, 0x00FD, 0x0163, 0x02D9,
    ]
    static let windows1251: [UInt16] = [
        0x0402, 0x0403, 0x201A, 0x0453, 0x201E, 0x2026, 0x2020, 0x2021, 0x20AC, 0x2030, 0x0409, 0x2039, 0x040A, 0x040C, 0x040B, 0x040F,
        0x0452, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0xFFFD, 0x2122, 0x0459, 0x203A, 0x045A, 0x045C, 0x045B, 0x045F,
        0x00A0, 0x040E, 0x045E, 0x0408, 0x00A4, 0x0490, 0x00A6, 0x00A7, 0x0401, 0x00A9, 0x0404, 0x00AB, 0x00AC, 0x00AD, 0x00AE, 0x0407,
        0x00B0, 0x00B1, 0x0406, 0x0456, 0x0491, 0x00B5, 0x00B6, 0x00B7, 0x0451, 0x2116, 0x0454, 0x00BB, 0x0458, 0x0405, 0x0455, 0x0457,
        0x0410, 0x0411, 0x0412, 0x0413, 0x0414, 0x0415, 0x0416, 0x0417, 0x0418, 0x0419, 0x041A, 0x041B, 0x041C, 0x041D, 0x041E, 0x041F,
        0x0420, 0x0421, 0x0422, 0x0423, 0x0424, 0x0425, 0x0426, 0x0427, 0x0428, 0x0429, 0x042A, 0x042B, 0x042C, 0x042D, 0x042E, 0x042F,
        0x0430, 0x0431, 0x0432, 0x0433, 0x0434, 0x0435, 0x0436, 0x0437, 0x0438, 0x0439, 0x043A, 0x043B, 0x043C, 0x043D, 0x043E, 0x043F,
        0x0440, 0x0441, 0x0442, 0x0443, 0x0444, 0x0445, 0x0446, 0x0447, 0x0448, 0x0449, 0x044A, 0x044B, 0x044C, 0x044D, 0x044E, 0x044F,
    ]
    static let koi8r: [UInt16] = [
        0x2500, 0x2502, 0x250C, 0x2510, 0x2514, 0x2518, 0x251C, 0x2524, 0x252C, 0x2534, 0x253C, 0x2580, 0x2584, 0x2588, 0x258C, 0x2590,
        0x2591, 0x2592, 0x2593, 0x2320, 0x25A0, 0x2219, 0x221A, 0x2248, 0x2264, 0x2265, 0x00A0, 0x2321, 0x00B0, 0x00B2, 0x00B7, 0x00F7,
        0x2550, 0x2551, 0x2552, 0x0451, 0x2553, 0x2554, 0x2555, 0x2556, 0x2557, 0x2558, 0x2559, 0x255A, 0x255B, 0x255C, 0x255D, 0x255E,
        0x255F, 0x2560, 0x2561, 0x0401, 0x2562, 0x2563, 0x2564, 0x2565, 0x2566, 0x2567, 0x2568, 0x2569, 0x256A, 0x256B, 0x256C, 0x00A9,
        0x044E, 0x0430, 0x0431, 0x0446, 0x0434, 0x0435, 0x0444, 0x0433, 0x0445, 0x0438, 0x0439, 0x043A, 0x043B, 0x043C, 0x043D, 0x043E,
        0x043F, 0x044F, 0x0440, 0x0441, 0x0442, 0x0443, 0x0436, 0x0432, 0x044C, 0x044B, 0x0437, 0x0448, 0x044D, 0x0449, 0x0447, 0x044A,
        0x042E, 0x0410, 0x0411, 0x0426, 0x0414, 0x0415, 0x0424, 0x0413, 0x0425, 0x0418, 0x0419, 0x041A, 0x041B, 0x041C, 0x041D, 0x041E,
        0x041F, 0x042F, 0x0420, 0x0421, 0x0422, 0x0423, 0x0416, 0x0412, 0x042C, 0x042B, 0x0417, 0x0428, 0x042D, 0x0429, 0x0427, 0x042A,
    ]
}
