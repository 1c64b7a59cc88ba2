import Foundation
import Testing
@testable import Web

/// Cheap scrypt so the suite stays fast; the format is the same at any cost.
private let cheap = ScryptCost(log2N: 10, r: 8, p: 1)

/// A fresh, not yet existing data folder inside a fresh temporary directory.
private func scratchRoot() throws -> (base: URL, root: URL) {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("sealed-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
    return (base, base.appendingPathComponent("webmail"))
}

private func fields(_ subject: String, from: String = "me@postern.i2p", to: String = "you@example.org",
                    date: Int64? = 1_700_000_000) -> SealedFolders.Fields {
    (subject: subject, from: from, to: to, date: date)
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Every regular file under `root` (hidden ones too), as (path relative to root, bytes).
private func allFiles(_ root: URL) throws -> [(String, [UInt8])] {
    var out: [(String, [UInt8])] = []
    let rootPath = root.path
    guard let walker = FileManager.default.enumerator(atPath: rootPath) else { return [] }
    while let relative = walker.nextObject() as? String {
        var isDirectory: ObjCBool = false
        let path = rootPath + "/" + relative
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
        out.append((relative, Array(try Data(contentsOf: URL(fileURLWithPath: path)))))
    }
    return out
}

private func allPaths(_ root: URL) -> [String] {
    var out = [root.path]
    let walker = FileManager.default.enumerator(atPath: root.path)
    while let relative = walker?.nextObject() as? String { out.append(root.path + "/" + relative) }
    return out
}

private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == first, haystack[i..<i + needle.count].elementsEqual(needle) { return true }
        i += 1
    }
    return false
}

/// The marker's UTF-8 bytes and the base64 text it becomes at each of the three alignments
/// (inner part only: the edge characters depend on neighbouring bytes).
private func forms(of marker: String) -> [[UInt8]] {
    var out = [bytes(marker)]
    for shift in 0..<3 {
        let encoded = (Array(repeating: UInt8(ascii: "x"), count: shift) + bytes(marker)).sealedTestBase64()
        let inner = Array(encoded.utf8).dropFirst(4).dropLast(4)
        out.append(Array(inner))
    }
    return out
}

private extension Array where Element == UInt8 {
    func sealedTestBase64() -> String { Data(self).base64EncodedString() }
}

private func accountDirectories(_ root: URL) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: root.path).filter { name in
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: root.path + "/" + name, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}

private func messageFiles(_ root: URL) throws -> [String] {
    var out: [String] = []
    for dir in try accountDirectories(root) {
        for name in try FileManager.default.contentsOfDirectory(atPath: root.path + "/" + dir)
        where name.count == 32 { out.append(root.path + "/" + dir + "/" + name) }
    }
    return out
}

private func mode(_ path: String) -> Int {
    var status = stat()
    guard lstat(path, &status) == 0 else { return -1 }
    return Int(status.st_mode & 0o777)
}

