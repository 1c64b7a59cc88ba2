import TestSupport
import MailCore
import Testing
@testable import Privacy

/// Property tests over generated messages: well-formed trees keep every leaf body and lose every
/// original boundary; arbitrary bytes never trap and always give a readable message.
@Suite struct SanitiserPropertyTests {
    /// Builds a random MIME tree; returns its bytes, its leaf bodies in order and its boundaries.
    func makeTree<R: RandomNumberGenerator>(depth: Int, random: inout R, boundaries: inout [String], leaves: inout [String]) -> String {
        if depth > 0 && Int.random(in: 0..<3, using: &random) > 0 {
            let boundary = "orig-\(boundaries.count)-\(UInt32.random(in: 0...UInt32.max, using: &random))"
            boundaries.append(boundary)
            let count = Int.random(in: 1...3, using: &random)
            var text = "Content-Type: multipart/mixed; boundary=\"\(boundary)\"\r\nX-Junk: \(boundary)\r\n\r\npreamble \(boundary)x\r\n"
            for _ in 0..<count {
                text += "--\(boundary)\r\n" + makeTree(depth: depth - 1, random: &random, boundaries: &boundaries, leaves: &leaves) + "\r\n"
            }
            return text + "--\(boundary)--\r\nepilogue\r\n"
        }
        let lines = (0..<Int.random(in: 0...3, using: &random)).map { _ in
            String((0..<Int.random(in: 0...20, using: &random)).map { _ in "abc -.=é".randomElement(using: &random)! })
        }
        let body = lines.joined(separator: "\r\n")
        leaves.append(body)
        return "Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline; creation-date=\"x\"\r\n\r\n" + body
    }

    func leafBodies(_ bytes: [UInt8]) -> [String] {
        func walk(_ entity: MIMEEntity) -> [String] {
            guard let parts = entity.parts else { return [String(decoding: bytes[entity.bodyRange], as: UTF8.self)] }
            return parts.flatMap(walk)
        }
        return walk(MIMEEntity.parse(bytes))
    }

    @Test func wellFormedTreesKeepEveryLeafAndLoseEveryBoundary() {
        var random = SplitMix64(seed: 42)
        for round in 0..<300 {
            var boundaries: [String] = []
            var leaves: [String] = []
            let tree = makeTree(depth: 4, random: &random, boundaries: &boundaries, leaves: &leaves)
            let message = Array(("From: alice@mail.i2p\r\nSubject: p\r\nMIME-Version: 1.0\r\n" + tree).utf8)
            let out = MessageSanitiser().sanitise(message, context: .init(sender: alice, messageIDDomain: "mail.i2p", releaseTime: 0), random: &random)
            let text = String(decoding: out, as: UTF8.self)
            #expect(leafBodies(out) == leaves, "round \(round)")
            for boundary in boundaries { #expect(!text.contains(boundary), "round \(round): \(boundary)") }
            #expect(!text.contains("creation-date") && !text.contains("X-Junk"))
            // Sanitising twice changes nothing but the random parts: the policy is idempotent in shape.
            let again = MessageSanitiser().sanitise(out, context: .init(sender: alice, messageIDDomain: "mail.i2p", releaseTime: 0), random: &random)
            #expect(leafBodies(again) == leaves)
        }
    }

    @Test func arbitraryBytesNeverTrapAndStayBounded() {
        var random = SplitMix64(seed: 7)
        let fragments = ["Content-Type: multipart/mixed; boundary=b\r\n", "--b\r\n", "--b--\r\n", "\r\n", "\n", "\r", ":", "From: x\r\n",
                         "Content-Type: multipart/signed; boundary=\"b\"\r\n", " folded\r\n", "\u{0}", "\u{FF}", "--", "b", "=?utf-8?q?x?=",
                         "Content-Disposition: attachment; filename=\"a;b\"; creation-date=\"\r\n", "Content-Type: multipart/alternative; boundary=\"\"\r\n"]
        for _ in 0..<2000 {
            let count = Int.random(in: 0...40, using: &random)
            let message = Array((0..<count).map { _ in fragments.randomElement(using: &random)! }.joined().utf8)
            let out = MessageSanitiser().sanitise(message, context: .init(sender: alice, messageIDDomain: "mail.i2p", releaseTime: 0), random: &random)
            // Header overhead is bounded; bodies are never duplicated.
            #expect(out.count <= message.count * 2 + 1024)
            let header = HeaderSection.parse(out)
            #expect(header.fields(named: "From").count == 1)
            #expect(header.fields.allSatisfy { MessageSanitiser.submissionFields.contains($0.name) })
        }
    }

    @Test func deeplyNestedMultipartsStopAtTheDepthLimit() {
        var message = "From: alice@mail.i2p\r\n"
        for level in 0..<200 { message += "Content-Type: multipart/mixed; boundary=\"l\(level)\"\r\n\r\n--l\(level)\r\n" }
        message += "Content-Type: text/plain\r\n\r\ndeep\r\n"
        for level in (0..<200).reversed() { message += "--l\(level)--\r\n" }
        var random = SplitMix64(seed: 3)
        let out = MessageSanitiser().sanitise(Array(message.utf8), context: .init(sender: alice, messageIDDomain: "mail.i2p", releaseTime: 0), random: &random)
        #expect(String(decoding: out, as: UTF8.self).contains("deep"))
    }
}
