import Foundation
import Gateway
import Logging
import MailCore
import NIOConcurrencyHelpers
import NIOCore
import Privacy
import SMTP
import Store

/// One connection to the core's SMTP listener when a gateway is configured: an account's
/// submission as always, or — after the gateway's login — the gateway handing over mail from the
/// Internet and bounces (the relay role): any sender, the null one too; only the core's own
/// mailboxes as recipients, each checked live (GW-2: `550 5.1.1` for an unknown user reaches the
/// Internet sender in the dialogue); the message stored as the gateway sanitised it (PRIV-5),
/// under a Return-Path of the envelope sender (RFC 5321 4.4).
final class GatewayAwareConnection: SubmissionBackend {
    private let service: SubmissionService
    private let gateway: PeerCredential
    private let isGateway = NIOLockedValueBox(false)

    init(service: SubmissionService, gateway: PeerCredential) {
        self.service = service
        self.gateway = gateway
    }

    func authenticate(username: String, password: String) async -> SMTPAuthOutcome {
        if let outcome = gatewayLogin(username: username, password: password) { return outcome }
        if service.peerOnly { return .failure }
        return await service.authenticate(username: username, password: password)
    }

    func authenticate(username: String, password: String, on loop: any EventLoop) -> EventLoopFuture<SMTPAuthOutcome> {
        if let outcome = gatewayLogin(username: username, password: password) { return loop.makeSucceededFuture(outcome) }
        if service.peerOnly { return loop.makeSucceededFuture(.failure) }
        return service.authenticate(username: username, password: password, on: loop)
    }

    /// The gateway's name is taken by the link: a wrong password for it is a failure, not a
    /// try at an account of that name.
    private func gatewayLogin(username: String, password: String) -> SMTPAuthOutcome? {
        guard username == gateway.username else { return nil }
        guard gateway.matches(username: username, password: password) else {
            service.logger.warning("the gateway's login failed: check [relay] password_file on both sides")
            return .failure
        }
        isGateway.withLockedValue { $0 = true }
        return .peer
    }

    private var fromGateway: Bool { isGateway.withLockedValue { $0 } }