@Suite struct SealedFoldersTests {
    @Test func roundTripSaveListReadReplaceMoveDelete() async throws {
        let (base, root) = try scratchRoot()
        defer { try? FileManager.default.removeItem(at: base) }
        let store = try await SealedFolders.open(root: root, account: "alice@postern.i2p", password: "correct horse", parameters: cheap)

        let first = try await store.save(bytes("Subject: one\r\n\r\nfirst"), in: .sent, summary: fields("one"), now: 100)
        let second = try await store.save(bytes("Subject: two\r\n\r\nsecond"), in: .sent,
                                          summary: fields("two", to: "them@example.org", date: nil), now: 200)
        let draft = try await store.save(bytes("draft v1"), in: .drafts, summary: fields("draft"), now: 150)

        let sent = try await store.list(.sent)
        #expect(sent.map(\.id) == [second, first])  // newest first
        #expect(sent[0] == SealedSummary(id: second, folder: .sent, savedAt: 200, size: 22, subject: "two",
                                         from: "me@postern.i2p", to: "them@example.org", date: nil))
        #expect(sent[1].date == 1_700_000_000)
        #expect(try await store.read(first) == bytes("Subject: one\r\n\r\nfirst"))
        #expect(try await store.summary(second) == sent[0])
        #expect(try await store.list(.drafts).map(\.id) == [draft])
        #expect(try await store.list(.trash).isEmpty)

        try await store.replace(id: draft, with: bytes("draft version two"), summary: fields("draft 2"), now: 300)
        let drafts = try await store.list(.drafts)
        #expect(drafts.count == 1)
        #expect(drafts[0].subject == "draft 2" && drafts[0].savedAt == 300 && drafts[0].size == 17 && drafts[0].folder == .drafts)
        #expect(try await store.read(draft) == bytes("draft version two"))

        try await store.move(first, to: .trash)
        #expect(try await store.list(.sent).map(\.id) == [second])
        #expect(try await store.list(.trash).map(\.id) == [first])
        #expect(try await store.read(first) == bytes("Subject: one\r\n\r\nfirst"))
        #expect(try await store.summary(first).folder == .trash)

        try await store.delete(first)
        #expect(try await store.list(.trash).isEmpty)
        await #expect(throws: SealedFoldersError.notFound) { try await store.read(first) }
        await #expect(throws: SealedFoldersError.notFound) { try await store.summary(first) }
        await #expect(throws: SealedFoldersError.notFound) { try await store.delete(first) }
        await #expect(throws: SealedFoldersError.notFound) { try await store.move(first, to: .sent) }
        await #expect(throws: SealedFoldersError.notFound) { try await store.read("../key") }
        #expect(try messageFiles(root).count == 2)

        // A fresh instance (empty cache) sees the same thing from disk.
        let again = try await SealedFolders.open(root: root, account: "alice@postern.i2p", password: "correct horse", parameters: cheap)
        #expect(try await again.list(.sent) == (try await store.list(.sent)))
        #expect(try await again.summary(draft) == drafts[0])  // before any list: read from disk
        #expect(try await again.list(.drafts) == drafts)
        #expect(await again.damagedFiles.isEmpty)
    }

    @Test func wrongPasswordIsRefusedByTheCheckRecordAndTheRightOneReadsEverything() async throws {
        let (base, root) = try scratchRoot()
        defer { try? FileManager.default.removeItem(at: base) }
        // No messages yet: only the check record can tell the password is wrong.
        _ = try await SealedFolders.open(root: root, account: "a@b.i2p", password: "right password", parameters: cheap)
        await #expect(throws: SealedFoldersError.wrongPassword) {
            _ = try await SealedFolders.open(root: root, account: "a@b.i2p", password: "wrong password", parameters: cheap)
        }

        let store = try await SealedFolders.open(root: root, account: "a@b.i2p", password: "right password", parameters: cheap)
        var ids: [LocalFolder: String] = [:]
        for (n, folder) in LocalFolder.allCases.enumerated() {
            ids[folder] = try await store.save(bytes("body \(folder)"), in: folder, summary: fields("s\(n)"), now: Int64(n))
        }
        await #expect(throws: SealedFoldersError.wrongPassword) {
            _ = try await SealedFolders.open(root: root, account: "a@b.i2p", password: "right passwore", parameters: cheap)
        }
        let reopened = try await SealedFolders.open(root: root, account: "A@B.i2p", password: "right password")
        for folder in LocalFolder.allCases {
            let listed = try await reopened.list(folder)
            #expect(listed.map(\.id) == [ids[folder]!])
            #expect(try await reopened.read(ids[folder]!) == bytes("body \(folder)"))
        }
    }

    @Test func noMarkerAppearsAnywhereOnDisk() async throws {
        let (base, root) = try scratchRoot()
        defer { try? FileManager.default.removeItem(at: base) }
        let password = "Pa55-MARKER-password-91c2"
        let markers = [
            "MARKERBODY-5e1f0a2c-body-text",
            "MARKERSUBJ-77d0c1-subject-line",
            "marker-from-3b9a@postern.i2p",
            "marker-to-c4d2e8@example.org",
            "Märker Ünïcødé Ωμέγα 秘密の件名",
            "MARKERATTACH-9f8e7d-attachment-content",
            "marker-filename-a1b2c3.pdf",
            password,
        ]
        let attachment = Data(bytes(markers[5])).base64EncodedString()
        let message = """
            From: \(markers[2])\r
            To: \(markers[3])\r
            Subject: \(markers[1])\r
            Content-Type: multipart/mixed; boundary=b\r
            \r
            --b\r
            Content-Type: text/plain; charset=utf-8\r
            \r
            \(markers[0])\r
            --b\r
            Content-Type: application/pdf\r
            Content-Disposition: attachment; filename="\(markers[6])"\r
            Content-Transfer-Encoding: base64\r
            \r
            \(attachment)\r
            --b--\r

            """

        let store = try await SealedFolders.open(root: root, account: "marker-account@postern.i2p", password: password, parameters: cheap)
        let sent = try await store.save(bytes(message), in: .sent, summary: fields(markers[1], from: markers[2], to: markers[3]), now: 1)
        let draft = try await store.save(bytes(message), in: .drafts, summary: fields(markers[4], from: markers[2], to: markers[3]), now: 2)
        try await store.move(sent, to: .trash)
        try await store.replace(id: draft, with: bytes(message + markers[4]), summary: fields(markers[4]), now: 3)
        #expect(try await store.read(sent) == bytes(message))

        let everything = markers + ["marker-account"]
        let needles = everything.flatMap(forms(of:))
        // The scan must be able to see a marker: check it against a file in clear first.
        let control = bytes("prefix " + message + everything.joined(separator: " ") + " suffix")
        #expect(everything.allSatisfy { marker in forms(of: marker).contains { contains(control, $0) } })
        #expect(forms(of: markers[5]).dropFirst().contains { contains(bytes(attachment), $0) })
        #expect(forms(of: markers[0]).dropFirst().contains { contains(bytes("QQ" + Data(bytes("y" + markers[0])).base64EncodedString()), $0) })

        let files = try allFiles(root)
        #expect(files.count >= 4)  // salt, key, two messages
        for (name, content) in files {
            for needle in needles {
                #expect(!contains(content, needle), "clear text in \(name)")
                #expect(!contains(bytes(name), needle), "clear text in the name \(name)")
            }
        }
        for path in allPaths(root) {
            #expect(!path.lowercased().contains("marker"))
        }
    }

    @Test func sizesArePadded() async throws {
        let (base, root) = try scratchRoot()
        defer { try? FileManager.default.removeItem(at: base) }
        let store = try await SealedFolders.open(root: root, account: "a@b.i2p", password: "password", parameters: cheap)
        let small = try await store.save(bytes("x"), in: .sent, summary: fields("a"), now: 1)
        let larger = try await store.save(Array(repeating: 65, count: 3000), in: .sent, summary: fields("a longer subject"), now: 2)
        let big = try await store.save(Array(repeating: 66, count: 100_000), in: .sent, summary: fields("b"), now: 3)
        let dir = root.path + "/" + (try accountDirectories(root))[0]
        func size(_ id: String) throws -> Int {
            (try FileManager.default.attributesOfItem(atPath: dir + "/" + id)[.size] as? NSNumber)?.intValue ?? -1
        }
        #expect(try size(small) == (try size(larger)))
        #expect(try (size(small) - 33) % 4096 == 0)
        #expect(try (size(big) - 33) % 8192 == 0 && size(big) > 100_000)
    }

    @Test func swappedFilesAreDetected() async throws {
        let (base, root) = try scratchRoot()
        defer { try? FileManager.default.removeItem(at: base) }
        let store = try await SealedFolders.open(root: root, account: "a@b.i2p", password: "password", parameters: cheap)
        let a = try await store.save(bytes("message A"), in: .sent, summary: fields("A"), now: 1)
        let b = try await store.save(bytes("message B"), in: .sent, summary: fields("B"), now: 2)
        let c = try await store.save(bytes("message C"), in: .sent, summary: fields("C"), now: 3)

        let dir = root.path + "/" + (try accountDirectories(root))[0]
        let contentA = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + a))
        let contentB = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + b))
        try contentB.write(to: URL(fileURLWithPath: dir + "/" + a))
        try contentA.write(to: URL(fileURLWithPath: dir + "/" + b))

        let reopened = try await SealedFolders.open(root: root, account: "a@b.i2p", password: "password", parameters: cheap)
        #expect(try await reopened.list(.sent).map(\.id) == [c])
        #expect(await reopened.damagedFiles == [a, b].sorted())
        await #expect(throws: SealedFoldersError.damaged(a)) { try await reopened.read(a) }
        await #expect(throws: SealedFoldersError.damaged(b)) { try await reopened.read(b) }
        #expect(try await reopened.read(c) == bytes("message C"))
    }

    @Test func truncatedFileIsReportedWhileOthersList() async throws {
        let (base, root) = try scratchRoot()
        defer { try? FileManager.default.removeItem(at: base) }
        let store = try await SealedFolders.open(root: root, account: "a@b.i2p", password: "password", parameters: cheap)
        let good = try await store.save(bytes("good"), in: .drafts, summary: fields("good"), now: 1)
        let bad = try await store.save(bytes("bad"), in: .drafts, summary: fields("bad"), now: 2)
        let empty = try await store.save(bytes("empty"), in: .drafts, summary: fields("empty"), now: 3)
        let dir = root.path + "/" + (try accountDirectories(root))[0]
        #expect(truncate(dir + "/" + bad, 100) == 0)
        #expect(truncate(dir + "/" + empty, 0) == 0)

        let reopened = try await SealedFolders.open(root: root, account: "a@b.i2p", password: "password", parameters: cheap)
        #expect(try await reopened.list(.drafts).map(\.id) == [good])
        #expect(await reopened.damagedFiles == [bad, empty].sorted())
        await #expect(throws: SealedFoldersError.damaged(bad)) { try await reopened.read(bad) }
        await #expect(throws: SealedFoldersError.damaged(bad)) { try await reopened.summary(bad) }
        #expect(SealedFoldersError.damaged(bad).description.contains(bad))

        // A damaged file can still be deleted.
        try await reopened.delete(bad)
        #expect(await reopened.damagedFiles == [empty])
    }

    @Test func twoAccountsInOneRootAreApart() async throws {
        let (base, root) = try scratchRoot()
        defer { try? FileManager.default.removeItem(at: base) }
        let alice = try await SealedFolders.open(root: root, account: "Alice@postern.i2p", password: "alice's password", parameters: cheap)
        let bob = try await SealedFolders.open(root: root, account: "bob@postern.i2p", password: "bob's password", parameters: cheap)
        let fromAlice = try await alice.save(bytes("from alice"), in: .sent, summary: fields("alice"), now: 1)
        let fromBob = try await bob.save(bytes("from bob"), in: .sent, summary: fields("bob"), now: 1)

        #expect(try await alice.list(.sent).map(\.id) == [fromAlice])
        #expect(try await bob.list(.sent).map(\.id) == [fromBob])
        await #expect(throws: SealedFoldersError.notFound) { try await alice.read(fromBob) }

        let dirs = try accountDirectories(root)
        #expect(dirs.count == 2)
        for dir in dirs {
            #expect(dir.count == 64 && dir.allSatisfy(\.isHexDigit))
            #expect(!dir.lowercased().contains("alice") && !dir.lowercased().contains("bob") && !dir.contains("postern"))
        }
        // Names are case-insensitive: the same account, the same folder.
        let aliceAgain = try await SealedFolders.open(root: root, account: "alice@POSTERN.i2p", password: "alice's password", parameters: cheap)
        #expect(try await aliceAgain.read(fromAlice) == bytes("from alice"))
        #expect(try accountDirectories(root).count == 2)
        // Bob's password does not open Alice's folder.
        await #expect(throws: SealedFoldersError.wrongPassword) {
            _ = try await SealedFolders.open(root: root, account: "alice@postern.i2p", password: "bob's password", parameters: cheap)
        }
    }

    @Test func resealMovesEverythingToTheNewPassword() async throws {
        let (base, root) = try scratchRoot()
        defer { try? FileManager.default.removeItem(at: base) }
        let account = "a@b.i2p"
        let store = try await SealedFolders.open(root: root, account: account, password: "old password", parameters: cheap)
        var saved: [String: [UInt8]] = [:]
        for n in 0..<5 {
            let body = bytes("message \(n) " + String(repeating: "z", count: n * 1000))
            saved[try await store.save(body, in: LocalFolder.allCases[n % 3], summary: fields("s\(n)"), now: Int64(n))] = body
        }
        let before = try await LocalFolder.allCases.mapInOrder { try await store.list($0) }
        let oldFiles = try allFiles(root)

        let skipped = try await SealedFolders.reseal(root: root, account: account, oldPassword: "old password", newPassword: "new password")
        #expect(skipped.isEmpty)

        await #expect(throws: SealedFoldersError.wrongPassword) {
            _ = try await SealedFolders.open(root: root, account: account, password: "old password", parameters: cheap)
        }
        let reopened = try await SealedFolders.open(root: root, account: account, password: "new password", parameters: cheap)
        #expect(try await LocalFolder.allCases.mapInOrder { try await reopened.list($0) } == before)
        for (id, body) in saved { #expect(try await reopened.read(id) == body) }
        // Every message file was re-encrypted, and no reseal leftovers remain.
        let newFiles = Dictionary(uniqueKeysWithValues: try allFiles(root))
        for (name, content) in oldFiles where name.split(separator: "/").last?.count == 32 {
            #expect(newFiles[name] != nil && newFiles[name] != content)
        }
        #expect(!newFiles.keys.contains { $0.hasSuffix(".next") || $0.contains(".tmp-") })
        await #expect(throws: SealedFoldersError.wrongPassword) {
            try await SealedFolders.reseal(root: root, account: account, oldPassword: "old password", newPassword: "other")
        }
        await #expect(throws: SealedFoldersError.notFound) {
            try await SealedFolders.reseal(root: root, account: "nobody@b.i2p", oldPassword: "x", newPassword: "y")
        }
    }

    @Test func resealCutBeforeItsCommitKeepsTheOldPassword() async throws {
        let (base, root) = try scratchRoot()
        defer { try? FileManager.default.removeItem(at: base) }
        let account = "a@b.i2p"
        let store = try await SealedFolders.open(root: root, account: account, password: "old password", parameters: cheap)
        let ids = try await [0, 1, 2].mapInOrder { try await store.save(bytes("m\($0)"), in: .sent, summary: fields("s\($0)"), now: Int64($0)) }

        _ = try await SealedFolders.reseal(root: root, account: account, oldPassword: "old password", newPassword: "new password",
                                           parameters: nil, stoppingAt: .beforeCommit)
        #expect(try allFiles(root).contains { $0.0.hasSuffix(".next") })

        await #expect(throws: SealedFoldersError.wrongPassword) {
            _ = try await SealedFolders.open(root: root, account: account, password: "new password", parameters: cheap)
        }
        let reopened = try await SealedFolders.open(root: root, account: account, password: "old password", parameters: cheap)
        for (n, id) in ids.enumerated() { #expect(try await reopened.read(id) == bytes("m\(n)")) }
        #expect(try await reopened.list(.sent).count == 3)
        #expect(!(try allFiles(root)).contains { $0.0.hasSuffix(".next") })

        // Doing it again completes it.
        try await SealedFolders.reseal(root: root, account: account, oldPassword: "old password", newPassword: "new password")
        let resealed = try await SealedFolders.open(root: root, account: account, password: "new password", parameters: cheap)
        for (n, id) in ids.enumerated() { #expect(try await resealed.read(id) == bytes("m\(n)")) }
    }

    @Test func resealCutAfterItsCommitIsFinishedByOpen() async throws {
        let (base, root) = try scratchRoot()
        defer { try? FileManager.default.removeItem(at: base) }
        let account = "a@b.i2p"
        let store = try await SealedFolders.open(root: root, account: account, password: "old password", parameters: cheap)
        let ids = try await [0, 1, 2].mapInOrder { try await store.save(bytes("m\($0)"), in: .drafts, summary: fields("s\($0)"), now: Int64($0)) }

        _ = try await SealedFolders.reseal(root: root, account: account, oldPassword: "old password", newPassword: "new password",
                                           parameters: nil, stoppingAt: .afterCommit)
        #expect(try allFiles(root).filter { $0.0.hasSuffix(".next") }.count == 3)

        await #expect(throws: SealedFoldersError.wrongPassword) {
            _ = try await SealedFolders.open(root: root, account: account, password: "old password", parameters: cheap)
        }
        let reopened = try await SealedFolders.open(root: root, account: account, password: "new password", parameters: cheap)
        for (n, id) in ids.enumerated() { #expect(try await reopened.read(id) == bytes("m\(n)")) }
        #expect(await reopened.damagedFiles.isEmpty)
        #expect(!(try allFiles(root)).contains { $0.0.hasSuffix(".next") })
        // Repeating the reseal after the commit is harmless.
        try await SealedFolders.reseal(root: root, account: account, oldPassword: "old password", newPassword: "new password")
    }

    @Test func permissionsAreOwnerOnly() async throws {
        let (base, root) = try scratchRoot()
        defer { try? FileManager.default.removeItem(at: base) }
        // A data folder made too open by someone else is tightened.
        try FileManager.default.createDirectory(atPath: root.path, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o755])
        let store = try await SealedFolders.open(root: root, account: "a@b.i2p", password: "password", parameters: cheap)
        let id = try await store.save(bytes("hello"), in: .sent, summary: fields("hi"), now: 1)
        try await store.move(id, to: .trash)
        _ = try await store.save(bytes("draft"), in: .drafts, summary: fields("d"), now: 2)

        let paths = allPaths(root)
        #expect(paths.count == 6)  // root, salt, account dir, key, two messages
        for path in paths {
            var isDirectory: ObjCBool = false
            #expect(FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory))
            #expect(mode(path) == (isDirectory.boolValue ? 0o700 : 0o600), "\(path)")
        }
    }
}

private extension Array {
    func mapInOrder<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
