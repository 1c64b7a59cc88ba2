import NIOCore
import Testing
@testable import Wire

/// Feeds `input` in pieces of `chunk` bytes and collects every frame, rendering lines as text.
private func frames(_ input: String, limit: Int = 512, chunk: Int = .max) -> [String] {
    var framer = CRLFLineFramer(maxLineLength: limit)
    var result: [String] = []
    let bytes = Array(input.utf8)
    var offset = 0
    while offset < bytes.count {
        let end = min(bytes.count, offset + chunk)
        framer.append(ByteBuffer(bytes: bytes[offset..<end]))
        offset = end
        while let frame = framer.next() {
            switch frame {
            case .line(let line): result.append(String(buffer: line))
            case .tooLong: result.append("<too long>")
            case .bareLineBreak: result.append("<bare>")
            }
        }
    }
    return result
}

@Suite struct LineFramerTests {
    @Test(arguments: [1, 2, 3, 7, Int.max])
    func splitsOnCRLFOnlyWhateverTheChunking(chunk: Int) {
        #expect(frames("EHLO a\r\nNOOP\r\n\r\nQUIT\r\n", chunk: chunk) == ["EHLO a", "NOOP", "", "QUIT"])
    }

    @Test func incompleteLineWaits() {
        var framer = CRLFLineFramer(maxLineLength: 512)
        framer.append(ByteBuffer(string: "NOOP\r"))
        #expect(framer.next() == nil)
        framer.append(ByteBuffer(string: "\n"))
        #expect(framer.next() == .line(ByteBuffer(string: "NOOP")))
    }

    @Test func bareLFIsNeverALineEnd() {
        // RFC 5321 2.3.8: "\n.\n" must not end anything: the smuggling attack.
        #expect(frames("a\nb\r\n") == ["<bare>"])
        #expect(frames(".\n.\r\nnext\r\n") == ["<bare>", "next"])
    }

    @Test func bareCRIsRefused() {
        #expect(frames("a\rb\r\nok\r\n") == ["<bare>", "ok"])
        #expect(frames("a\r\rb\r\n") == ["<bare>"])
    }

    @Test func lineAtTheLimitPassesAndOneMoreOctetDoesNot() {
        let exact = String(repeating: "x", count: 998)   // 998 + CRLF = 1000
        #expect(frames(exact + "\r\n", limit: 1000) == [exact])
        #expect(frames(exact + "y\r\nnext\r\n", limit: 1000) == ["<too long>", "next"])
    }

    @Test(arguments: [1, 5, 100, Int.max])
    func overlongLineIsReportedOnceAndSkippedWithoutBuffering(chunk: Int) {
        let long = String(repeating: "z", count: 10_000)
        #expect(frames(long + "\r\nQUIT\r\n", limit: 512, chunk: chunk) == ["<too long>", "QUIT"])
    }

    @Test func overlongLineNeverHoldsMoreThanTheLimit() {
        var framer = CRLFLineFramer(maxLineLength: 100)
        for _ in 0..<100 {
            framer.append(ByteBuffer(string: String(repeating: "a", count: 1000)))
            while framer.next() != nil {}
            #expect(framer.bufferedByteCount <= 100)
        }
    }

    @Test func crlfSplitAcrossOverlongDiscardIsFound() {
        var framer = CRLFLineFramer(maxLineLength: 10)
        framer.append(ByteBuffer(string: String(repeating: "a", count: 20) + "\r"))
        #expect(framer.next() == .tooLong)
        #expect(framer.next() == nil)
        framer.append(ByteBuffer(string: "\nok\r\n"))
        #expect(framer.next() == .line(ByteBuffer(string: "ok")))
    }

    @Test func rawBytesBypassFraming() {
        var framer = CRLFLineFramer(maxLineLength: 512)
        framer.append(ByteBuffer(string: "ab\ncd\rNOOP\r\n"))
        #expect(framer.nextBytes(upTo: 6) == ByteBuffer(string: "ab\ncd\r"))
        #expect(framer.next() == .line(ByteBuffer(string: "NOOP")))
    }

