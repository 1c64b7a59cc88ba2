/// The webmail's templates (WEB-2). Every action is a plain link or form: JavaScript is never
/// needed, and the pages load nothing but the style sheet.
enum WebmailTemplates {
    static let all: [String: String] = [
        "wm-login": login, "wm-folder": folder, "wm-message": message, "wm-compose": compose, "wm-reseal": reseal,
    ]

    static let csrf = #"<input type="hidden" name="csrf" value="{{csrf}}">"#

    static let login = """
    <h1>Webmail</h1>
    <section class="card">
    <form method="post" action="/login" id="login">
      \(csrf)
      <label for="user">Account name</label>
      <input type="text" id="user" name="user" value="{{user}}" maxlength="100" autocomplete="username" required autofocus>
      <p class="hint">Your mailbox name, such as alice (or alice@{{domain}}).</p>
      <label for="password">Password</label>
      <input type="password" id="password" name="password" maxlength="1000" autocomplete="current-password" required>
      <button type="submit">Log in</button>
    </form>
    <p class="hint">The password stays in this program's memory only, for as long as you are logged in. Mail is read over POP3
    at {{pop3}} and sent over SMTP at {{smtp}} — your I2P client tunnels.</p>
    </section>
    """

    static let reseal = """
    <h1>Local folders</h1>
    <section class="card">
      <p>Your Sent, Drafts and Trash folders on this computer are sealed with another password — probably the one you had
      before you changed it. Enter that old password to re-seal them with the current one.</p>
      <form method="post" action="/reseal">
        \(csrf)
        <label for="old">Old password</label>
        <input type="password" id="old" name="old" maxlength="1000" autocomplete="off" required>
        <button type="submit">Re-seal my folders</button>
      </form>
      <form method="post" action="/reseal/skip">
        \(csrf)
        <p class="hint">Or go on without them for now: they stay sealed, and nothing is kept in Sent, Drafts or Trash until you re-seal them.</p>
        <button type="submit" class="secondary">Go on without the old folders</button>
      </form>
    </section>
    """

    static let folder = """
    <h1>{{folderTitle}}</h1>
    <div class="toolbar">
      <a class="button" href="/compose">Write</a>
      {{#isInbox}}<a class="button secondary" href="/inbox?refresh=1&amp;sort={{sort}}&amp;order={{order}}" id="check">Check for new mail</a>{{/isInbox}}
      <span class="hint">{{countText}}</span>
    </div>
    {{#hasMessages}}
    <table class="list" id="messages">
      <thead><tr>
        <th><a href="{{sortFrom}}">{{peerLabel}}</a></th>
        <th><a href="{{sortSubject}}">Subject</a></th>
        <th><a href="{{sortDate}}">Date (UTC)</a></th>
        <th class="size"><a href="{{sortSize}}">Size</a></th>
      </tr></thead>
      <tbody>
      {{#messages}}
      <tr{{#unread}} class="unread"{{/unread}}>
        <td>{{peer}}</td>
        <td><a href="{{href}}">{{subject}}</a></td>
        <td>{{date}}</td>
        <td class="size">{{size}}</td>
      </tr>
      {{/messages}}
      </tbody>
    </table>
    <div class="pager">
      {{#previous}}<a href="{{previous}}" rel="prev">← Newer page</a>{{/previous}}
      <span>Page {{page}} of {{pages}}</span>
      {{#next}}<a href="{{next}}" rel="next">Older page →</a>{{/next}}
    </div>
    {{/hasMessages}}
    {{^hasMessages}}<p class="hint">No messages.</p>{{/hasMessages}}
    """

    static let message = """
    <div class="toolbar">
      {{#canReply}}
      <a class="button" href="/compose?reply={{ref}}">Reply</a>
      <a class="button secondary" href="/compose?reply={{ref}}&amp;all=1">Reply all</a>
      <a class="button secondary" href="/compose?forward={{ref}}">Forward</a>
      {{/canReply}}
      {{#isDraft}}<a class="button" href="/compose?draft={{ref}}">Edit draft</a>{{/isDraft}}
      <form method="post" action="/delete">
        \(csrf)
        <input type="hidden" name="ref" value="{{refText}}">
        <button type="submit" class="secondary" id="delete">{{deleteLabel}}</button>
      </form>
      <a href="{{back}}">Back to {{backLabel}}</a>
    </div>
    <h1>{{subject}}</h1>
    <dl class="headers">
      <dt>From</dt><dd>{{from}}</dd>
      {{#to}}<dt>To</dt><dd>{{to}}</dd>{{/to}}
      {{#cc}}<dt>Cc</dt><dd>{{cc}}</dd>{{/cc}}
      <dt>Date</dt><dd>{{date}}</dd>
    </dl>
    {{#problems}}<p class="hint">Note: {{.}}</p>{{/problems}}
    {{#blocked}}<p class="hint" id="blocked">{{blocked}}</p>{{/blocked}}
    {{#hasHTML}}
    <iframe class="mail" id="html-body" src="{{htmlHref}}" sandbox="" referrerpolicy="no-referrer" loading="lazy" title="HTML part of the message"></iframe>
    {{#text}}<details><summary>Plain text version</summary><pre class="body">{{text}}</pre></details>{{/text}}
    {{/hasHTML}}
    {{^hasHTML}}<pre class="body" id="text-body">{{text}}</pre>{{/hasHTML}}
    {{#hasAttachments}}
    <h2>Attachments</h2>
    <ul class="attachments" id="attachments">
      {{#attachments}}<li><a href="{{href}}" download="{{filename}}">{{filename}}</a> <span class="hint">{{contentType}}, {{size}}</span></li>{{/attachments}}
    </ul>
    {{/hasAttachments}}
    """

    static let compose = """
    <h1>{{composeTitle}}</h1>
    <form method="post" action="/compose" enctype="multipart/form-data" id="compose">
      \(csrf)
      <input type="hidden" name="in_reply_to" value="{{inReplyTo}}">
      <input type="hidden" name="references" value="{{references}}">
      <input type="hidden" name="forward" value="{{forward}}">
      <input type="hidden" name="draft" value="{{draft}}">
      <label for="to">To</label>
      <input type="text" id="to" name="to" value="{{to}}" maxlength="4000">
      <label for="cc">Cc</label>
      <input type="text" id="cc" name="cc" value="{{cc}}" maxlength="4000">
      <label for="bcc">Bcc</label>
      <input type="text" id="bcc" name="bcc" value="{{bcc}}" maxlength="4000">
      <p class="hint">Addresses separated by commas. Bcc recipients are never named in the message.</p>
      <label for="subject">Subject</label>
      <input type="text" id="subject" name="subject" value="{{subject}}" maxlength="998">
      <label for="body">Message</label>
      <textarea id="body" name="body" maxlength="2000000">{{body}}</textarea>
      {{#forwardedAttachments}}<p class="hint">The original's attachments go along: {{forwardedAttachments}}</p>{{/forwardedAttachments}}
      {{#draftAttachments}}<p class="hint">Attached: {{draftAttachments}}</p>{{/draftAttachments}}
      <label for="attachments">Attach files</label>
      <input type="file" id="attachments" name="attachments" multiple>
      <p class="hint">The message leaves with only From, To, Cc, Subject, a date in UTC and a random Message-ID: nothing about this
      computer, this browser or your time zone.</p>
      <div class="toolbar">
        <button type="submit" name="action" value="send" id="send">Send</button>
        <button type="submit" name="action" value="draft" class="secondary" id="save-draft">Save draft</button>
      </div>
    </form>
    """
}
