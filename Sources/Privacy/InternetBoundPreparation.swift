import MailCore

/// The Internet-bound policy at release (PRIV-4 over PRIV-1..3): the queued message, sanitised
/// again with Date the release time, From and Return-Path at the Internet domain, To/Cc/Reply-To
/// rewritten, and the Message-ID moved to the Internet domain keeping its random part (so the
/// local recipients' copy and the Internet copy thread together), as are the ids of Postern's own
/// earlier messages in In-Reply-To and References.
public enum InternetBoundPreparation {
    public static func prepare<R: RandomNumberGenerator>(_ bytes: [UInt8], senderName: String, domain: String, internetDomain: String,
                                                         now: Int64, random: inout R) -> [UInt8] {
        let header = HeaderSection.parse(bytes)
        // Ids at the mail domain are Postern's own (PRIV-2 gave every message one): they move to
        // the Internet domain, in Message-ID and wherever a reply refers to them.
        let suffix = "@\(domain)>"
        func moved(_ id: String) -> String? {
            id.lowercased().hasSuffix(suffix) ? String(id.dropLast(suffix.count)) + "@\(internetDomain)>" : nil
        }
        let messageID = header.fields(named: "Message-ID").first.flatMap { MessageSanitiser.messageIDs(in: $0.value).first }.flatMap(moved)
        var references: [String: String] = [:]
        for field in header.fields(named: "In-Reply-To") + header.fields(named: "References") {
            for id in MessageSanitiser.messageIDs(in: field.value) { references[id] = moved(id) }
        }
        let sanitised = MessageSanitiser().sanitise(
            bytes,
            context: .init(sender: EmailAddress(localPart: senderName, domain: internetDomain), messageIDDomain: internetDomain,
                           releaseTime: now, rewriteDomain: (from: domain, to: internetDomain), messageID: messageID,
                           referenceReplacements: references),
            random: &random)
        return sanitised
    }
}
