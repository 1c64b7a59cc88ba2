import Foundation
import Logging
import MailCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SMTP
import Testing
@testable import Gateway

/// MX delivery (GW-1, RFC 5321 5): routes from a fixed table, remote MXs played by Postern's own
/// SMTP server in the exchange role, with and without STARTTLS.
@Suite(.serialized) struct MXDeliveryTests {
    struct Routes: MailRouting {
        var routes: [String: MailRoute] = [:]
        var addresses: [String: [String]] = [:]
        var failing = false
        struct DNSDown: Error {}

        func route(to domain: String) async throws -> MailRoute {
            if failing { throw DNSDown() }
            return routes[domain] ?? .noSuchDomain
        }

        func addresses(of host: String) async throws -> [String] { addresses[host] ?? [] }
    }

    /// A remote MX that takes every message and notes whether it came over TLS.
    final class Remote: SubmissionBackend {
        let envelopes = NIOLockedValueBox<[SubmissionEnvelope]>([])
        func authenticate(username: String, password: String) async -> SMTPAuthOutcome { .failure }
        func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress]) async -> RecipientVerdict {
            recipient.localPart == "nobody" ? .rejected(SMTPReply(550, "5.1.1", "no such user at remote.test")) : .accepted
        }
        func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer) async -> DeliveryOutcome {
            envelopes.withLockedValue { $0.append(envelope) }
            return .accepted
        }
    }

    static let message = ByteBuffer(string: "From: a@i2pmail.org\r\nTo: b@remote.test\r\nSubject: s\r\n\r\nbody\r\n")

    func delivery(_ routes: Routes, port: Int = 25, tls: TLSPolicy = .none) -> MXDelivery {
        MXDelivery(routing: routes, port: port, helo: "mx.i2pmail.org", tls: tls, connectTimeout: .seconds(2),
                   replyTimeout: .seconds(5), logger: Logger(label: "test"))
    }

    @Test func dnsTellsWhatFailsForGoodAndWhatOnlyForNow() async {
        var routes = Routes(routes: ["null.test": .acceptsNoMail])
        let recipients = ["a@x.test", "b@x.test"]
        // RFC 7505: a null MX fails at once with 5.1.10; a domain that does not exist with 5.1.2.
        #expect(await delivery(routes).deliver(from: "s@i2pmail.org", to: recipients, domain: "null.test", message: Self.message)
                == [.permanent(code: nil, status: "5.1.10"), .permanent(code: nil, status: "5.1.10")])
        #expect(await delivery(routes).deliver(from: "s@i2pmail.org", to: recipients, domain: "none.test", message: Self.message)
                == [.permanent(code: nil, status: "5.1.2"), .permanent(code: nil, status: "5.1.2")])
        // A DNS failure is never a bounce (issue 6): 4.4.3, retried.
        routes.failing = true
        #expect(await delivery(routes).deliver(from: "s@i2pmail.org", to: recipients, domain: "null.test", message: Self.message)
                == [.temporary(code: nil, status: "4.4.3"), .temporary(code: nil, status: "4.4.3")])
    }

    @Test func anUnreachableMXIsSkippedForTheNextOne() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let remote = Remote()
        let server = SubmissionServer(configuration: .init(host: "127.0.0.1", port: 0, session: .init(domain: "mx.remote.test", role: .exchange)),
                                      backend: remote, group: group, logger: Logger(label: "test"))
        let port = try await server.start().port!
        // 127.0.0.31 has nothing on that port: refused; the second MX takes the mail.
        let routes = Routes(routes: ["remote.test": .hosts(["mx1.remote.test", "mx2.remote.test"])],
                            addresses: ["mx1.remote.test": ["127.0.0.31"], "mx2.remote.test": ["127.0.0.1"]])
        let outcomes = await delivery(routes, port: port).deliver(from: "s@i2pmail.org", to: ["b@remote.test", "nobody@remote.test"],
                                                                  domain: "remote.test", message: Self.message)
        #expect(outcomes == [.delivered, .permanent(code: 550, status: "5.1.1")])
        #expect(remote.envelopes.withLockedValue { $0.map(\.overTLS) } == [false])
        // No address answers at all: temporary, "no answer from host".
        let dead = Routes(routes: ["remote.test": .hosts(["mx1.remote.test"])], addresses: ["mx1.remote.test": ["127.0.0.31"]])
        #expect(await delivery(dead, port: port).deliver(from: "s@i2pmail.org", to: ["b@remote.test"], domain: "remote.test",
                                                         message: Self.message) == [.temporary(code: nil, status: "4.4.1")])
        await server.shutdown(gracePeriod: .zero)
        try await group.shutdownGracefully()
    }

    @Test func startTLSIsUsedWhenOfferedAndRequiredWhenConfigured() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mx-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=mx.remote.test",
                             "-keyout", "\(folder)/key.pem", "-out", "\(folder)/cert.pem"]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let withTLS = Remote()
        let tlsServer = SubmissionServer(
            configuration: .init(host: "127.0.0.1", port: 0, session: .init(domain: "mx.remote.test", role: .exchange, offersSTARTTLS: true),
                                 startTLS: try GatewayTLS.serverUpgrade(certificateFile: "\(folder)/cert.pem", keyFile: "\(folder)/key.pem")),
            backend: withTLS, group: group, logger: Logger(label: "test"))
        let tlsPort = try await tlsServer.start().port!
        let plain = Remote()
        let plainServer = SubmissionServer(configuration: .init(host: "127.0.0.1", port: 0, session: .init(domain: "mx.plain.test", role: .exchange)),
                                           backend: plain, group: group, logger: Logger(label: "test"))
        let plainPort = try await plainServer.start().port!
        let routes = Routes(routes: ["remote.test": .hosts(["mx.remote.test"])], addresses: ["mx.remote.test": ["127.0.0.1"]])
        let upgrade = try GatewayTLS.clientUpgrade()

        let opportunistic = await delivery(routes, port: tlsPort, tls: .opportunistic(upgrade: upgrade))
            .deliver(from: "s@i2pmail.org", to: ["b@remote.test"], domain: "remote.test", message: Self.message)
        #expect(opportunistic == [.delivered])
        #expect(withTLS.envelopes.withLockedValue { $0.map(\.overTLS) } == [true])
        // Opportunistic toward a server without STARTTLS: in clear.
        #expect(await delivery(routes, port: plainPort, tls: .opportunistic(upgrade: upgrade))
                .deliver(from: "s@i2pmail.org", to: ["b@remote.test"], domain: "remote.test", message: Self.message) == [.delivered])
        #expect(plain.envelopes.withLockedValue { $0.map(\.overTLS) } == [false])
        // Required: no STARTTLS, no delivery (RFC 5248 4.7.10, retried).
        #expect(await delivery(routes, port: plainPort, tls: .required(upgrade: upgrade))
                .deliver(from: "s@i2pmail.org", to: ["b@remote.test"], domain: "remote.test", message: Self.message)
                == [.temporary(code: nil, status: "4.7.10")])
        #expect(plain.envelopes.withLockedValue { $0.count } == 1)
        await tlsServer.shutdown(gracePeriod: .zero)
        await plainServer.shutdown(gracePeriod: .zero)
        try await group.shutdownGracefully()
    }
}
