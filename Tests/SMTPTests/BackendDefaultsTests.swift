import MailCore
import NIOCore
import NIOPosix
import Testing
@testable import SMTP

/// The event-loop variants a backend gets for free run its async methods in a task and complete
/// on the loop they were given.
@Suite struct BackendDefaultsTests {
    struct AsyncOnly: SubmissionBackend {
        func authenticate(username: String, password: String) async -> SMTPAuthOutcome {
            username == "alice" ? .success(EmailAddress("alice@mail.i2p")!) : .failure
        }
        func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress]) async -> RecipientVerdict {
            earlier.isEmpty ? .accepted : .rejected(SMTPReply(452, "4.5.3", "one only"))
        }
        func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer) async -> DeliveryOutcome {
            message.readableBytes > 0 ? .accepted : .rejected(SMTPReply(554, "5.6.0", "empty"))
        }
    }

    @Test func defaultsRunTheAsyncMethods() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let backend = AsyncOnly()
        let alice = EmailAddress("alice@mail.i2p")!
        let login = backend.authenticate(username: "alice", password: "x", on: loop)
        #expect(try await login.get() == .success(alice))
        #expect(try await backend.checkRecipient(alice, sender: alice, declaredSize: nil, on: loop).get() == .accepted)
        #expect(try await backend.checkRecipient(alice, sender: alice, declaredSize: nil, earlier: [alice], on: loop).get()
                == .rejected(SMTPReply(452, "4.5.3", "one only")))
        let envelope = SubmissionEnvelope(sender: alice, recipients: [alice])
        #expect(try await backend.deliver(envelope, message: ByteBuffer(string: "x"), on: loop).get() == .accepted)
        try await group.shutdownGracefully()
    }
}
