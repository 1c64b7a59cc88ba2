import Crypto
import CryptoExtras
import Foundation
import Store

// The webmail's local Sent, Drafts and Trash, sealed at rest.
//
// The data folder never holds message text, subjects, addresses or file names in clear: every
// message file is AES-GCM sealed under a key derived from the mailbox password with scrypt, and
// that key lives only in this process's memory.
//
// On-disk layout (all directories 0700, all files 0600):
//
//   root/salt                 32 random bytes, made once per installation
//   root/<hex HMAC-SHA256(salt, lowercased account)>/
//       key                   "PSTK" 01 log2N r p saltLen salt | AES-GCM(checkKey, check text, aad: all before)
//       <32 hex id>           "PSTM" 01 | AES-GCM(dataKey, padded envelope, aad: "PSTM" 01 id)
//       key.next, <id>.next   only while a reseal is under way (see `reseal`)
//       .tmp-<hex>            a write in progress (sealed bytes only)
//
// Keys: master = scrypt(password, salt, N, r, p) → HKDF-SHA256 sub-keys for the check record and
// the messages. The scrypt salt and cost are stored in clear: they are not secret.
//
// One `SealedFolders` per account per process: the summary cache is not shared between instances,
// and `reseal` must not run while the account is open.

/// The scrypt cost used when an account's key record is made (or remade by `reseal`): the
/// mailbox password hash's parameters (standard: N = 2^15, r = 8, p = 1, 32 MiB, about 0.1 s).
public typealias ScryptCost = PasswordHash.Parameters

extension PasswordHash.Parameters {
    /// Bounded both ways: the record is read from disk, and a forged cost must not exhaust memory.
    var isAcceptable: Bool {
        (10...20).contains(log2N) && (1...32).contains(r) && (1...16).contains(p)
            && 128 * (1 << log2N) * r * p <= 1 << 30
    }
}

public enum LocalFolder: String, CaseIterable, Sendable {
    case sent, drafts, trash

    fileprivate var code: UInt8 {
        switch self {
        case .sent: 1
        case .drafts: 2
        case .trash: 3
        }
    }

    fileprivate init?(code: UInt8) {
        switch code {
        case 1: self = .sent
        case 2: self = .drafts
        case 3: self = .trash
        default: return nil
        }
    }
}

public struct SealedSummary: Sendable, Equatable {
    public var id: String
    public var folder: LocalFolder
    /// When the message was saved here (seconds since 1970).
    public var savedAt: Int64
    /// The message's length in bytes (before sealing and padding).
    public var size: Int
    public var subject: String
    public var from: String
    public var to: String
    /// The message's own Date, if it has one.
    public var date: Int64?

    public init(id: String, folder: LocalFolder, savedAt: Int64, size: Int, subject: String, from: String, to: String, date: Int64?) {
        self.id = id
        self.folder = folder
        self.savedAt = savedAt
        self.size = size
        self.subject = subject
        self.from = from
        self.to = to
        self.date = date
    }
}

public enum SealedFoldersError: Error, Equatable, CustomStringConvertible {
    case wrongPassword
    /// A file that fails authentication or does not parse; carries the file name only.
    case damaged(String)
    case notFound
    case io(String)

    public var description: String {
        switch self {
        case .wrongPassword: "wrong password for the sealed folders"
        case .damaged(let name): "sealed file \(name) is damaged"
        case .notFound: "no such message"
        case .io(let what): "sealed folders storage error: \(what)"
        }
    }
}

