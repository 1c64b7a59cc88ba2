import Foundation
import Testing
@testable import Store

@Suite struct ThreadingMapTests {
    func withMap(_ body: (DataFolder, ThreadingMap) async throws -> Void) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("threading-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let folder = try DataFolder(path: path)
        try await body(folder, try ThreadingMap(folder: folder))
    }

    @Test func recordedReplacementIsFoundOnlyForTheSameAccount() async throws {
        try await withMap { _, map in
            try await map.record(original: "<cover@laptop.lan>", replacement: "<new@mail.i2p>", accountID: 1)
            #expect(try map.replacements(for: ["<cover@laptop.lan>", "<other@x>"], accountID: 1) == ["<cover@laptop.lan>": "<new@mail.i2p>"])
            #expect(try map.replacements(for: ["<cover@laptop.lan>"], accountID: 2).isEmpty)
        }
    }

    @Test func theDatabaseHoldsNeitherIdInClear() async throws {
        try await withMap { folder, map in
            try await map.record(original: "<original-marker@laptop.lan>", replacement: "<replacement-marker@mail.i2p>", accountID: 1)
            let rows = try await folder.database.read { db in try Data.fetchAll(db, sql: "SELECT sealed FROM threading") }
            #expect(rows.count == 1)
            let files = try FileManager.default.contentsOfDirectory(atPath: folder.root.path).filter { $0.hasPrefix("postern.sqlite") }
            for file in files {
                let bytes = try Data(contentsOf: folder.root.appendingPathComponent(file))
                #expect(bytes.range(of: Data("original-marker".utf8)) == nil)
                #expect(bytes.range(of: Data("replacement-marker".utf8)) == nil)
            }
        }
    }

    @Test func theKeySurvivesARestart() async throws {
        try await withMap { folder, map in
            try await map.record(original: "<a@b>", replacement: "<c@d>", accountID: 7)
            let reopened = try ThreadingMap(folder: folder)
            #expect(try reopened.replacements(for: ["<a@b>"], accountID: 7) == ["<a@b>": "<c@d>"])
            let mode = try FileManager.default.attributesOfItem(atPath: folder.root.appendingPathComponent("threading.key").path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }
}

@Suite struct DurabilitySettingsTests {
    /// SMTP-7: a WAL commit must be fsync'ed, which SQLite does only with synchronous = FULL (2).
    @Test func writerCommitsWithSynchronousFull() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sync-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let folder = try DataFolder(path: path)
        let level = try folder.database.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
        #expect(level == 2)
        let mode = try folder.database.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
    }
}
