import Wire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SMTP

/// A STREAM session (SAM 3.1 SESSION CREATE): one I2P destination, alive as long as its control
/// connection. Streams to and from it each use a connection of their own.
public final class SAMSession: Sendable {
    public let id: String
    public let destination: I2PDestination
    private let control: SAMSocket
    private let bridge: SAMBridge
    private let group: any EventLoopGroup

    private init(id: String, destination: I2PDestination, control: SAMSocket, bridge: SAMBridge, group: any EventLoopGroup) {
        self.id = id
        self.destination = destination
        self.control = control
        self.bridge = bridge
        self.group = group
    }

    /// Options for a router on the public network: 3-hop tunnels, 2 of each; lease set encryption
    /// ECIES and ElGamal, so old and new peers can reach it.
    public static let publicNetworkOptions: [(String, String)] = [
        ("inbound.length", "3"), ("outbound.length", "3"), ("inbound.quantity", "2"), ("outbound.quantity", "2"),
        ("i2cp.leaseSetEncType", "4,0"),
    ]

    /// New private keys (DEST GENERATE, Ed25519 signatures): the binary blob i2pd's keys files hold.
    public static func generateKeys(_ bridge: SAMBridge, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> [UInt8] {
        let socket = try await SAMSocket.open(bridge, group: group)
        defer { socket.close() }
        let reply = try await socket.request(SAMCommand("DEST", "GENERATE", fields: [("SIGNATURE_TYPE", "7")]))
        guard reply.topic == "DEST", let text = reply["PRIV"], let keys = I2PKeys.decode(text) else {
            throw SAMError.refused("DEST GENERATE gave no private keys")
        }
        return keys
    }

    /// Creates the session for `keys` (binary private keys). Takes as long as the router needs to
    /// build tunnels (20 s for a new destination on i2pd 2.45).
    public static func create(_ bridge: SAMBridge, keys: [UInt8], options: [(String, String)],
                              group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> SAMSession {
        guard let destination = I2PDestination(base64: I2PKeys.encode(keys)) else { throw SAMError.refused("unusable private keys") }
        let id = "postern-" + String(destination.b32.prefix(8)) + "-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let control = try await SAMSocket.open(bridge, group: group)
        do {
            let reply = try await control.request(SAMCommand(
                "SESSION", "CREATE",
                fields: [("STYLE", "STREAM"), ("ID", id), ("DESTINATION", I2PKeys.encode(keys)), ("SIGNATURE_TYPE", "7")] + options))
            guard reply.topic == "SESSION" else { throw SAMError.refused("SESSION CREATE answered \(reply.topic) \(reply.verb)") }
        } catch {
            control.close()
            throw error
        }
        return SAMSession(id: id, destination: destination, control: control, bridge: bridge, group: group)
    }

    /// Completes when the router drops the session (its control connection closes).
    public var closeFuture: EventLoopFuture<Void> { control.closeFuture }
    public var isClosed: Bool { !control.channel.isActive }

    public func close() { control.close() }

    /// A new stream to `peer` (a `.b32.i2p` name or a base64 destination), as a socket ready to
    /// `detach` into a data pipeline.
    public func connect(to peer: String, timeout: TimeAmount = .seconds(60)) async throws -> SAMSocket {
        let socket = try await SAMSocket.open(bridge, group: group)
        do {
            let reply = try await socket.request(SAMCommand("STREAM", "CONNECT", fields: [("ID", id), ("DESTINATION", peer), ("SILENT", "false")]),
                                                 timeout: timeout)
            guard reply.topic == "STREAM" else { throw SAMError.refused("STREAM CONNECT answered \(reply.topic)") }
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    /// Waits for the next incoming stream: the socket and the peer's destination (the line the
    /// bridge sends first, SAM 3.1 STREAM ACCEPT; `FROM_PORT`/`TO_PORT` after it are ignored).
    /// `opened` learns of the waiting socket, so that a stop can close it.
    public func accept(opened: @Sendable (SAMSocket) -> Void = { _ in }) async throws -> (SAMSocket, I2PDestination) {
        let socket = try await SAMSocket.open(bridge, group: group)
        opened(socket)
        // A session that dies ends the wait for a stream too.
        control.closeFuture.whenComplete { _ in socket.close() }
        do {
            let reply = try await socket.request(SAMCommand("STREAM", "ACCEPT", fields: [("ID", id), ("SILENT", "false")]))
            guard reply.topic == "STREAM" else { throw SAMError.refused("STREAM ACCEPT answered \(reply.topic)") }
            let line = try await socket.readLine(timeout: nil)
            let first = line.split(separator: UInt8(ascii: " "), maxSplits: 1).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
            guard let peer = I2PDestination(base64: first) else { throw SAMError.malformed(.badPair) }
            return (socket, peer)
        } catch {
            socket.close()
            throw error
        }
    }

    /// Has the bridge forward every incoming stream to `host:port` (STREAM FORWARD), silently: the
    /// service never learns who connects. Lasts as long as the returned socket.
    public func forward(to host: String, port: Int) async throws -> SAMSocket {
        let socket = try await SAMSocket.open(bridge, group: group)
        do {
            try await socket.request(SAMCommand("STREAM", "FORWARD", fields: [("ID", id), ("PORT", String(port)), ("HOST", host), ("SILENT", "true")]))
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    /// NAMING LOOKUP: a name (`ME`, `x.b32.i2p`, an address-book name) to a base64 destination.
    public func lookup(_ name: String) async throws -> String {
        let reply = try await control.request(SAMCommand("NAMING", "LOOKUP", fields: [("NAME", name)]))
        guard let value = reply["VALUE"] else { throw SAMError.refused("NAMING LOOKUP gave no value") }
        return value
    }
}

/// Private keys as files (the binary blob i2pd's own keys files hold, mode 0600) and as SAM
/// passes them (I2P base64).
public enum I2PKeys {
    public static func encode(_ keys: [UInt8]) -> String {
        Data(keys).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "~")
    }

    public static func decode(_ text: String) -> [UInt8]? {
        Data(base64Encoded: text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "~", with: "/")).map { [UInt8]($0) }
    }

    public struct KeysFileError: Error, CustomStringConvertible {
        public var path: String
        public var problem: String
        public var description: String { "\(path): \(problem)" }
    }

    /// The keys in `path`; only when the file does not exist are new ones made by the bridge and
    /// written (0600 from the start, fsynced, installed without replacing a file another process
    /// wrote meanwhile). An unreadable or damaged file is an error, never a reason for new keys:
    /// new keys would be a new name that nobody knows.
    public static func loadOrGenerate(_ path: String, bridge: SAMBridge, group: any EventLoopGroup) async throws -> [UInt8] {
        if let keys = try read(path) { return keys }
        let keys = try await SAMSession.generateKeys(bridge, group: group)
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let temporary = "\(path).\(UInt64.random(in: 0...UInt64.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw KeysFileError(path: temporary, problem: "cannot be created (errno \(errno))") }
        let written = keys.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        defer { unlink(temporary) }
        guard written == keys.count, synced else { throw KeysFileError(path: temporary, problem: "cannot be written") }
        // link(2) fails if the name exists: a key another process made first wins, and is used.
        if link(temporary, path) != 0 {
            guard errno == EEXIST, let winner = try read(path) else { throw KeysFileError(path: path, problem: "cannot be installed (errno \(errno))") }
            return winner
        }
        let dirFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 { fsync(dirFD); close(dirFD) }
        return keys
    }

    /// The keys file's bytes; nil when it does not exist. Refuses a file others may read.
    static func read(_ path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw KeysFileError(path: path, problem: "cannot be read (errno \(errno)); refusing to make new keys in its place")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw KeysFileError(path: path, problem: "cannot be examined") }
        guard info.st_mode & 0o077 == 0 else { throw KeysFileError(path: path, problem: "is readable by others: chmod 600 it") }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        let count = bytes.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress!, $0.count) }
        // A destination (387 bytes and its certificate), an encryption key and a signing key.
        guard count == bytes.count, count >= 387 + 256 + 20, I2PDestination(base64: encode(bytes)) != nil else {
            throw KeysFileError(path: path, problem: "does not hold I2P private keys")
        }
        return bytes
    }
}

/// The I2P side of `StreamConnector`: a stream from `session()` to `peer`. The session is asked
/// for at each connection, so a session re-created after a router restart is used at once.
public struct SAMConnector: StreamConnector {
    public var session: @Sendable () -> SAMSession?
    public var peer: String

    public init(peer: String, session: @escaping @Sendable () -> SAMSession?) {
        self.peer = peer
        self.session = session
    }

    public func connect<Output: Sendable>(group: any EventLoopGroup,
                                          initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>) async throws -> Output {
        // At start and after a router restart the session takes 20 s or more: wait for it
        // rather than fail an attempt that would then wait for its next retry.
        var session = session()
        for _ in 0..<120 where session == nil {
            try await Task.sleep(nanoseconds: 500_000_000)
            session = self.session()
        }
        guard let session else { throw SAMError.unavailable }
        let socket = try await session.connect(to: peer)
        do { return try await socket.detach(initializer) } catch {
            socket.close()
            throw error
        }
    }
}