public actor SealedFolders {
    /// The header fields kept with a message so listing does not need to parse it.
    public typealias Fields = (subject: String, from: String, to: String, date: Int64?)

    private let directory: String
    private let dataKey: SymmetricKey
    /// Decrypted summaries, memory only; nil until the first `list`.
    private var summaries: [String: SealedSummary]?
    private var damaged: Set<String> = []

    private init(directory: String, dataKey: SymmetricKey) {
        self.directory = directory
        self.dataKey = dataKey
    }

    /// Names of message files that failed to open (bad tag, truncated, unreadable), sorted.
    public var damagedFiles: [String] { damaged.sorted() }

    /// Opens (creating if absent) the account's sealed store under `root`.
    ///
    /// `parameters` is used only when the account is new; an existing account keeps the cost in
    /// its key record. The password is checked against the key record's sealed check value.
    public static func open(root: URL, account: String, password: String,
                            parameters: ScryptCost = .standard) async throws -> SealedFolders {
        guard parameters.isAcceptable else { throw SealedFoldersError.io("scrypt cost out of range") }
        let rootPath = root.standardizedFileURL.path
        // scrypt is deliberately slow and memory-hard, and the directory work blocks: run both on
        // a thread of their own rather than on the cooperative pool (one thread per core) or an
        // event loop.
        let opened = try await SealedDisk.offPool { () throws -> (String, SymmetricKey) in
            try SealedDisk.ensureDirectory(rootPath, createParents: true)
            guard let installSalt = try SealedDisk.installSalt(rootPath, create: true) else {
                throw SealedFoldersError.damaged("salt")
            }
            let dir = rootPath + "/" + SealedDisk.accountDirectoryName(installSalt: installSalt, account: account)
            try SealedDisk.ensureDirectory(dir, createParents: false)
            SealedDisk.removeStaleTemporaries(dir)
            let keys = try SealedDisk.openOrCreateKey(dir, password: password, parameters: parameters)
            try SealedDisk.recoverReseal(dir)
            return (dir, keys.data)
        }
        return SealedFolders(directory: opened.0, dataKey: opened.1)
    }

    /// Seals and stores a new message; returns its id.
    public func save(_ message: [UInt8], in folder: LocalFolder, summary: Fields, now: Int64) throws -> String {
        var id = SealedDisk.randomHex(16)
        while SealedDisk.exists(directory + "/" + id) { id = SealedDisk.randomHex(16) }
        let envelope = SealedEnvelope(folder: folder, savedAt: now, subject: summary.subject, from: summary.from,
                                      to: summary.to, date: summary.date, message: message)
        try store(envelope, id: id)
        summaries?[id] = envelope.summary(id: id)
        return id
    }

    /// Replaces a message's content (an edited draft), keeping its id and folder.
    public func replace(id: String, with message: [UInt8], summary: Fields, now: Int64) throws {
        let old = try load(id)
        let envelope = SealedEnvelope(folder: old.folder, savedAt: now, subject: summary.subject, from: summary.from,
                                      to: summary.to, date: summary.date, message: message)
        try store(envelope, id: id)
        summaries?[id] = envelope.summary(id: id)
    }

    /// The folder's messages, newest first. Damaged files are skipped and named in `damagedFiles`.
    public func list(_ folder: LocalFolder) throws -> [SealedSummary] {
        let all = try loadedSummaries()
        return all.values.filter { $0.folder == folder }.sorted {
            $0.savedAt != $1.savedAt ? $0.savedAt > $1.savedAt : $0.id < $1.id
        }
    }

    /// One message's summary, from the cache when it is loaded.
    public func summary(_ id: String) throws -> SealedSummary {
        if let cached = summaries?[id] { return cached }
        let summary = try load(id).summary(id: id)
        summaries?[id] = summary
        return summary
    }

    public func read(_ id: String) throws -> [UInt8] {
        try load(id).message
    }

    public func move(_ id: String, to folder: LocalFolder) throws {
        var envelope = try load(id)
        guard envelope.folder != folder else { return }
        envelope.folder = folder
        try store(envelope, id: id)
        summaries?[id] = envelope.summary(id: id)
    }

    /// Deletes for good: the file goes, and with it the only copy of the summary. Damaged files
    /// can be deleted too.
    public func delete(_ id: String) throws {
        guard SealedDisk.isMessageID(id) else { throw SealedFoldersError.notFound }
        if unlink(directory + "/" + id) != 0 {
            if errno == ENOENT { throw SealedFoldersError.notFound }
            throw SealedDisk.ioError("unlink")
        }
        try SealedDisk.syncDirectory(directory)
        summaries?[id] = nil
        damaged.remove(id)
    }

    /// Re-encrypts everything under a key from `newPassword` (the mailbox password changed).
    ///
    /// Crash-safe: `key.next` is written first, then a sealed copy `<id>.next` of every message;
    /// renaming `key.next` over `key` is the commit. After a crash `open` (or a new `reseal`)
    /// finishes the job: `key.next` present means not committed, so the copies are dropped; no
    /// `key.next` but copies present means committed, so the copies are renamed into place. Old
    /// files are replaced only after the new key is durable, so no state loses a message.
    ///
    /// Returns the ids of files that were already damaged and so were left as they were. Running
    /// it again after the commit with the same passwords just completes the roll-forward.
    @discardableResult
    public static func reseal(root: URL, account: String, oldPassword: String, newPassword: String,
                              parameters: ScryptCost? = nil) async throws -> [String] {
        try await reseal(root: root, account: account, oldPassword: oldPassword, newPassword: newPassword,
                         parameters: parameters, stoppingAt: nil)
    }

    /// Where a test can cut a reseal short, as a crash would.
    enum ResealStop: Sendable { case beforeCommit, afterCommit }

    static func reseal(root: URL, account: String, oldPassword: String, newPassword: String,
                       parameters: ScryptCost?, stoppingAt stop: ResealStop?) async throws -> [String] {
        if let parameters, !parameters.isAcceptable { throw SealedFoldersError.io("scrypt cost out of range") }
        let rootPath = root.standardizedFileURL.path
        return try await SealedDisk.offPool { () throws -> [String] in
            try SealedDisk.resealNow(rootPath: rootPath, account: account, oldPassword: oldPassword,
                                     newPassword: newPassword, parameters: parameters, stop: stop)
        }
    }

    // MARK: private

    private func loadedSummaries() throws -> [String: SealedSummary] {
        if let summaries { return summaries }
        var loaded: [String: SealedSummary] = [:]
        for id in try SealedDisk.messageIDs(directory) {
            // One bad file must not hide the others: `load` records it in `damaged`.
            if let envelope = try? load(id) { loaded[id] = envelope.summary(id: id) }
        }
        summaries = loaded
        return loaded
    }

    private func load(_ id: String) throws -> SealedEnvelope {
        guard SealedDisk.isMessageID(id) else { throw SealedFoldersError.notFound }
        let file: [UInt8]?
        do {
            file = try SealedDisk.readFile(directory + "/" + id)
        } catch {
            damaged.insert(id)
            throw error
        }
        guard let file else { throw SealedFoldersError.notFound }
        guard let plain = SealedDisk.openMessage(file, id: id, key: dataKey),
              let envelope = SealedEnvelope(decoding: plain) else {
            damaged.insert(id)
            throw SealedFoldersError.damaged(id)
        }
        damaged.remove(id)
        return envelope
    }

    private func store(_ envelope: SealedEnvelope, id: String) throws {
        let sealed = try SealedDisk.sealMessage(envelope.encoded(), id: id, key: dataKey)
        try SealedDisk.writeAtomically(sealed, directory: directory, name: id)
    }
}

