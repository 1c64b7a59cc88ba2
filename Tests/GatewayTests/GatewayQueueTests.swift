import Foundation
import Testing
@testable import Gateway

/// A fresh folder under the temporary directory, removed by `cleanUp()`. The queue folder itself
/// is `path` (not yet created, so the queue creates it with its own mode).
struct TemporaryFolder {
    let base: String
    let path: String

    init() {
        base = FileManager.default.temporaryDirectory.appendingPathComponent("postern-gw-\(UUID().uuidString)").path
        path = base + "/queue"
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: base) }

    var listing: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }

    func write(_ name: String, _ text: String) {
        write(name, Data(text.utf8))
    }

    func write(_ name: String, _ data: Data) {
        #expect(FileManager.default.createFile(atPath: "\(path)/\(name)", contents: data))
    }

    func mode(_ name: String? = nil) -> Int? {
        let target = name.map { "\(path)/\($0)" } ?? path
        return (try? FileManager.default.attributesOfItem(atPath: target))?[.posixPermissions] as? Int
    }
}

@Suite struct GatewayQueueTests {
    private func entry(_ id: String = GatewayQueue.newID(), destination: GatewayQueueEntry.Destination = .internet) -> GatewayQueueEntry {
        GatewayQueueEntry(id: id, destination: destination, sender: "alice@i2pmail.org",
                          recipients: ["bob@example.com", "carol@example.org"], now: 1_700_000_000)
    }

    @Test func addAndLoadRoundTrip() throws {
        let folder = TemporaryFolder()
        defer { folder.cleanUp() }
        let queue = try GatewayQueue(directory: folder.path)
        let first = entry("aaaaaaaaaaaaaaaaaaaa")
        let second = entry("bbbbbbbbbbbbbbbbbbbb", destination: .core)
        let bytes = Array("From: alice@i2pmail.org\r\nSubject: x\r\n\r\nbody \u{00e9}\r\n".utf8)
        try queue.add(first, message: bytes)
        try queue.add(second, message: [1, 2, 3])

        let loaded = try GatewayQueue(directory: folder.path).load().sorted { $0.id < $1.id }
        #expect(loaded == [first, second])
        #expect(loaded.first?.recipients.map(\.address) == ["bob@example.com", "carol@example.org"])
        #expect(loaded.first?.recipients.allSatisfy { $0.state == .pending } == true)
        #expect(loaded.first?.nextAttempt == 1_700_000_000)
        #expect(loaded.last?.destination == .core)
        #expect(try queue.message(of: first) == bytes)
        #expect(try queue.message(of: second) == [1, 2, 3])
        #expect(folder.listing == ["aaaaaaaaaaaaaaaaaaaa.env", "aaaaaaaaaaaaaaaaaaaa.msg",
                                   "bbbbbbbbbbbbbbbbbbbb.env", "bbbbbbbbbbbbbbbbbbbb.msg"])
    }

    @Test func saveReplacesTheState() throws {
        let folder = TemporaryFolder()
        defer { folder.cleanUp() }
        let queue = try GatewayQueue(directory: folder.path)
        var queued = entry()
        try queue.add(queued, message: Array("x\r\n".utf8))

        queued.attempts = 3
        queued.nextAttempt = 1_700_000_900
        queued.delayNoticeSent = true
        queued.recipients[0].state = .delivered
        queued.recipients[1].code = 451
        queued.recipients[1].status = "4.3.0"
        try queue.save(queued)

        let loaded = try queue.load()
        #expect(loaded == [queued])
        #expect(loaded.first?.attempts == 3)
        #expect(loaded.first?.recipients[1].status == "4.3.0")
        // The replacement went by rename: no temp file left, one envelope only.
        #expect(folder.listing == ["\(queued.id).env", "\(queued.id).msg"])
        // The message bytes are untouched by a state change.
        #expect(try queue.message(of: queued) == Array("x\r\n".utf8))
    }

    @Test func removeLeavesNothing() throws {
        // GW-3: once a message has left, nothing of it is kept.
        let folder = TemporaryFolder()
        defer { folder.cleanUp() }
        let queue = try GatewayQueue(directory: folder.path)
        let queued = entry()
        try queue.add(queued, message: Array("secret\r\n".utf8))
        #expect(folder.listing.count == 2)
        try queue.remove(queued)
        #expect(folder.listing.isEmpty)
        #expect(try queue.load().isEmpty)
        #expect(throws: GatewayQueue.Failure.self) { try queue.message(of: queued) }
    }

    @Test func loadRemovesLeftoversOfInterruptedWrites() throws {
        let folder = TemporaryFolder()
        defer { folder.cleanUp() }
        let queue = try GatewayQueue(directory: folder.path)
        let good = entry("goodgoodgoodgoodgood")
        try queue.add(good, message: Array("kept\r\n".utf8))

        let encoder = JSONEncoder()
        // A crash before the 250: the message without its envelope.
        folder.write("orphan00000000000000.msg", "unfinished\r\n")
        // A temp file of a state change that never got renamed.
        folder.write("goodgoodgoodgoodgood.tmp", "{")
        // An envelope whose message is gone.
        let lonely = entry("lonely00000000000000")
        folder.write("lonely00000000000000.env", try encoder.encode(lonely))
        // A corrupt envelope (and its message).
        folder.write("corrupt0000000000000.env", "{not json")
        folder.write("corrupt0000000000000.msg", "x\r\n")
        // An envelope that names another id than its file's.
        let other = entry("someoneelse000000000")
        folder.write("mismatch000000000000.env", try encoder.encode(other))
        folder.write("mismatch000000000000.msg", "y\r\n")

        let loaded = try queue.load()
        #expect(loaded == [good])
        // Unreadable state is set aside for the operator (another version's format?), never
        // destroyed; every other leftover is gone.
        #expect(folder.listing == ["corrupt0000000000000.env.unreadable", "corrupt0000000000000.msg",
                                   "goodgoodgoodgoodgood.env", "goodgoodgoodgoodgood.msg",
                                   "mismatch000000000000.env.unreadable", "mismatch000000000000.msg"])
        #expect(try queue.load() == [good])  // and a second start leaves them as they are
        #expect(try queue.message(of: good) == Array("kept\r\n".utf8))
    }

    @Test func filesArePrivate() throws {
        let folder = TemporaryFolder()
        defer { folder.cleanUp() }
        let queue = try GatewayQueue(directory: folder.path)
        let queued = entry()
        try queue.add(queued, message: Array("x\r\n".utf8))
        #expect(folder.mode() == 0o700)
        #expect(folder.mode("\(queued.id).msg") == 0o600)
        #expect(folder.mode("\(queued.id).env") == 0o600)
        var changed = queued
        changed.attempts = 1
        try queue.save(changed)
        #expect(folder.mode("\(queued.id).env") == 0o600)
    }

    @Test func newIDsAreRandomLettersAndDigits() {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789")
        var seen = Set<String>()
        for _ in 0..<200 {
            let id = GatewayQueue.newID()
            #expect(id.count == 20)
            #expect(id.allSatisfy { allowed.contains($0) }, "\(id)")
            seen.insert(id)
        }
        #expect(seen.count == 200)
        #expect(GatewayQueue.newID() != GatewayQueue.newID())
    }

    @Test func settledMeansNoRecipientPending() {
        var queued = entry()
        #expect(!queued.isSettled)
        queued.recipients[0].state = .delivered
        #expect(!queued.isSettled)
        queued.recipients[1].state = .failed
        #expect(queued.isSettled)
    }
}
