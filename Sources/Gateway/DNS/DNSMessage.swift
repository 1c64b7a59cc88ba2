/// DNS messages (RFC 1035 4), as far as the gateway needs them: a query for one name and type,
/// and the answer section of the response (A, AAAA, MX, TXT, CNAME). Pure and strict: every
/// length is checked against the packet, compression pointers may only point backwards and at
/// most 64 of them are followed, so no packet can make the parser loop, read out of bounds or trap.
public enum DNSRecordType: UInt16, Sendable, CaseIterable {
    case a = 1, cname = 5, mx = 15, txt = 16, aaaa = 28
}

public enum DNSRecordData: Sendable, Equatable {
    case a([UInt8])
    case aaaa([UInt8])
    case mx(preference: UInt16, exchange: String)
    /// The character-strings of one TXT record, joined (RFC 7208 3.3, RFC 6376 3.6.2.2).
    case txt(String)
    case cname(String)
}

public struct DNSRecord: Sendable, Equatable {
    public var name: String
    public var ttl: UInt32
    public var data: DNSRecordData
}

public struct DNSResponse: Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        case noError, formatError, serverFailure, nameError, notImplemented, refused, other(UInt8)
    }
    public var id: UInt16
    public var code: Code
    /// TC: the answer did not fit (RFC 1035 4.1.1); ask again over TCP.
    public var truncated: Bool
    public var answers: [DNSRecord]
}

public enum DNSMessage {
    public enum ParseError: Error, Equatable { case truncated, badName, badPointer, notAResponse, idMismatch, badRecord }

    /// A recursive query (RD) for `name` and `type`, with an EDNS(0) OPT record offering
    /// 1232-octet UDP answers (RFC 6891; the DNS flag day 2020 size).
    public static func query(id: UInt16, name: String, type: DNSRecordType) throws(ParseError) -> [UInt8] {
        var out: [UInt8] = []
        func u16(_ v: UInt16) { out.append(UInt8(v >> 8)); out.append(UInt8(v & 0xFF)) }
        u16(id); u16(0x0100)  // RD
        u16(1); u16(0); u16(0); u16(1)
        out += try encode(name: name)
        u16(type.rawValue); u16(1)  // IN
        out += [0, 0, 41]; u16(1232); out += [0, 0, 0, 0]; u16(0)  // OPT
        return out
    }

    static func encode(name: String) throws(ParseError) -> [UInt8] {
        var out: [UInt8] = []
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
        if !trimmed.isEmpty {
            for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
                let bytes = Array(label.utf8)
                guard (1...63).contains(bytes.count) else { throw .badName }
                out.append(UInt8(bytes.count))
                out += bytes
            }
        }
        out.append(0)
        guard out.count <= 255 else { throw .badName }
        return out
    }

    /// Parses a response to the query with `id`.
    public static func parse(_ packet: [UInt8], expectedID: UInt16) throws(ParseError) -> DNSResponse {
        var reader = Reader(packet: packet)
        let id = try reader.u16()
        let flags = try reader.u16()
        guard flags & 0x8000 != 0 else { throw .notAResponse }
        guard id == expectedID else { throw .idMismatch }
        let questions = try reader.u16()
        let answerCount = try reader.u16()
        _ = try reader.u16(); _ = try reader.u16()
        for _ in 0..<questions {
            _ = try reader.name()
            try reader.skip(4)
        }
        var answers: [DNSRecord] = []
        for _ in 0..<answerCount {
            let name = try reader.name()
            let type = try reader.u16()
            _ = try reader.u16()
            let ttl = UInt32(try reader.u16()) << 16 | UInt32(try reader.u16())
            let length = Int(try reader.u16())
            let end = reader.offset + length
            guard end <= packet.count else { throw .truncated }
            if let known = DNSRecordType(rawValue: type) {
                let data: DNSRecordData
                switch known {
                case .a:
                    guard length == 4 else { throw .badRecord }
                    data = .a(Array(packet[reader.offset..<end]))
                case .aaaa:
                    guard length == 16 else { throw .badRecord }
                    data = .aaaa(Array(packet[reader.offset..<end]))
                case .mx:
                    var inner = reader
                    let preference = try inner.u16()
                    data = .mx(preference: preference, exchange: try inner.name())
                    guard inner.offset == end else { throw .badRecord }
                case .cname:
                    var inner = reader
                    data = .cname(try inner.name())
                    guard inner.offset == end else { throw .badRecord }
                case .txt:
                    var text: [UInt8] = []
                    var index = reader.offset
                    while index < end {
                        let count = Int(packet[index])
                        guard index + 1 + count <= end else { throw .badRecord }
                        text += packet[(index + 1)..<(index + 1 + count)]
                        index += 1 + count
                    }
                    data = .txt(String(decoding: text, as: UTF8.self))
                }
                answers.append(DNSRecord(name: name, ttl: ttl, data: data))
            }
            reader.offset = end
        }
        let rcode = UInt8(flags & 0x000F)
        let code: DNSResponse.Code = switch rcode {
        case 0: .noError
        case 1: .formatError
        case 2: .serverFailure
        case 3: .nameError
        case 4: .notImplemented
        case 5: .refused
        default: .other(rcode)
        }
        return DNSResponse(id: id, code: code, truncated: flags & 0x0200 != 0, answers: answers)
    }

    struct Reader {
        let packet: [UInt8]
        var offset = 0

        mutating func u16() throws(ParseError) -> UInt16 {
            guard offset + 2 <= packet.count else { throw .truncated }
            defer { offset += 2 }
            return UInt16(packet[offset]) << 8 | UInt16(packet[offset + 1])
        }

        mutating func skip(_ count: Int) throws(ParseError) {
            guard offset + count <= packet.count else { throw .truncated }
            offset += count
        }

        /// A domain name, following compression pointers (RFC 1035 4.1.4) backwards only.
        mutating func name() throws(ParseError) -> String {
            var labels: [String] = []
            var position = offset
            var jumped = false
            var jumps = 0
            var length = 0
            while true {
                guard position < packet.count else { throw .truncated }
                let byte = packet[position]
                if byte & 0xC0 == 0xC0 {
                    guard position + 1 < packet.count else { throw .truncated }
                    let target = Int(byte & 0x3F) << 8 | Int(packet[position + 1])
                    guard target < position, jumps < 64 else { throw .badPointer }
                    if !jumped { offset = position + 2 }
                    jumped = true
                    jumps += 1
                    position = target
                    continue
                }
                guard byte & 0xC0 == 0 else { throw .badName }
                let count = Int(byte)
                if count == 0 {
                    if !jumped { offset = position + 1 }
                    break
                }
                guard position + 1 + count <= packet.count else { throw .truncated }
                length += count + 1
                guard length <= 255 else { throw .badName }
                labels.append(String(decoding: packet[(position + 1)...(position + count)], as: UTF8.self))
                position += 1 + count
            }
            return labels.joined(separator: ".").lowercased()
        }
    }
}