// MARK: - The envelope (the plaintext inside a message file)

/// Binary, big-endian: version, folder, savedAt, date flag, date, then subject, from, to and the
/// message, each as a u32 length and bytes; then zero padding.
fileprivate struct SealedEnvelope {
    var folder: LocalFolder
    var savedAt: Int64
    var subject: String
    var from: String
    var to: String
    var date: Int64?
    var message: [UInt8]

    static let version: UInt8 = 1

    init(folder: LocalFolder, savedAt: Int64, subject: String, from: String, to: String, date: Int64?, message: [UInt8]) {
        self.folder = folder
        self.savedAt = savedAt
        self.subject = subject
        self.from = from
        self.to = to
        self.date = date
        self.message = message
    }

    func summary(id: String) -> SealedSummary {
        SealedSummary(id: id, folder: folder, savedAt: savedAt, size: message.count,
                      subject: subject, from: from, to: to, date: date)
    }

    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + subject.utf8.count + from.utf8.count + to.utf8.count + message.count)
        out.append(Self.version)
        out.append(folder.code)
        Self.append(UInt64(bitPattern: savedAt), to: &out)
        out.append(date == nil ? 0 : 1)
        Self.append(UInt64(bitPattern: date ?? 0), to: &out)
        for field in [Array(subject.utf8), Array(from.utf8), Array(to.utf8), message] {
            Self.append(UInt32(field.count), to: &out)
            out.append(contentsOf: field)
        }
        out.append(contentsOf: repeatElement(0, count: Self.paddedLength(out.count) - out.count))
        return out
    }

    /// Padding hides a message's exact size: 4 KiB steps up to 64 KiB, then steps of 1/16 of the
    /// next power of two (at most about 6% overhead), so a file's size tells only a size class.
    static func paddedLength(_ length: Int) -> Int {
        var power = 1
        while power < length { power <<= 1 }
        let quantum = max(4096, power / 16)
        return max(quantum, (length + quantum - 1) / quantum * quantum)
    }

    init?(decoding bytes: [UInt8]) {
        var at = 0
        func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard count >= 0, bytes.count - at >= count else { return nil }
            defer { at += count }
            return bytes[at..<at + count]
        }
        func integer(_ width: Int) -> UInt64? {
            guard let slice = take(width) else { return nil }
            return slice.reduce(0) { $0 << 8 | UInt64($1) }
        }
        func field() -> [UInt8]? {
            guard let length = integer(4) else { return nil }
            return take(Int(length)).map(Array.init)
        }
        func text() -> String? {
            guard let raw = field() else { return nil }
            return String(bytes: raw, encoding: .utf8)
        }
        guard let version = take(1)?.first, version == Self.version,
              let code = take(1)?.first, let folder = LocalFolder(code: code),
              let savedAt = integer(8), let hasDate = take(1)?.first, hasDate <= 1, let date = integer(8),
              let subject = text(), let from = text(), let to = text(), let message = field()
        else { return nil }
        self.init(folder: folder, savedAt: Int64(bitPattern: savedAt), subject: subject, from: from, to: to,
                  date: hasDate == 1 ? Int64(bitPattern: date) : nil, message: message)
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
    }
}

