import Foundation
import Logging
import MailCore
import NIOCore
@testable import Store

/// Fast scrypt for tests (the production default takes ~0.1 s per hash).
let fastHash = PasswordHash.Parameters(log2N: 10, r: 8, p: 1)

/// A data folder in a fresh temporary directory, removed by `withDataFolder`.
struct TestDataFolder {
    let path: String
    let folder: DataFolder

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("postern-store-tests-\(UUID().uuidString)", isDirectory: true).path
        folder = try DataFolder(path: path)
    }

    func accounts(quarantineDays: Int = 180, extraReserved: [String] = [], recentLifetime: Double = 2) -> AccountStore {
        AccountStore(folder: folder, policy: AccountNamePolicy(domain: "mail.i2p", extraReserved: extraReserved),
                     quarantineDays: quarantineDays, hashParameters: fastHash, recentLifetime: recentLifetime)
    }

    /// The names of the files in `messages/`.
    func messageFiles() throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: folder.messagesDirectory.path))
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

func withDataFolder(_ body: (TestDataFolder) async throws -> Void) async throws {
    let data = try TestDataFolder()
    defer { data.remove() }
    try await body(data)
}

/// A data folder with an open `MailStore`, closed and removed afterwards.
func withMailStore(_ body: (TestDataFolder, MailStore) async throws -> Void) async throws {
    try await withDataFolder { data in
        let store = try MailStore(folder: data.folder, logger: Logger(label: "test"))
        do {
            try await body(data, store)
            await store.close()
        } catch {
            await store.close()
            throw error
        }
    }
}

func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }
func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

extension ByteBuffer {
    var bytes: [UInt8] { Array(readableBytesView) }
}

extension Account {
    func target(quota: Int) -> MailboxTarget {
        MailboxTarget(accountID: id, accountName: name, quotaBytes: quota)
    }
}
