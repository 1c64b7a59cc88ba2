
/// A delivery status notification (RFC 3464) for the sender of Internet-bound mail that failed or
/// is delayed. Pure. It reveals nothing about the relay or the core host (QUEUE-2): the reporting
/// MTA is the public mail domain, and a relay's reply appears only as its codes, never its text
/// (which may name hosts), with a fixed explanation of the status.
public struct DeliveryStatusNotification: Sendable {
    public enum Action: String, Sendable { case failed, delayed }

    public struct Recipient: Sendable, Equatable {
        public var address: String
        public var action: Action
        /// RFC 3463 enhanced status, e.g. `5.1.1`.
        public var status: String
        /// The reply code of the relay, if it answered (e.g. 550); nil when it never did.
        public var replyCode: Int?
        /// The enhanced status of that reply when it differs from `status` (an expired message:
        /// status 5.4.7, last reply 451 4.3.0).
        public var replyStatus: String?

        public init(address: String, action: Action, status: String, replyCode: Int?, replyStatus: String? = nil) {
            self.address = address
            self.action = action
            self.status = status
            self.replyCode = replyCode
            self.replyStatus = replyStatus
        }
    }

    /// The mail domain (`mail.i2p`): Reporting-MTA, the sender address and the Message-ID domain.
    public var domain: String
    public var sender: String
    public var recipients: [Recipient]
    /// The header section of the original message (as queued: already sanitised).
    public var originalHeader: [UInt8]
    public var now: Int64
    /// For `delayed`: until when retries go on.
    public var retryUntil: Int64?

    public init(domain: String, sender: String, recipients: [Recipient], originalHeader: [UInt8], now: Int64, retryUntil: Int64? = nil) {
        self.domain = domain
        self.sender = sender
        self.recipients = recipients
        self.originalHeader = originalHeader
        self.now = now
        self.retryUntil = retryUntil
    }

    /// The whole message, CRLF, ready for the sender's mailbox.
    public func render<R: RandomNumberGenerator>(random: inout R) -> [UInt8] {
        let failed = recipients.contains { $0.action == .failed }
        let boundary = "=_report_" + RandomToken.make(length: 24, using: &random)
        let date = RFC5322Date.format(secondsSince1970: now)
        var lines: [String] = [
            "Return-Path: <>",
            "Date: \(date)",
            "From: Mail Delivery System <MAILER-DAEMON@\(domain)>",
            "To: <\(sender)>",
            "Subject: " + (failed ? "Undelivered Mail Returned to Sender" : "Delayed Mail (still being retried)"),
            "Message-ID: <\(RandomToken.make(length: 26, using: &random))@\(domain)>",
            "Auto-Submitted: auto-replied",  // RFC 3834 5: no auto-reply to this
            "MIME-Version: 1.0",
            "Content-Type: multipart/report; report-type=delivery-status;",
            "\tboundary=\"\(boundary)\"",
            "",
            "This is a MIME-encapsulated message.",
            "",
            "--\(boundary)",
            "Content-Type: text/plain; charset=us-ascii",
            "Content-Transfer-Encoding: 7bit",
            "",
        ]
        if failed {
            lines += ["Your message could not be delivered to the recipients below. This is a",
                      "permanent error: it will not be retried.", ""]
        } else {
            lines += ["Your message has not been delivered yet to the recipients below. It is still",
                      "being retried" + (retryUntil.map { " until \(RFC5322Date.format(secondsSince1970: $0))" } ?? "") + ";",
                      "you do not need to send it again.", ""]
        }
        for recipient in recipients {
            lines.append("<\(recipient.address)>: \(Self.explanation(recipient.status))")
        }
        lines += ["", "--\(boundary)", "Content-Type: message/delivery-status", "",
                  "Reporting-MTA: dns; \(domain)", ""]
        for (index, recipient) in recipients.enumerated() {
            if index > 0 { lines.append("") }
            lines.append("Final-Recipient: rfc822; \(recipient.address)")
            lines.append("Action: \(recipient.action.rawValue)")
            lines.append("Status: \(recipient.status)")
            if let code = recipient.replyCode { lines.append("Diagnostic-Code: smtp; \(code) \(recipient.replyStatus ?? recipient.status)") }
            lines.append("Last-Attempt-Date: \(date)")
            if recipient.action == .delayed, let retryUntil { lines.append("Will-Retry-Until: \(RFC5322Date.format(secondsSince1970: retryUntil))") }
        }
        lines += ["", "--\(boundary)", "Content-Type: text/rfc822-headers", ""]
        var out = Array(lines.joined(separator: "\r\n").utf8) + [13, 10]
        var header = originalHeader
        while header.count >= 2 && header.suffix(2) == [13, 10] { header.removeLast(2) }
        out += header + [13, 10]
        out += Array("\r\n--\(boundary)--\r\n".utf8)
        return out
    }

    /// A plain sentence for an RFC 3463 status: what the sender can act on, no relay text.
    public static func explanation(_ status: String) -> String {
        let parts = status.split(separator: ".")
        let detail = parts.count == 3 ? "\(parts[1]).\(parts[2])" : ""
        switch detail {
        case "1.1": return "the recipient's mailbox does not exist"
        case "1.2": return "the recipient's domain does not exist or accepts no mail"
        case "1.3", "1.7": return "the address is not valid"
        case "2.1": return "the recipient's mailbox is disabled"
        case "2.2": return "the recipient's mailbox is full"
        case "3.4": return "the message is too large for the recipient's system"
        case "4.7": return "the message could not be delivered in time"
        case "7.1": return "delivery was refused by policy"
        default:
            return status.hasPrefix("4") ? "delivery failed temporarily and is being retried" : "delivery failed"
        }
    }
}