    func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress]) async -> RecipientVerdict {
        guard fromGateway else { return await service.checkRecipient(recipient, sender: sender, declaredSize: declaredSize, earlier: earlier) }
        return (try? await service.stores.workers.runIfActive { self.gatewayRecipient(recipient, declaredSize: declaredSize) })
            ?? SubmissionService.localProblem
    }

    func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress],
                        on loop: any EventLoop) -> EventLoopFuture<RecipientVerdict> {
        guard fromGateway else {
            return service.checkRecipient(recipient, sender: sender, declaredSize: declaredSize, earlier: earlier, on: loop)
        }
        return service.stores.workers.runIfActive(eventLoop: loop) { self.gatewayRecipient(recipient, declaredSize: declaredSize) }
            .recover { _ in SubmissionService.localProblem }
    }

    /// RCPT from the gateway, on a worker: one of the core's mailboxes, with room (MBOX-2).
    private func gatewayRecipient(_ recipient: EmailAddress, declaredSize: Int?) -> RecipientVerdict {
        guard recipient.domain.lowercased() == service.stores.configuration.domain else {
            return .rejected(SMTPReply(550, "5.7.1", "Relaying denied: the gateway may only deliver to @\(service.stores.configuration.domain)"))
        }
        do {
            return service.verdict(recipient, account: try service.stores.mailbox(for: recipient), declaredSize: declaredSize)
        } catch {
            service.logger.error("recipient lookup failed", metadata: ["error": "\(type(of: error))"])
            return SubmissionService.localProblem
        }
    }

    func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer) async -> DeliveryOutcome {
        guard fromGateway else { return await service.deliver(envelope, message: message) }
        let decision = await service.scan?.decide(message) ?? .pass
        if case .refuse(let code, let status, let text) = decision { return .rejected(SMTPReply(code, status, text)) }
        let unscanned = decision == .passUnscanned
        return await withCheckedContinuation { continuation in
            deliverFromGateway(envelope, message: message, unscanned: unscanned) { continuation.resume(returning: $0) }
        }
    }

    /// Mail from the Internet is scanned here too (SCAN-1), whatever the gateway did: the core
    /// does not rely on another machine's scanner.
    func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer, on loop: any EventLoop) -> EventLoopFuture<DeliveryOutcome> {
        guard fromGateway else { return service.deliver(envelope, message: message, on: loop) }
        return service.scanned(message, on: loop) { unscanned in
            let promise = loop.makePromise(of: DeliveryOutcome.self)
            self.deliverFromGateway(envelope, message: message, unscanned: unscanned) { promise.succeed($0) }
            return promise.futureResult
        }
    }

    private func deliverFromGateway(_ envelope: SubmissionEnvelope, message: ByteBuffer, unscanned: Bool,
                                    completion: @escaping @Sendable (DeliveryOutcome) -> Void) {
        let stores = service.stores
        let logger = service.logger
        stores.workers.submit { state in
            guard case .active = state else { return completion(SubmissionService.notStored) }
            do {
                // SCAN-2: accounts that keep the HTML switch on (the default) get the message with
                // its HTML made harmless; the others get it as it came.
                var sanitising: [MailboxTarget] = []
                var plain: [MailboxTarget] = []
                var seen: Set<Int64> = []
                for recipient in envelope.recipients {
                    guard let account = try stores.mailbox(for: recipient) else {
                        return completion(.rejected(SMTPReply(550, "5.1.1", "No such user here: <\(recipient)>")))
                    }
                    guard seen.insert(account.id).inserted else { continue }
                    let target = MailboxTarget(accountID: account.id, accountName: account.name, quotaBytes: stores.quota(of: account))
                    if account.htmlSanitise { sanitising.append(target) } else { plain.append(target) }
                }
                let stored = SubmissionService.markedUnscanned(Self.withReturnPath(message, sender: envelope.sender), if: unscanned)
                var copies: [(ByteBuffer, [MailboxTarget])] = []
                if !sanitising.isEmpty {
                    let html = InboundHTMLPolicy.apply(Array(stored.readableBytesView))
                    if html.parts > 0 {
                        logger.debug("HTML of an inbound message sanitised", metadata: [
                            "parts": "\(html.parts)", "remote": "\(html.removedRemoteReferences)", "active": "\(html.removedActiveContent)"])
                    }
                    copies.append((html.parts > 0 ? ByteBuffer(bytes: html.message) : stored, sanitising))
                }
                if !plain.isEmpty { copies.append((stored, plain)) }
                Self.store(copies, stores: stores, logger: logger, completion: completion)
            } catch {
                logger.error("delivery failed", metadata: ["error": "\(error)"])
                completion(SubmissionService.notStored)
            }
        }
    }

    /// Stores each copy for its mailboxes, one after the other; the first failure answers.
    private static func store(_ copies: [(ByteBuffer, [MailboxTarget])], stores: CoreStores, logger: Logger,
                              completion: @escaping @Sendable (DeliveryOutcome) -> Void) {
        guard let (message, targets) = copies.first else { return completion(.accepted) }
        let rest = Array(copies.dropFirst())
        stores.mail.deliver(message, to: targets, writingFilesHere: true) { result in
            switch result {
            case .success:
                logger.debug("message from the gateway stored", metadata: ["mailboxes": "\(targets.count)"])
                store(rest, stores: stores, logger: logger, completion: completion)
            case .failure(DeliveryFailure.mailboxFull):
                completion(.rejected(SMTPReply(452, "4.2.2", "Mailbox full")))
            case .failure(DeliveryFailure.mailboxGone):
                completion(.rejected(SMTPReply(550, "5.1.1", "No such user here")))
            case .failure(let error):
                logger.error("delivery failed", metadata: ["error": "\(error)"])
                completion(SubmissionService.notStored)
            }
        }
    }

    /// The message under a Return-Path of the envelope sender (RFC 5321 4.4: added at final
    /// delivery; any earlier one is removed).
    static func withReturnPath(_ message: ByteBuffer, sender: EmailAddress?) -> ByteBuffer {
        let bytes = message.readableBytesView
        let header = HeaderSection.parse(bytes)
        var out = ByteBufferAllocator().buffer(capacity: message.readableBytes + 64)
        out.writeString("Return-Path: <\(sender?.description ?? "")>\r\n")
        for field in header.fields where field.name.lowercased() != "return-path" {
            out.writeBytes(field.raw)
            out.writeString("\r\n")
        }
        out.writeString("\r\n")
        let bodyStart = header.bodyOffset
        if bodyStart < bytes.endIndex { out.writeBytes(bytes[bodyStart...]) }
        return out
    }
}
