import Foundation
import MailCore

/// One message in the gateway's queue: bound for the Internet (from the core), or for the core
/// (a bounce the gateway wrote). Addresses live here only until the message has left (GW-3).
public struct GatewayQueueEntry: Codable, Sendable, Equatable {
    public enum Destination: String, Codable, Sendable { case internet, core }

    public struct Recipient: Codable, Sendable, Equatable {
        public enum State: String, Codable, Sendable { case pending, delivered, failed }
        public var address: String
        public var state: State
        /// The last reply code and enhanced status, never the remote text (it may name hosts).
        public var code: Int?
        public var status: String?

        public init(address: String) {
            self.address = address
            self.state = .pending
        }
    }

    public var id: String
    public var destination: Destination
    /// The envelope sender; empty for the null sender `<>` (bounces).
    public var sender: String
    public var recipients: [Recipient]
    public var queuedAt: Int64
    public var attempts: Int
    public var nextAttempt: Int64
    public var delayNoticeSent: Bool

    public init(id: String, destination: Destination, sender: String, recipients: [String], now: Int64) {
        self.id = id
        self.destination = destination
        self.sender = sender
        self.recipients = recipients.map(Recipient.init)
        self.queuedAt = now
        self.attempts = 0
        self.nextAttempt = now
        self.delayNoticeSent = false
    }

    public var isSettled: Bool { !recipients.contains { $0.state == .pending } }
}

/// The gateway's only storage (GW-3): one folder, two files per message — `<id>.msg`, the bytes
/// exactly as they will be sent, and `<id>.env`, the envelope and retry state as JSON. Both are
/// fsynced (and the folder) before the sender hears 250; state changes replace `.env` by an
/// atomic rename. A delivered message's files are removed, so nothing of it stays. At start,
/// a `.msg` without its `.env` (a crash before the 250) is removed, as is a stray temp file.
public final class GatewayQueue: Sendable {
    public let directory: String

    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        // Also when it existed already: the queue holds addresses.
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory)
    }

    public enum Failure: Error { case io(String, Int32) }

    /// Every queued entry; removes the leftovers of interrupted writes.
    public func load() throws -> [GatewayQueueEntry] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        let envelopes = Set(names.filter { $0.hasSuffix(".env") }.map { String($0.dropLast(4)) })
        var entries: [GatewayQueueEntry] = []
        for name in names {
            let path = "\(directory)/\(name)"
            if name.hasSuffix(".msg") {
                let id = String(name.dropLast(4))
                if !envelopes.contains(id) && !names.contains("\(id).env.unreadable") { unlink(path) }
            } else if name.hasSuffix(".env") {
                let id = String(name.dropLast(4))
                guard FileManager.default.fileExists(atPath: messagePath(id)) else {
                    unlink(path)  // the message itself is gone: nothing left to send
                    continue
                }
                guard let data = FileManager.default.contents(atPath: path),
                      let entry = try? JSONDecoder().decode(GatewayQueueEntry.self, from: data), entry.id == id else {
                    // Unreadable state (another version's format?): set aside, not destroyed.
                    rename(path, path + ".unreadable")
                    continue
                }
                entries.append(entry)
            } else if name.hasSuffix(".tmp") {
                unlink(path)  // a temp file of an unfinished write
            }
        }
        return entries
    }

    /// Makes `message` and `entry` durable. Blocking: call it off the event loop.
    public func add(_ entry: GatewayQueueEntry, message: [UInt8]) throws {
        try write(message, to: messagePath(entry.id))
        try save(entry)
    }

    /// Replaces the entry's state (atomically).
    public func save(_ entry: GatewayQueueEntry) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = try encoder.encode(entry)
        let temporary = "\(directory)/\(entry.id).tmp"
        try write([UInt8](data), to: temporary)
        guard rename(temporary, envelopePath(entry.id)) == 0 else { throw Failure.io("rename", errno) }
        try syncDirectory()
    }

    /// The message's bytes; `Failure.io("open", ENOENT)` only when the file is really gone (any
    /// other error — no file descriptor left, an I/O error — is temporary).
    public func message(of entry: GatewayQueueEntry) throws -> [UInt8] {
        let fd = open(messagePath(entry.id), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure.io("open", errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress!, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure.io("read", errno)
            }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
        }
    }

    /// Forgets a message: the envelope first, so a crash in between leaves only an orphan `.msg`
    /// that the next start removes.
    public func remove(_ entry: GatewayQueueEntry) throws {
        unlink(envelopePath(entry.id))
        unlink(messagePath(entry.id))
        try syncDirectory()
    }

    private func messagePath(_ id: String) -> String { "\(directory)/\(id).msg" }
    private func envelopePath(_ id: String) -> String { "\(directory)/\(id).env" }

    private func write(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure.io("open", errno) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure.io("write", errno)
            }
            offset += written
        }
        guard fsync(fd) == 0 else { throw Failure.io("fsync", errno) }
    }

    private func syncDirectory() throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure.io("open", errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw Failure.io("fsync", errno) }
    }

    /// A random id: 20 letters and digits, nothing of the time or the message.
    public static func newID() -> String { RandomToken.make(length: 20) }
}
