// Allocation guard: counts heap allocations per message on Postern's hot paths and fails when a
// count exceeds its ceiling in bench/alloc-limits.json. A guard on counts, not on time: counts are
// the same from run to run for one build, so a change that doubles them fails loudly in CI.
//
// Run through bench/alloc-guard, which preloads the malloc interposer:
//   LD_PRELOAD=.build/debug/libMallocInterposerSwift.so .build/debug/postern-alloc-guard [limits.json] [--write]

import Foundation
import MailCore
import MallocInterposerSwift
import NIOCore
import POP3
import Privacy
import SMTP
import Wire

/// Allocations per iteration of `body`, after a warm-up, averaged over `iterations`.
func allocationsPerIteration(iterations: Int = 200, _ body: () -> Void) -> Double {
    for _ in 0..<20 { body() }
    MallocInterposerSwift.initialize()
    MallocInterposerSwift.hook()
    for _ in 0..<iterations { body() }
    MallocInterposerSwift.unhook()
    return Double(MallocInterposerSwift.getStatistics().mallocCount) / Double(iterations)
}

let alice = EmailAddress(localPart: "alice", domain: "mail.i2p")
let bodyLines = (0..<50).map { "Line \($0) of a 4 KB message body, plain text, nothing special here....." }
let message4K = "From: Alice <alice@mail.i2p>\r\nTo: bob@mail.i2p\r\nSubject: bench\r\nMessage-ID: <x@laptop>\r\n\r\n"
    + bodyLines.joined(separator: "\r\n") + "\r\n"

/// One whole submission dialogue through framer and session, effects answered at once.
let transcript = "EHLO bench\r\nAUTH PLAIN AGFsaWNlAGNvcnJlY3QtaG9yc2UtMQ==\r\nMAIL FROM:<alice@mail.i2p>\r\nRCPT TO:<bob@mail.i2p>\r\nDATA\r\n"
    + message4K + ".\r\nQUIT\r\n"
let transcriptBytes = ByteBuffer(string: transcript)

func runSubmission() {
    var framer = CRLFLineFramer(maxLineLength: 512)
    var session = SubmissionSession(configuration: .init())
    var output = ByteBuffer()
    framer.append(transcriptBytes)
    while !session.isClosed {
        let mode = session.inputMode
        framer.maxLineLength = mode.lineLimit
        var actions: [SubmissionSession.Action]
        // As SubmissionHandler.process: message data in runs of ordinary lines where it can.
        if mode == .dataLine, let lines = framer.nextOrdinaryLines() {
            actions = session.dataLines(lines)
            for case .reply(let reply) in actions { reply.write(into: &output) }
            continue
        }
        guard let frame = framer.next() else { break }
        switch (frame, mode) {
        case (.line(let line), .dataLine): actions = session.dataLine(line)
        case (.line(let line), _): actions = session.command(line)
        case (.tooLong, _): actions = session.framingError(.tooLong)
        case (.bareLineBreak, _): actions = session.framingError(.bareLineBreak)
        }
        while !actions.isEmpty {
            switch actions.removeFirst() {
            case .reply(let reply): reply.write(into: &output)
            case .authenticate: actions += session.authenticated(.success(alice))
            case .checkSender: actions += session.senderChecked(.accepted)
            case .checkRecipient: actions += session.recipientChecked(.accepted)
            case .deliver: actions += session.delivered(.accepted)
            case .close, .startTLS: break
            }
        }
    }
    precondition(output.readableBytes > 0)
}

let multipart = Array(("From: alice@mail.i2p\r\nSubject: m\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
    + "--b1\r\nContent-Type: text/plain\r\n\r\n" + bodyLines.prefix(25).joined(separator: "\r\n")
    + "\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.bin\"; creation-date=\"x\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + String(repeating: "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n", count: 50) + "--b1--\r\n").utf8)

func runSanitiser() {
    var random = SystemRandomNumberGenerator()
    let out = MessageSanitiser().sanitise(multipart, context: .init(sender: alice, messageIDDomain: "mail.i2p", releaseTime: 0), random: &random)
    precondition(!out.isEmpty)
}

let stored = ByteBuffer(string: message4K)
func runDotStuffing() {
    var out = ByteBuffer()
    DotStuffing.writeMultiline(stored, into: &out)
    precondition(out.readableBytes > stored.readableBytes)
}

let arguments = CommandLine.arguments.dropFirst()
let limitsPath = arguments.first { !$0.hasPrefix("--") } ?? "bench/alloc-limits.json"
let write = arguments.contains("--write")

let measured: [(String, Double)] = [
    ("smtp.submission-4KB", allocationsPerIteration(runSubmission)),
    ("privacy.sanitise-multipart-4KB", allocationsPerIteration(runSanitiser)),
    ("pop3.retr-dotstuff-4KB", allocationsPerIteration(runDotStuffing)),
]

if write {
    // Ceilings at 1.5 times today's counts: room for noise between toolchains, none for a doubling.
    let limits = Dictionary(uniqueKeysWithValues: measured.map { ($0.0, ($0.1 * 1.5).rounded(.up)) })
    let data = try! JSONSerialization.data(withJSONObject: limits, options: [.prettyPrinted, .sortedKeys])
    FileManager.default.createFile(atPath: limitsPath, contents: data)
    print("wrote \(limitsPath)")
}

guard let data = FileManager.default.contents(atPath: limitsPath),
      let limits = try? JSONSerialization.jsonObject(with: data) as? [String: Double] else {
    print("cannot read \(limitsPath)")
    exit(2)
}
guard measured.contains(where: { $0.1 > 0 }) else {
    print("no allocation was counted: run with LD_PRELOAD of libMallocInterposerSwift.so (bench/alloc-guard does)")
    exit(2)
}
var failures = 0
print("allocations per message (ceiling)")
for (name, count) in measured {
    let limit = limits[name] ?? 0
    let verdict = count <= limit ? "ok" : "OVER"
    if count > limit { failures += 1 }
    print(String(format: "  %-34@ %8.1f  (%6.0f)  %@", name as NSString, count, limit, verdict as NSString))
}
print(failures == 0 ? "\(measured.count) passed, 0 failed" : "\(measured.count - failures) passed, \(failures) failed")
exit(failures == 0 ? 0 : 1)
