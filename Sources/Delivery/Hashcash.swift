import Crypto
import Foundation
import MailCore

/// Hashcash version 1 stamps (hashcash.org, "Hashcash - A Denial of Service Counter-Measure"):
/// `1:bits:date:resource:ext:rand:counter`, whose SHA-1 begins with at least `bits` zero bits.
/// A stamp for one's own address raises the Internet recipient quota (QUOTA-2). Pure.
public struct HashcashStamp: Sendable, Equatable, CustomStringConvertible {
    public var bits: Int
    /// `YYMMDD`, `YYMMDDhhmm` or `YYMMDDhhmmss`, UTC.
    public var date: String
    public var resource: String
    public var extensions: String
    public var rand: String
    public var counter: String
    /// The stamp as written: what is hashed and what a spent stamp is remembered by. Kept from
    /// `parse` (a bits field written "022" hashes differently from "22").
    public let text: String

    public var description: String { text }

    /// Stamps older than this (by their date) are refused, and spent stamps are remembered this
    /// long: the hashcash tool's default validity.
    public static let validity: Int64 = 28 * 86400
    /// A stamp dated this far in the future is still accepted (clock skew).
    public static let futureGrace: Int64 = 2 * 86400

    public enum Problem: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        case wrongVersion
        case tooFewBits(claimed: Int, required: Int)
        case notWorked(required: Int)
        case wrongResource(String)
        case expired
        case future
        case spent

