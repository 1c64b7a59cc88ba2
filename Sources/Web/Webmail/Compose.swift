import Foundation
import Hummingbird
import MailCore
import SMTP

/// Writing mail: new, reply, reply-all, forward, drafts (WEB-2).
extension Webmail {
    func composeForm(_ request: Request) async throws -> Response {
        guard let (session, mailbox) = signedIn(request) else { return requireLogin() }
        let query = request.uri.queryParameters
        var fields: [String: Any] = ["composeTitle": "Write"]
        do {
            if let ref = MessageRef(query["reply"].map(String.init)) {
                let view = MessageView(parsing: try await load(ref, from: mailbox).0)
                let recipients = MessageComposer.replyRecipients(view, replyAll: query["all"] != nil, me: mailbox.address)
                let threading = MessageComposer.threading(replyingTo: view)
                fields["composeTitle"] = query["all"] != nil ? "Reply to all" : "Reply"
                fields["to"] = recipients.to.joined(separator: ", ")
                fields["cc"] = recipients.cc.joined(separator: ", ")
                fields["subject"] = MessageComposer.replySubject(view.subject)
                fields["body"] = "\n\n" + MessageComposer.quoted(view)
                fields["inReplyTo"] = threading.inReplyTo ?? ""
                fields["references"] = threading.references.joined(separator: " ")
            } else if let ref = MessageRef(query["forward"].map(String.init)) {
                let view = MessageView(parsing: try await load(ref, from: mailbox).0)
                fields["composeTitle"] = "Forward"
                fields["subject"] = MessageComposer.forwardSubject(view.subject)
                fields["body"] = "\n\n" + MessageComposer.forwardBody(view)
                fields["forward"] = ref.text
                if !view.attachments.isEmpty { fields["forwardedAttachments"] = view.attachments.map(\.filename).joined(separator: ", ") }
            } else if let ref = MessageRef(query["draft"].map(String.init)), case .local = ref {
                let bytes = try await load(ref, from: mailbox).0
                let view = MessageView(parsing: bytes)
                fields["composeTitle"] = "Draft"
                fields["to"] = view.to.joined(separator: ", ")
                fields["cc"] = view.cc.joined(separator: ", ")
                fields["bcc"] = Self.draftBcc(bytes)
                fields["subject"] = view.subject
                fields["body"] = view.textBody ?? ""
                fields["inReplyTo"] = view.inReplyTo.first ?? ""
                fields["references"] = view.references.joined(separator: " ")
                fields["draft"] = ref.text
                if !view.attachments.isEmpty { fields["draftAttachments"] = view.attachments.map(\.filename).joined(separator: ", ") }
            }
        } catch let problem as MailboxProblem {
            return pages.problem(problem.description, status: .badGateway, back: "/inbox")
        }
        let context = base(session, title: fields["composeTitle"] as? String ?? "Write", address: mailbox.address, current: "Write")
        return pages.page("wm-compose", context.merging(fields) { $1 })
    }

