import NIOCore
import Scan
import Testing
@testable import PosternApp

/// SCAN-1's accept policy: mail taken without a scan carries one mark, below the Return-Path.
@Suite struct ScanMarkTests {
    private func marked(_ text: String, _ unscanned: Bool) -> String {
        String(buffer: SubmissionService.markedUnscanned(ByteBuffer(string: text), if: unscanned))
    }

    @Test func scannedMailIsUntouched() {
        let message = "Return-Path: <a@b.example>\r\nSubject: x\r\n\r\nbody\r\n"
        #expect(marked(message, false) == message)
    }

    @Test func theMarkGoesBelowTheReturnPath() {
        #expect(marked("Return-Path: <a@b.example>\r\nSubject: x\r\n\r\nbody\r\n", true)
            == "Return-Path: <a@b.example>\r\n\(ScanDecision.unscannedField)\r\nSubject: x\r\n\r\nbody\r\n")
        #expect(marked("Subject: x\r\n\r\nbody\r\n", true) == "\(ScanDecision.unscannedField)\r\nSubject: x\r\n\r\nbody\r\n")
    }

    @Test func aMarkedMessageIsNotMarkedTwice() {
        // The gateway marked it (its clamd was down), and so would the core.
        let once = marked("Return-Path: <>\r\nSubject: x\r\n\r\nbody\r\n", true)
        #expect(marked(once, true) == once)
    }
}