        public var description: String {
            switch self {
            case .malformed(let why): return "malformed hashcash stamp: \(why)"
            case .wrongVersion: return "hashcash stamp is not version 1"
            case .tooFewBits(let claimed, let required): return "hashcash stamp has \(claimed) bits, \(required) are required"
            case .notWorked(let required): return "hashcash stamp does not hash to \(required) leading zero bits"
            case .wrongResource(let resource): return "hashcash stamp is for \(HashcashStamp.quoted(resource)), not for this account's address"
            case .expired: return "hashcash stamp is older than 28 days"
            case .future: return "hashcash stamp is dated in the future"
            case .spent: return "hashcash stamp was already used"
            }
        }
    }

    public init(bits: Int, date: String, resource: String, extensions: String = "", rand: String, counter: String, text: String? = nil) {
        self.bits = bits
        self.date = date
        self.resource = resource
        self.extensions = extensions
        self.rand = rand
        self.counter = counter
        self.text = text ?? "1:\(bits):\(date):\(resource):\(extensions):\(rand):\(counter)"
    }

    /// Parses a stamp; every field is checked against the version 1 grammar.
    public static func parse(_ text: String) throws(Problem) -> HashcashStamp {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.utf8.count <= 512 else { throw .malformed("longer than 512 characters") }
        let fields = trimmed.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard let version = fields.first, !version.isEmpty else { throw .malformed("empty") }
        guard version == "1" else { throw .wrongVersion }
        guard fields.count == 7 else { throw .malformed("expected 7 fields separated by ':', found \(fields.count)") }
        let digits: (Character) -> Bool = { $0.isASCII && $0.isNumber }
        guard (1...3).contains(fields[1].count), fields[1].allSatisfy(digits), let bits = Int(fields[1]), bits <= 160 else {
            throw .malformed("bits field \"\(Self.quoted(fields[1]))\" is not a number of bits")
        }
        guard [6, 10, 12].contains(fields[2].count), fields[2].allSatisfy(digits) else {
            throw .malformed("date field \"\(Self.quoted(fields[2]))\" is not YYMMDD[hhmm[ss]]")
        }
        guard !fields[3].isEmpty, fields[3].allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw .malformed("resource field is empty or not printable ASCII")
        }
        let base64: (Character) -> Bool = { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/" || $0 == "=") }
        guard !fields[5].isEmpty, fields[5].allSatisfy(base64) else { throw .malformed("rand field is not base64") }
        guard !fields[6].isEmpty, fields[6].allSatisfy(base64) else { throw .malformed("counter field is not base64") }
        guard fields[4].allSatisfy({ $0.isASCII && !$0.isWhitespace }) else { throw .malformed("extension field is not printable ASCII") }
        let stamp = HashcashStamp(bits: bits, date: fields[2], resource: fields[3], extensions: fields[4], rand: fields[5],
                                  counter: fields[6], text: trimmed)
        guard stamp.time != nil else { throw .malformed("date field \"\(fields[2])\" is not a valid date") }
        return stamp
    }

    /// A piece of client text fit to quote in a reply: printable ASCII, at most 40 characters.
    static func quoted(_ text: String) -> String {
        let printable = String(text.unicodeScalars.map { (0x20...0x7E).contains($0.value) ? Character($0) : "?" })
        return printable.count > 40 ? String(printable.prefix(40)) + "…" : printable
    }

    /// Seconds since 1970 of the stamp's date (UTC), or nil for an impossible date.
    public var time: Int64? {
        let digits = date.compactMap { $0.wholeNumberValue }
        func number(_ range: Range<Int>) -> Int { range.reduce(0) { $0 * 10 + digits[$1] } }
        let year = 2000 + number(0..<2), month = number(2..<4), day = number(4..<6)
        let hour = digits.count >= 10 ? number(6..<8) : 0
        let minute = digits.count >= 10 ? number(8..<10) : 0
        let second = digits.count == 12 ? number(10..<12) : 0
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60 else { return nil }
        return RFC5322Date.days(year: Int64(year), month: Int64(month), day: Int64(day)) * 86400 + Int64(hour * 3600 + minute * 60 + second)
    }

    /// Number of leading zero bits of the stamp's SHA-1.
    public var leadingZeroBits: Int {
        Self.leadingZeroBits(Insecure.SHA1.hash(data: Array(description.utf8)))
    }

    /// The SHA-1 of the stamp in hex: what is remembered once it is spent (never the stamp itself).
    public var spentKey: String {
        Insecure.SHA1.hash(data: Array(description.utf8)).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// Checks the stamp for `resource` at `now` needing `requiredBits`. Does not know about
    /// double spending: the store does.
    public func verify(resource expected: String, requiredBits: Int, now: Int64) throws(Problem) {
        guard bits >= requiredBits else { throw .tooFewBits(claimed: bits, required: requiredBits) }
        guard leadingZeroBits >= requiredBits else { throw .notWorked(required: requiredBits) }
        guard resource.lowercased() == expected.lowercased() else { throw .wrongResource(resource) }
        guard let time else { throw .malformed("date field \"\(date)\" is not a valid date") }  // only for a hand-made value
        if time > now + Self.futureGrace { throw .future }
        if time + Self.validity < now { throw .expired }
    }

    /// Mints a stamp for `resource`: tries counters until the hash has `bits` leading zero bits
    /// (2^bits tries on average).
    public static func mint<R: RandomNumberGenerator>(resource: String, bits: Int, now: Int64, random: inout R) -> HashcashStamp {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        let rand = String((0..<16).map { _ in alphabet[Int.random(in: 0..<64, using: &random)] })
        let date = dateString(now)
        let prefix = Array("1:\(bits):\(date):\(resource)::\(rand):".utf8)
        var buffer = prefix
        var counter: UInt64 = 0
        while true {
            buffer.removeSubrange(prefix.count...)
            var value = counter
            repeat {
                buffer.append(UInt8(ascii: "0") + UInt8(value % 10))  // decimal digits are base64 characters
                value /= 10
            } while value > 0
            if leadingZeroBits(Insecure.SHA1.hash(data: buffer)) >= bits {
                return HashcashStamp(bits: bits, date: date, resource: resource, rand: rand,
                                     counter: String(decoding: buffer[prefix.count...], as: UTF8.self))
            }
            counter += 1
        }
    }

    static func dateString(_ now: Int64) -> String {
        let (year, month, day) = RFC5322Date.civil(fromDays: now >= 0 ? now / 86400 : (now - 86399) / 86400)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return two(year % 100) + two(month) + two(day)
    }

    static func leadingZeroBits<D: Sequence>(_ digest: D) -> Int where D.Element == UInt8 {
        var count = 0
        for byte in digest {
            if byte == 0 { count += 8; continue }
            return count + byte.leadingZeroBitCount
        }
        return count
    }
}
