import Foundation
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// A counter shared by every process that opens the data folder, bumped after each account
/// change (password, settings, deletion), so that the running server's `RecentAccounts` sees a
/// change made by `postern account …` — another process — before its next lookup.
///
/// It is 8 bytes in `accounts.generation`, mapped `MAP_SHARED`: both processes see the same
/// page-cache page, so reading it is one memory load (no system call, fine on an event loop).
/// Writers serialise with `flock`. A cache entry remembers the generation read *before* its
/// database read; it is valid only while the counter still holds that value.
public final class AccountGeneration: @unchecked Sendable {
    private let counter: UnsafeMutableRawPointer?
    private let fd: Int32

    /// Opens (creating if needed, mode 0600) `accounts.generation` in `directory`. If the file
    /// cannot be mapped, `current` changes on every read, so nothing is ever taken from a cache.
    public init(directory: URL) {
        let path = directory.appendingPathComponent("accounts.generation").path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        var mapped: UnsafeMutableRawPointer?
        if fd >= 0 {
            var info = stat()
            if fstat(fd, &info) == 0, info.st_size < 8 { _ = ftruncate(fd, 8) }
            let address = mmap(nil, 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            if let address, address != MAP_FAILED { mapped = address }
        }
        counter = mapped
    }

    deinit {
        if let counter { munmap(counter, 8) }
        if fd >= 0 { close(fd) }
    }

    /// Without a mapping every read is a new value: caches then never hit, and stay correct.
    private let fallback = NIOLockedValueBox<UInt64>(0)

    /// The counter now: one load from the shared page.
    public var current: UInt64 {
        guard let counter else { return fallback.withLockedValue { $0 &+= 1; return $0 } }
        return counter.load(as: UInt64.self)
    }

    /// Moves the counter on, after an account change has been committed.
    public func bump() {
        guard let counter else { return }
        flock(fd, LOCK_EX)
        counter.storeBytes(of: counter.load(as: UInt64.self) &+ 1, as: UInt64.self)
        flock(fd, LOCK_UN)
    }
}