// MARK: - Keys and sealing

fileprivate struct SealedKeys: Sendable {
    var check: SymmetricKey
    var data: SymmetricKey
}

/// The per-account key record: scrypt salt and cost in clear, then a sealed check value that
/// proves a password right without touching any message.
fileprivate struct SealedKeyRecord {
    static let magic: [UInt8] = Array("PSTK".utf8) + [1]
    static let checkText: [UInt8] = Array("postern sealed folders check v1".utf8)

    var cost: ScryptCost
    var salt: [UInt8]
    var sealedCheck: [UInt8]

    var header: [UInt8] {
        Self.magic + [UInt8(cost.log2N), UInt8(cost.r), UInt8(cost.p), UInt8(salt.count)] + salt
    }

    var encoded: [UInt8] { header + sealedCheck }

    static func make(password: String, cost: ScryptCost) throws -> (SealedKeyRecord, SealedKeys) {
        let salt = SealedDisk.randomBytes(16)
        let keys = try derive(password: password, salt: salt, cost: cost)
        var record = SealedKeyRecord(cost: cost, salt: salt, sealedCheck: [])
        let box = try AES.GCM.seal(checkText, using: keys.check, authenticating: record.header)
        guard let combined = box.combined else { throw SealedFoldersError.io("seal") }
        record.sealedCheck = Array(combined)
        return (record, keys)
    }

    init(cost: ScryptCost, salt: [UInt8], sealedCheck: [UInt8]) {
        self.cost = cost
        self.salt = salt
        self.sealedCheck = sealedCheck
    }

    init?(parsing bytes: [UInt8]) {
        let fixed = Self.magic.count + 4
        guard bytes.count > fixed, Array(bytes[0..<Self.magic.count]) == Self.magic else { return nil }
        let cost = ScryptCost(log2N: Int(bytes[5]), r: Int(bytes[6]), p: Int(bytes[7]))
        let saltLength = Int(bytes[8])
        guard cost.isAcceptable, (16...64).contains(saltLength),
              bytes.count == fixed + saltLength + 12 + Self.checkText.count + 16 else { return nil }
        self.init(cost: cost, salt: Array(bytes[fixed..<fixed + saltLength]),
                  sealedCheck: Array(bytes[(fixed + saltLength)...]))
    }

    /// The keys if `password` is right, nil if not.
    func unlock(password: String) throws -> SealedKeys? {
        let keys = try Self.derive(password: password, salt: salt, cost: cost)
        guard let box = try? AES.GCM.SealedBox(combined: sealedCheck),
              let text = try? AES.GCM.open(box, using: keys.check, authenticating: header),
              Array(text) == Self.checkText else { return nil }
        return keys
    }

    static func derive(password: String, salt: [UInt8], cost: ScryptCost) throws -> SealedKeys {
        let master: SymmetricKey
        do {
            master = try KDF.Scrypt.deriveKey(from: Array(password.utf8), salt: salt, outputByteCount: 32,
                                              rounds: 1 << cost.log2N, blockSize: cost.r, parallelism: cost.p)
        } catch {
            throw SealedFoldersError.io("scrypt failed")
        }
        // Separate sub-keys so the check record never shares a key with message files.
        func sub(_ label: String) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: master, info: Array(label.utf8), outputByteCount: 32)
        }
        return SealedKeys(check: sub("postern sealed folders check v1"), data: sub("postern sealed folders data v1"))
    }
}