    func compose(_ request: Request) async throws -> Response {
        guard let (session, mailbox) = signedIn(request) else { return requireLogin() }
        let form = try await request.form(upTo: settings.maximumMessageSize + (1 << 20))
        guard session.acceptsCSRF(form["csrf"]) else { return staleForm() }
        let to = try form.optional("to", label: "To", maximum: 4000)
        let cc = try form.optional("cc", label: "Cc", maximum: 4000)
        let bcc = try form.optional("bcc", label: "Bcc", maximum: 4000)
        let subject = try form.optional("subject", label: "Subject", maximum: 998)
        let body = try form.optional("body", label: "Message", maximum: settings.maximumMessageSize)
        let inReplyTo = try form.optional("in_reply_to", label: "In-Reply-To", maximum: 998)
        let references = try form.optional("references", label: "References", maximum: 16_000)
        let forward = MessageRef(form["forward"])
        let draft = MessageRef(form["draft"])
        let saveDraft = form["action"] == "draft"

        /// Back to the form with everything typed kept (uploaded files must be chosen again:
        /// a browser cannot be given them back).
        func again(_ message: String) -> Response {
            var context = base(session, title: "Write", address: mailbox.address, current: "Write")
            context.merge(["composeTitle": "Write", "to": to, "cc": cc, "bcc": bcc, "subject": subject, "body": body,
                           "inReplyTo": inReplyTo, "references": references, "forward": forward?.text ?? "", "draft": draft?.text ?? "",
                           "error": message + (form.files.isEmpty ? "" : " Attach the files again.")]) { $1 }
            return pages.page("wm-compose", context, status: .badRequest)
        }

        var invalid: [String] = []
        func addresses(_ text: String) -> [String] {
            let (valid, bad) = MessageComposer.validateAddresses(text)
            invalid += bad
            return valid
        }
        var message = OutgoingMessage(from: mailbox.address, to: addresses(to), cc: addresses(cc), bcc: addresses(bcc),
                                      subject: subject, body: body, attachments: [],
                                      inReplyTo: inReplyTo.isEmpty ? nil : inReplyTo,
                                      references: references.split(separator: " ").map(String.init))
        guard invalid.isEmpty else { return again("Not an address: \(invalid.joined(separator: ", ")).") }
        if !saveDraft && message.envelopeRecipients.isEmpty { return again("Name at least one recipient.") }

        // Attachments: what was uploaded, what the forwarded message or the draft carried.
        var total = 0
        for file in form.files where file.field == "attachments" {
            message.attachments.append(OutgoingAttachment(filename: file.filename, contentType: file.contentType, data: file.data))
            total += file.data.count
        }
        do {
            for ref in [forward, draft].compactMap({ $0 }) {
                let view = MessageView(parsing: try await load(ref, from: mailbox).0)
                for attachment in view.attachments {
                    guard let data = view.attachmentData(attachment.index) else { continue }
                    message.attachments.append(OutgoingAttachment(filename: attachment.filename, contentType: attachment.contentType, data: data))
                    total += data.count
                }
            }
        } catch let problem as MailboxProblem {
            return again(problem.description)
        }
        guard total <= settings.maximumMessageSize else {
            return again("The attachments come to \(ByteSize.describe(total)); the limit is \(ByteSize.describe(settings.maximumMessageSize)).")
        }

        var random = SystemRandomNumberGenerator()
        let now = Int64(Date().timeIntervalSince1970)
        let bytes = MessageComposer.compose(message, date: now, messageIDDomain: settings.domain, random: &random)
        let summary = (subject: subject, from: mailbox.address, to: (message.to + message.cc).joined(separator: ", "), date: Optional(now))

        if saveDraft {
            guard let folders = mailbox.folders else { return again("Local folders are not open in this session: drafts cannot be kept.") }
            // A draft keeps its Bcc (it never leaves this computer, and it is sealed).
            let stored = Self.withDraftBcc(bytes, bcc: message.bcc)
            if case .local(let id) = draft {
                try await folders.replace(id: id, with: stored, summary: summary, now: now)
            } else {
                _ = try await folders.save(stored, in: .drafts, summary: summary, now: now)
            }
            sessions.update(session.id) { $0.notice = "Draft saved." }
            return Response.seeOther("/folder/drafts")
        }

        let recipients = message.envelopeRecipients
        let outcomes = await mailbox.send(bytes, from: mailbox.address, to: recipients)
        let delivered = zip(recipients, outcomes).filter { $0.1 == .delivered }.map(\.0)
        let refused = zip(recipients, outcomes).compactMap { recipient, outcome -> String? in
            switch outcome {
            case .delivered: return nil
            case .temporary(let code, let status):
                return "\(recipient): \(code.map(String.init) ?? "no answer") \(status) — \(DeliveryStatusNotification.explanation(status))"
            case .permanent(let code, let status):
                return "\(recipient): \(code) \(status) — \(DeliveryStatusNotification.explanation(status))"
            }
        }
        guard !delivered.isEmpty else {
            return again("The message was not sent. \(refused.joined(separator: "; ")). Is your I2P client tunnel for SMTP (\(settings.smtpDescription)) running?")
        }
        if let folders = mailbox.folders {
            _ = try await folders.save(bytes, in: .sent, summary: summary, now: now)
            if case .local(let id) = draft { try? await folders.delete(id) }
        }
        let notice = refused.isEmpty
            ? "Sent to \(delivered.count) recipient\(delivered.count == 1 ? "" : "s")."
            : "Sent to \(delivered.joined(separator: ", ")); not accepted for \(refused.joined(separator: "; "))."
        sessions.update(session.id) { $0.notice = notice }
        return Response.seeOther(mailbox.folders == nil ? "/inbox" : "/folder/sent")
    }

    /// Drafts carry their Bcc in a header of their own; sent mail never does.
    static func withDraftBcc(_ message: [UInt8], bcc: [String]) -> [UInt8] {
        guard !bcc.isEmpty else { return message }
        return Array("Bcc: \(bcc.joined(separator: ", "))\r\n".utf8) + message
    }

    static func draftBcc(_ message: [UInt8]) -> String {
        HeaderSection.parse(message).fields(named: "Bcc").first?.value.trimmingCharacters(in: .whitespaces) ?? ""
    }
}
