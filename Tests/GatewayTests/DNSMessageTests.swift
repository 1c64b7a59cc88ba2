import TestSupport
import Testing
@testable import Gateway

/// The DNS codec (RFC 1035 4) on hand-made packets, including hostile ones.
@Suite struct DNSMessageTests {
    /// A response header: id, flags, counts.
    static func header(id: UInt16 = 0x1234, flags: UInt16 = 0x8180, qd: UInt16 = 1, an: UInt16) -> [UInt8] {
        [id, flags, qd, an, 0, 0].flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
    static func name(_ text: String) -> [UInt8] { try! DNSMessage.encode(name: text) }
    static func record(_ owner: [UInt8], type: UInt16, _ data: [UInt8]) -> [UInt8] {
        owner + [UInt8(type >> 8), UInt8(type & 0xFF), 0, 1, 0, 0, 0x0E, 0x10, UInt8(data.count >> 8), UInt8(data.count & 0xFF)] + data
    }

    /// example.test MX 10 mx.example.test, MX 20 backup (compressed against the question).
    static let mxResponse: [UInt8] = {
        var packet = header(an: 2) + name("example.test") + [0, 15, 0, 1]
        let owner: [UInt8] = [0xC0, 12]  // the question's name
        packet += record(owner, type: 15, [0, 10] + name("mx.example.test"))
        packet += record(owner, type: 15, [0, 20] + [6] + Array("backup".utf8) + [0xC0, 12])
        return packet
    }()

    @Test func queryCarriesTheQuestionAndEDNS() throws {
        let query = try DNSMessage.query(id: 0xBEEF, name: "example.test.", type: .mx)
        #expect(Array(query[0..<4]) == [0xBE, 0xEF, 0x01, 0x00])
        #expect(Array(query[12..<26]) == [7] + Array("example".utf8) + [4] + Array("test".utf8) + [0])
        #expect(Array(query[26..<30]) == [0, 15, 0, 1])
        #expect(Array(query[30...]) == [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0])
        #expect(throws: DNSMessage.ParseError.badName) { try DNSMessage.query(id: 1, name: "a..b", type: .a) }
        #expect(throws: DNSMessage.ParseError.badName) { try DNSMessage.query(id: 1, name: String(repeating: "x", count: 64) + ".test", type: .a) }
    }

    @Test func mxAnswersWithCompression() throws {
        let response = try DNSMessage.parse(Self.mxResponse, expectedID: 0x1234)
        #expect(response.code == .noError && !response.truncated)
        #expect(response.answers.map(\.data) == [.mx(preference: 10, exchange: "mx.example.test"),
                                                 .mx(preference: 20, exchange: "backup.example.test")])
        #expect(response.answers.allSatisfy { $0.name == "example.test" && $0.ttl == 3600 })
        #expect(throws: DNSMessage.ParseError.idMismatch) { try DNSMessage.parse(Self.mxResponse, expectedID: 1) }
    }

    @Test func txtStringsAreJoinedAndCodesRead() throws {
        let long = String(repeating: "k", count: 300)
        let chunks: [UInt8] = [255] + Array(long.utf8.prefix(255)) + [45] + Array(long.utf8.dropFirst(255))
        let packet = Self.header(an: 1) + Self.name("s._domainkey.i2pmail.org") + [0, 16, 0, 1]
            + Self.record([0xC0, 12], type: 16, chunks)
        #expect(try DNSMessage.parse(packet, expectedID: 0x1234).answers.map(\.data) == [.txt(long)])
        let nx = Self.header(flags: 0x8183, an: 0) + Self.name("nowhere.test") + [0, 1, 0, 1]
        #expect(try DNSMessage.parse(nx, expectedID: 0x1234).code == .nameError)
        let tc = Self.header(flags: 0x8380, an: 0) + Self.name("big.test") + [0, 16, 0, 1]
        #expect(try DNSMessage.parse(tc, expectedID: 0x1234).truncated)
    }

    @Test func hostilePacketsAreRefusedNotFollowed() {
        // A pointer to itself, a forward pointer, a pointer past the end.
        let loop = Self.header(qd: 0, an: 1) + [0xC0, 12] + [0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]
        #expect(throws: DNSMessage.ParseError.badPointer) { try DNSMessage.parse(loop, expectedID: 0x1234) }
        let forward = Self.header(qd: 0, an: 1) + [0xC0, 40] + [0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]
        #expect(throws: DNSMessage.ParseError.badPointer) { try DNSMessage.parse(forward, expectedID: 0x1234) }
        // More answers announced than present; a record longer than the packet; a bad A length.
        #expect(throws: DNSMessage.ParseError.truncated) { try DNSMessage.parse(Self.header(qd: 0, an: 5), expectedID: 0x1234) }
        let long = Self.header(qd: 0, an: 1) + Self.name("a.test") + [0, 1, 0, 1, 0, 0, 0, 0, 0xFF, 0xFF, 1]
        #expect(throws: DNSMessage.ParseError.truncated) { try DNSMessage.parse(long, expectedID: 0x1234) }
        let badA = Self.header(qd: 0, an: 1) + Self.record(Self.name("a.test"), type: 1, [1, 2, 3])
        #expect(throws: DNSMessage.ParseError.badRecord) { try DNSMessage.parse(badA, expectedID: 0x1234) }
        // A query (QR clear) is not an answer.
        #expect(throws: DNSMessage.ParseError.notAResponse) { try DNSMessage.parse(Self.header(flags: 0x0100, an: 0), expectedID: 0x1234) }
    }

    @Test func mutatedPacketsNeverTrap() {
        var random = SplitMix64(seed: 99)
        for round in 0..<20_000 {
            var packet = Self.mxResponse
            for _ in 0..<(1 + round % 6) {
                let index = Int.random(in: 0..<packet.count, using: &random)
                packet[index] = UInt8.random(in: 0...255, using: &random)
            }
            if round % 7 == 0 { packet = Array(packet.prefix(Int.random(in: 0...packet.count, using: &random))) }
            _ = try? DNSMessage.parse(packet, expectedID: 0x1234)
        }
    }
}