    @Test func fuzzedInputNeverTraps() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [13, 10, 0, 46, 65, 32, 255]
        for _ in 0..<2000 {
            var framer = CRLFLineFramer(maxLineLength: Int.random(in: 3...64, using: &generator))
            for _ in 0..<8 {
                let bytes = (0..<Int.random(in: 0...80, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
                framer.append(ByteBuffer(bytes: bytes))
                while let frame = framer.next() {
                    if case .line(let line) = frame {
                        #expect(!line.readableBytesView.contains(13) && !line.readableBytesView.contains(10))
                        #expect(line.readableBytes + 2 <= framer.maxLineLength)
                    }
                }
            }
        }
    }

    // MARK: runs of ordinary lines (the DATA fast path)

    @Test func ordinaryLinesComeAsOneRunUpToADotLine() {
        var framer = CRLFLineFramer(maxLineLength: 1000)
        framer.append(ByteBuffer(string: "Subject: x\r\n\r\nbody\r\n..stuffed\r\nmore\r\n.\r\n"))
        #expect(framer.nextOrdinaryLines().map { String(buffer: $0) } == "Subject: x\r\n\r\nbody\r\n")
        #expect(framer.nextOrdinaryLines() == nil)  // "..stuffed" is for next()
        #expect(framer.next() == .line(ByteBuffer(string: "..stuffed")))
        #expect(framer.nextOrdinaryLines().map { String(buffer: $0) } == "more\r\n")
        #expect(framer.nextOrdinaryLines() == nil)
        #expect(framer.next() == .line(ByteBuffer(string: ".")))
    }

    @Test func aRunStopsBeforeAnIncompleteBareOrOverlongLine() {
        for (input, run) in [("a\r\nb", "a\r\n"), ("a\r\nb\nc\r\n", "a\r\n"), ("a\r\nb\rc\r\n", "a\r\n"),
                             ("a\r\n\n", "a\r\n"), ("a\r\n" + String(repeating: "x", count: 20) + "\r\n", "a\r\n"),
                             ("a\r\nb\r", "a\r\n"), ("\nx\r\n", nil), ("\r\r\n", nil), (".\r\n", nil)] as [(String, String?)] {
            var framer = CRLFLineFramer(maxLineLength: 10)
            framer.append(ByteBuffer(string: input))
            #expect(framer.nextOrdinaryLines().map { String(buffer: $0) } == run, "\(input.debugDescription)")
        }
    }

    /// Whatever the bytes and their chunking, taking runs where possible and frames otherwise
    /// yields exactly the frames `next()` alone yields: the fast path changes speed, not meaning.
    @Test func runsAndFramesAgreeWithFramesAlone() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [13, 10, 13, 10, 46, 65, 66, 32, 0]
        for _ in 0..<2000 {
            let limit = Int.random(in: 3...24, using: &generator)
            let bytes = (0..<Int.random(in: 0...200, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            var cuts = Set((0..<Int.random(in: 0...6, using: &generator)).map { _ in Int.random(in: 0...bytes.count, using: &generator) })
            cuts.insert(bytes.count)

            var plain = CRLFLineFramer(maxLineLength: limit)
            plain.append(ByteBuffer(bytes: bytes))
            var expected: [LineFrame] = []
            while let frame = plain.next() { expected.append(frame) }

            var fast = CRLFLineFramer(maxLineLength: limit)
            var got: [LineFrame] = []
            var offset = 0
            for cut in cuts.sorted() {
                fast.append(ByteBuffer(bytes: bytes[offset..<cut]))
                offset = cut
                while true {
                    if let run = fast.nextOrdinaryLines() {
                        var rest = run
                        #expect(rest.readableBytes > 0)
                        while let lf = rest.readableBytesView.firstIndex(of: 10) {
                            let length = lf - rest.readerIndex - 1
                            got.append(.line(rest.readSlice(length: length)!))
                            rest.moveReaderIndex(forwardBy: 2)
                        }
                        #expect(rest.readableBytes == 0)
                    } else if let frame = fast.next() {
                        got.append(frame)
                    } else {
                        break
                    }
                }
            }
            #expect(got == expected, "\(bytes) limit \(limit) cuts \(cuts.sorted())")
        }
    }
}