// MARK: - Disk

fileprivate enum SealedDisk {
    static let messageMagic: [UInt8] = Array("PSTM".utf8) + [1]
    static let keyName = "key"
    static let nextKeyName = "key.next"
    static let nextSuffix = ".next"
    static let temporaryPrefix = ".tmp-"

    /// Runs blocking work on a fresh thread and awaits it.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let thread = Thread {
                continuation.resume(with: Result { try body() })
            }
            thread.start()
        }
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func randomHex(_ byteCount: Int) -> String { hex(randomBytes(byteCount)) }

    static func isMessageID(_ name: String) -> Bool {
        name.utf8.count == 32 && name.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Keyed with the installation's salt so the directory name does not reveal the account.
    static func accountDirectoryName(installSalt: [UInt8], account: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(account.lowercased().utf8),
                                                  using: SymmetricKey(data: installSalt))
        return hex(mac)
    }

    static func ioError(_ operation: String, _ code: Int32 = errno) -> SealedFoldersError {
        .io("\(operation): \(String(cString: strerror(code)))")
    }

    static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    /// Makes the directory 0700, or tightens an existing one of ours to 0700: the contents are
    /// sealed, but names, sizes and times still say something. Refuses another user's directory.
    static func ensureDirectory(_ path: String, createParents: Bool) throws {
        if createParents {
            let parent = (path as NSString).deletingLastPathComponent
            if !parent.isEmpty, !exists(parent) {
                do {
                    try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true,
                                                            attributes: [.posixPermissions: 0o700])
                } catch {
                    throw SealedFoldersError.io("cannot create the data folder's parent")
                }
            }
        }
        if mkdir(path, 0o700) != 0, errno != EEXIST { throw ioError("mkdir") }
        var status = stat()
        // The root may be a symbolic link the user made; account directories never are.
        let result = createParents ? stat(path, &status) : lstat(path, &status)
        guard result == 0 else { throw ioError("stat") }
        guard status.st_mode & S_IFMT == S_IFDIR else { throw SealedFoldersError.io("not a directory") }
        guard status.st_uid == geteuid() else { throw SealedFoldersError.io("data folder belongs to another user") }
        if status.st_mode & 0o077 != 0, chmod(path, 0o700) != 0 { throw ioError("chmod") }
    }

    /// Reads the installation salt, making it first if asked and absent. Made with link(2) so two
    /// racing processes agree on one salt and a crash never leaves a short one.
    static func installSalt(_ root: String, create: Bool) throws -> [UInt8]? {
        let path = root + "/salt"
        if let salt = try readFile(path) {
            guard salt.count == 32 else { throw SealedFoldersError.damaged("salt") }
            return salt
        }
        guard create else { return nil }
        _ = try writeAtomically(randomBytes(32), directory: root, name: "salt", replace: false)
        guard let salt = try readFile(path), salt.count == 32 else { throw SealedFoldersError.damaged("salt") }
        return salt
    }

    static func openOrCreateKey(_ dir: String, password: String, parameters: ScryptCost) throws -> SealedKeys {
        if let bytes = try readFile(dir + "/" + keyName) {
            guard let record = SealedKeyRecord(parsing: bytes) else { throw SealedFoldersError.damaged(keyName) }
            guard let keys = try record.unlock(password: password) else { throw SealedFoldersError.wrongPassword }
            return keys
        }
        // Mail without a key record: making a new key would orphan it; say so instead.
        guard try messageIDs(dir).isEmpty, !exists(dir + "/" + nextKeyName) else {
            throw SealedFoldersError.damaged(keyName)
        }
        let (record, keys) = try SealedKeyRecord.make(password: password, cost: parameters)
        if try writeAtomically(record.encoded, directory: dir, name: keyName, replace: false) {
            return keys
        }
        // Another open made the account first: check against its record.
        guard let bytes = try readFile(dir + "/" + keyName), let winner = SealedKeyRecord(parsing: bytes) else {
            throw SealedFoldersError.damaged(keyName)
        }
        guard let winnerKeys = try winner.unlock(password: password) else { throw SealedFoldersError.wrongPassword }
        return winnerKeys
    }

    static func names(_ dir: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: dir)
        } catch {
            throw SealedFoldersError.io("cannot list the account folder")
        }
    }

    static func messageIDs(_ dir: String) throws -> [String] {
        try names(dir).filter(isMessageID)
    }

    /// Temporaries are sealed bytes, so leftovers leak nothing; still, clear out old ones. Young
    /// ones may belong to a write in progress.
    static func removeStaleTemporaries(_ dir: String) {
        guard let all = try? names(dir) else { return }
        let cutoff = Date().addingTimeInterval(-15 * 60)
        for name in all where name.hasPrefix(temporaryPrefix) {
            let path = dir + "/" + name
            if let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
               modified < cutoff {
                unlink(path)
            }
        }
    }

    /// Finishes a reseal that stopped part way (see `SealedFolders.reseal`).
    static func recoverReseal(_ dir: String) throws {
        let all = try names(dir)
        let copies = all.filter { $0.hasSuffix(nextSuffix) && isMessageID(String($0.dropLast(nextSuffix.count))) }
        if all.contains(nextKeyName) {
            // Not committed: the old files and key are intact; drop the new copies.
            for copy in copies where unlink(dir + "/" + copy) != 0 && errno != ENOENT { throw ioError("unlink") }
            if unlink(dir + "/" + nextKeyName) != 0 && errno != ENOENT { throw ioError("unlink") }
            try syncDirectory(dir)
        } else if !copies.isEmpty {
            // Committed: the key is the new one; put the new copies in place.
            for copy in copies where rename(dir + "/" + copy, dir + "/" + String(copy.dropLast(nextSuffix.count))) != 0 {
                throw ioError("rename")
            }
            try syncDirectory(dir)
        }
    }

    static func resealNow(rootPath: String, account: String, oldPassword: String, newPassword: String,
                          parameters: ScryptCost?, stop: SealedFolders.ResealStop?) throws -> [String] {
        var rootStatus = stat()
        guard stat(rootPath, &rootStatus) == 0, let salt = try installSalt(rootPath, create: false) else {
            throw SealedFoldersError.notFound
        }
        let dir = rootPath + "/" + accountDirectoryName(installSalt: salt, account: account)
        guard let bytes = try readFile(dir + "/" + keyName) else { throw SealedFoldersError.notFound }
        guard let record = SealedKeyRecord(parsing: bytes) else { throw SealedFoldersError.damaged(keyName) }
        guard let oldKeys = try record.unlock(password: oldPassword) else {
            // A reseal that crashed after its commit: the key is already the new one.
            guard try record.unlock(password: newPassword) != nil else { throw SealedFoldersError.wrongPassword }
            try recoverReseal(dir)
            return []
        }
        try recoverReseal(dir)
        removeStaleTemporaries(dir)

        let (newRecord, newKeys) = try SealedKeyRecord.make(password: newPassword, cost: parameters ?? record.cost)
        // The new key must be durable before any copy exists: its presence is what marks the
        // copies as uncommitted.
        try writeAtomically(newRecord.encoded, directory: dir, name: nextKeyName)
        var skipped: [String] = []
        for id in try messageIDs(dir).sorted() {
            guard let file = try readFile(dir + "/" + id) else { continue }
            guard let plain = openMessage(file, id: id, key: oldKeys.data) else {
                skipped.append(id)
                continue
            }
            try writeAtomically(sealMessage(plain, id: id, key: newKeys.data), directory: dir,
                                name: id + nextSuffix, syncDirectory: false)
        }
        try syncDirectory(dir)
        if stop == .beforeCommit { return skipped }
        guard rename(dir + "/" + nextKeyName, dir + "/" + keyName) == 0 else { throw ioError("rename") }
        try syncDirectory(dir)
        if stop == .afterCommit { return skipped }
        try recoverReseal(dir)
        return skipped
    }

    static func aad(id: String) -> [UInt8] { messageMagic + Array(id.utf8) }

    static func sealMessage(_ plain: [UInt8], id: String, key: SymmetricKey) throws -> [UInt8] {
        // The id is authenticated, so a file renamed or swapped with another fails to open.
        let box = try AES.GCM.seal(plain, using: key, authenticating: aad(id: id))
        guard let combined = box.combined else { throw SealedFoldersError.io("seal") }
        return messageMagic + Array(combined)
    }

    static func openMessage(_ file: [UInt8], id: String, key: SymmetricKey) -> [UInt8]? {
        guard file.count >= messageMagic.count + 12 + 16, Array(file.prefix(messageMagic.count)) == messageMagic,
              let box = try? AES.GCM.SealedBox(combined: file[messageMagic.count...]),
              let plain = try? AES.GCM.open(box, using: key, authenticating: aad(id: id))
        else { return nil }
        return Array(plain)
    }

    /// The file's bytes, or nil if there is no such file.
    static func readFile(_ path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw ioError("open")
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw ioError("fstat") }
        guard status.st_mode & S_IFMT == S_IFREG else { throw SealedFoldersError.io("not a regular file") }
        var out = [UInt8](repeating: 0, count: Int(status.st_size))
        var done = 0
        while done < out.count {
            let count = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ioError("read")
            }
            if count == 0 { break }
            done += count
        }
        return Array(out[0..<done])
    }

    /// Temp file (0600) in the same directory, fsync, then rename (or link, when an existing file
    /// must win), then fsync the directory: a crash leaves the old file or the new, never half.
    /// Returns false only when `replace` is false and the name was taken.
    @discardableResult
    static func writeAtomically(_ bytes: [UInt8], directory: String, name: String,
                                replace: Bool = true, syncDirectory sync: Bool = true) throws -> Bool {
        let temporary = directory + "/" + temporaryPrefix + randomHex(8)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ioError("create") }
        var keepTemporary = false
        defer { if !keepTemporary { unlink(temporary) } }
        let failure: Int32? = bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let count = write(fd, buffer.baseAddress! + done, buffer.count - done)
                if count < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                done += count
            }
            return fchmod(fd, 0o600) == 0 && fsync(fd) == 0 ? nil : errno
        }
        close(fd)
        if let failure { throw ioError("write", failure) }
        let target = directory + "/" + name
        if replace {
            guard rename(temporary, target) == 0 else { throw ioError("rename") }
            keepTemporary = true  // it is the target now
        } else if link(temporary, target) != 0 {
            if errno == EEXIST { return false }
            throw ioError("link")
        }
        if sync { try syncDirectory(directory) }
        return true
    }

    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("open directory") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw ioError("fsync directory") }
    }
}
