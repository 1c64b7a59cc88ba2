import Foundation
import Logging
import MailCore
import NIOCore
import NIOPosix
import POP3
import SMTP
import Store
import Testing
@testable import PosternApp

/// The POP3 backend over real stores: the exclusive lock (POP-2), listings, and that a RETR can
/// only ever read a message of the locked account.
@Suite struct MaildropServiceTests {
    static var loop: any EventLoop { MultiThreadedEventLoopGroup.singleton.any() }

    static func deliver(_ text: String, to name: String, _ f: SubmissionServiceTests.Fixture) async throws {
        let envelope = SubmissionEnvelope(sender: SubmissionServiceTests.alice, recipients: [EmailAddress("\(name)@mail.i2p")!])
        let outcome = try await f.service.deliver(envelope, message: ByteBuffer(string: text), on: loop).get()
        #expect(outcome == .accepted)
    }

    @Test func lockListRetrieveAndDelete() async throws {
        try await SubmissionServiceTests.withService { f in
            _ = try f.accounts.create(name: "alice", password: SubmissionServiceTests.password)
            _ = try f.accounts.create(name: "bob", password: SubmissionServiceTests.password)
            try await Self.deliver("Subject: one\r\n\r\nfirst body\r\n", to: "bob", f)
            try await Self.deliver("Subject: two\r\n\r\nsecond body\r\n", to: "bob", f)
            let maildrop = MaildropService(stores: f.stores, logger: Logger(label: "test"))

            #expect(try await maildrop.authenticate(username: "bob", password: SubmissionServiceTests.password, on: Self.loop).get() == .success(mailbox: "bob"))
            #expect(try await maildrop.lockMaildrop("bob", on: Self.loop).get())
            #expect(try await maildrop.lockMaildrop("bob", on: Self.loop).get() == false)  // POP-2
            let listing = try await maildrop.listMessages(in: "bob", on: Self.loop).get()
            #expect(listing.count == 2)
            for info in listing {
                let bytes = try await maildrop.messageBytes(in: "bob", uid: info.uid, on: Self.loop).get()
                #expect(bytes.readableBytes == info.size)
            }
            let first = String(buffer: try await maildrop.messageBytes(in: "bob", uid: listing[0].uid, on: Self.loop).get())
            #expect(first.hasSuffix("\r\n\r\nfirst body\r\n"))

            try await maildrop.deleteMessages(in: "bob", uids: [listing[0].uid])
            await maildrop.unlockMaildrop("bob")
            #expect(try await maildrop.lockMaildrop("bob", on: Self.loop).get())
            #expect(try await maildrop.listMessages(in: "bob", on: Self.loop).get().map(\.uid) == [listing[1].uid])
            await maildrop.unlockMaildrop("bob")
        }
    }

    @Test func aMessageOfAnotherAccountCannotBeRetrieved() async throws {
        try await SubmissionServiceTests.withService { f in
            _ = try f.accounts.create(name: "alice", password: SubmissionServiceTests.password)
            _ = try f.accounts.create(name: "bob", password: SubmissionServiceTests.password)
            _ = try f.accounts.create(name: "carol", password: SubmissionServiceTests.password)
            try await Self.deliver("Subject: for bob\r\n\r\nsecret\r\n", to: "bob", f)
            let maildrop = MaildropService(stores: f.stores, logger: Logger(label: "test"))
            #expect(try await maildrop.lockMaildrop("bob", on: Self.loop).get())
            let bobs = try await maildrop.listMessages(in: "bob", on: Self.loop).get()
            #expect(try await maildrop.lockMaildrop("carol", on: Self.loop).get())
            #expect(try await maildrop.listMessages(in: "carol", on: Self.loop).get().isEmpty)
            // carol names bob's uid, and a path: neither is in her listing, and the index refuses both
            for uid in [bobs[0].uid, "../postern.sqlite", "threading.key"] {
                await #expect(throws: (any Error).self) {
                    try await maildrop.messageBytes(in: "carol", uid: uid, on: Self.loop).get()
                }
            }
            // bob's own listing still reads it
            #expect(try await maildrop.messageBytes(in: "bob", uid: bobs[0].uid, on: Self.loop).get().readableBytes == bobs[0].size)
        }
    }
}
