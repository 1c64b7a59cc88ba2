/// The account pages' templates (WEB-1). Plain forms: everything works with JavaScript off.
enum AccountTemplates {
    static let all: [String: String] = [
        "home": home, "login": login, "signup": signup, "account": account, "delete": delete, "deleted": deleted, "keys": keys,
    ]

    static let keys = """
    <h1>Key book</h1>
    <section class="card">
    <form method="get" action="/keys" id="key-search">
      <label for="search">Address, fingerprint or key id</label>
      <input type="text" id="search" name="search" value="{{search}}" maxlength="320" placeholder="alice@{{domain}}">
      <button type="submit">Search</button>
    </form>
    <p class="hint">The OpenPGP keys users of {{domain}} chose to publish. With gpg:
    <code>gpg --keyserver hkp://THIS-HOST --search-keys alice@{{domain}}</code>.</p>
    </section>
    {{#searched}}
    {{#hasResults}}
    <table class="list" id="keys">
      <thead><tr><th>Address</th><th>Fingerprint</th><th>Key</th><th>Created</th><th>Expires</th></tr></thead>
      <tbody>
      {{#results}}
      <tr><td>{{userID}}</td><td><a href="{{href}}"><code>{{fingerprint}}</code></a></td><td>{{algorithm}}</td><td>{{created}}</td><td>{{expires}}</td></tr>
      {{/results}}
      </tbody>
    </table>
    {{/hasResults}}
    {{^hasResults}}<p class="hint" id="no-keys">No published key matches.</p>{{/hasResults}}
    {{/searched}}
    """

    static let csrf = #"<input type="hidden" name="csrf" value="{{csrf}}">"#

    static let home = """
    <h1>Anonymous mail for I2P</h1>
    <section class="card">
      <p>An address at <strong>{{domain}}</strong> reaches other I2P users and, through the gateway, the Internet —
      without either side learning who you are.</p>
      <p><a class="button" href="/login">Log in</a> <a class="button secondary" href="/signup">Create an account</a></p>
    </section>
    """

    static let login = """
    <h1>Log in</h1>
    <section class="card">
    <form method="post" action="/login" id="login">
      \(csrf)
      <label for="name">Account name</label>
      <input type="text" id="name" name="name" value="{{name}}" maxlength="100" autocomplete="username" required autofocus>
      <p class="hint">The part before @{{domain}}.</p>
      <label for="password">Password</label>
      <input type="password" id="password" name="password" maxlength="1000" autocomplete="current-password" required>
      <button type="submit">Log in</button>
    </form>
    </section>
    <p>No account yet? <a href="/signup">Create one</a>.</p>
    """

    static let signup = """
    <h1>Create an account</h1>
    <section class="card">
    <form method="post" action="/signup" id="signup" data-bits="{{bits}}" data-domain="{{domain}}">
      \(csrf)
      <label for="name">Account name</label>
      <input type="text" id="name" name="name" value="{{name}}" maxlength="32" autocomplete="username" required autofocus>
      <p class="hint">2 to 32 characters: a–z, 0–9, dot, underscore, hyphen; starting with a letter or digit. Your address will be <em>name</em>@{{domain}}.</p>
      <label for="password">Password</label>
      <input type="password" id="password" name="password" maxlength="1000" minlength="10" autocomplete="new-password" required>
      <p class="hint">At least 10 characters. It also opens your mailbox over POP3 and SMTP; nobody can recover it for you.</p>
      <label for="password2">Password again</label>
      <input type="password" id="password2" name="password2" maxlength="1000" minlength="10" autocomplete="new-password" required>
      <label for="stamp">Proof of work</label>
      <input type="text" id="stamp" name="stamp" value="{{stamp}}" maxlength="300" autocomplete="off" spellcheck="false">
      <p class="hint" id="pow-status">With JavaScript on, this page computes it for you when you press the button (a few seconds).
      With JavaScript off, run <code>postern hashcash mint --bits {{bits}} <em>name</em>@{{domain}}</code> and paste its output here.
      It costs you a little time and keeps mass sign-ups away, without asking anyone else.</p>
      <button type="submit">Create account</button>
    </form>
    </section>
    <script src="/static/pow.js"></script>
    """

    static let account = """
    <h1>{{address}}</h1>

    <section class="card" id="usage">
      <h2>Use</h2>
      <p>Mailbox: <strong>{{usedText}}</strong> of {{quotaText}} ({{usedPercent}}%).</p>
      <meter class="meter" min="0" max="100" high="90" value="{{usedPercent}}">{{usedPercent}}%</meter>
      <p>Internet recipients: <strong>{{internetUsed}}</strong> of {{internetQuota}} in the last 24 hours{{#internetCredit}}, plus {{internetCredit}} paid with hashcash{{/internetCredit}}.
      {{#internetFreesAt}}The next one frees up at {{internetFreesAt}} UTC.{{/internetFreesAt}}</p>
    </section>

    <section class="card" id="delay">
      <h2>Delay of mail to the Internet</h2>
      <p class="hint">Mail to other I2P users is delivered at once. Mail to the Internet can be held back so that the moment it
      leaves the gateway does not tell an observer when you wrote it.</p>
      <form method="post" action="/account/delay" class="choices">
        \(csrf)
        {{#delayModes}}
        <label><input type="radio" name="delay" value="{{value}}"{{#checked}} checked{{/checked}}> <strong>{{title}}</strong></label>
        <p class="hint">{{explanation}}</p>
        {{/delayModes}}
        <button type="submit">Save delay</button>
      </form>
    </section>

    <section class="card" id="irc">
      <h2>New-mail notices on IRC</h2>
      <form method="post" action="/account/irc">
        \(csrf)
        <label for="irc_nick">IRC nick</label>
        <input type="text" id="irc_nick" name="irc_nick" value="{{ircNick}}" maxlength="30">
        {{#ircStatus}}<p id="irc-status"><strong>{{ircStatus}}</strong></p>{{/ircStatus}}
        <p class="hint">The notification bot tells this nick "1 new message for {{address}}" — never a sender or subject.
        To prove the nick is yours, you send the bot a one-time code from it. Leave empty for no notices.</p>
        {{#ircOff}}<p class="hint">This server runs no notification bot at the moment; the nick is kept for when it does.</p>{{/ircOff}}
        <button type="submit">Save nick</button>
      </form>
    </section>

    <section class="card" id="options">
      <h2>Privacy options</h2>
      <form method="post" action="/account/options" class="choices">
        \(csrf)
        <label><input type="checkbox" name="html_sanitise" value="on"{{#htmlSanitise}} checked{{/htmlSanitise}}> Remove remote content from HTML mail that arrives from the Internet</label>
        <p class="hint">Tracking pixels, remote images and style sheets would tell a sender when and where you read a mail.</p>
        <label><input type="checkbox" name="key_listing" value="on"{{#keyListing}} checked{{/keyListing}}> List my OpenPGP key in the public key book</label>
        <button type="submit">Save options</button>
      </form>
    </section>

    {{#keyBook}}
    <section class="card" id="key">
      <h2>OpenPGP key</h2>
      {{#key}}
      <p>Published: <code>{{fingerprint}}</code> — {{algorithm}}, created {{created}}{{#expires}}, expires {{expires}}{{/expires}}.
      {{#listed}}Listed in the key book.{{/listed}}{{^listed}}<strong>Not listed</strong>: tick "List my OpenPGP key" above to let others find it.{{/listed}}</p>
      <form method="post" action="/account/key/remove" class="inline">
        \(csrf)
        <button type="submit" class="secondary" id="remove-key">Remove the key</button>
      </form>
      {{/key}}
      {{^key}}<p>No key published.</p>{{/key}}
      <form method="post" action="/account/key" enctype="multipart/form-data" id="key-upload">
        \(csrf)
        <label for="keyfile">Public key file</label>
        <input type="file" id="keyfile" name="keyfile">
        <label for="armored">or paste it (ASCII armour)</label>
        <textarea id="armored" name="armored" rows="6" maxlength="70000"></textarea>
        <p class="hint">Export it with <code>gpg --export --armor {{address}}</code> — the public key only. Only the user ID with your
        address is published; other user IDs and others' signatures are removed.</p>
        <button type="submit">{{#key}}Replace the key{{/key}}{{^key}}Publish the key{{/key}}</button>
      </form>
    </section>
    {{/keyBook}}

    <section class="card" id="password">
      <h2>Password</h2>
      <form method="post" action="/account/password">
        \(csrf)
        <label for="current">Current password</label>
        <input type="password" id="current" name="current" maxlength="1000" autocomplete="current-password" required>
        <label for="new">New password</label>
        <input type="password" id="new" name="new" maxlength="1000" minlength="10" autocomplete="new-password" required>
        <label for="new2">New password again</label>
        <input type="password" id="new2" name="new2" maxlength="1000" minlength="10" autocomplete="new-password" required>
        <p class="hint">Your mail clients and the webmail need the new password afterwards; other logged-in browsers are logged out.</p>
        <button type="submit">Change password</button>
      </form>
    </section>

    <section class="card" id="danger">
      <h2>Delete the account</h2>
      <p><a class="button secondary" href="/account/delete">Delete this account…</a></p>
    </section>
    """

    static let delete = """
    <h1>Delete {{address}}</h1>
    <section class="card">
      <p><strong>This is final.</strong> Every message in the mailbox, every message still waiting to go out, every setting and
      key of this account is deleted at once and for good. Nobody, not even the operator, can bring it back.</p>
      <p>The name stays reserved for {{quarantineDays}} days, so nobody else can take it over and receive mail meant for you.</p>
      <form method="post" action="/account/delete">
        \(csrf)
        <label for="password">Your password</label>
        <input type="password" id="password" name="password" maxlength="1000" autocomplete="current-password" required>
        <label><input type="checkbox" name="confirm" value="yes" required> I understand that this deletes everything, for good.</label>
        <button type="submit" class="danger">Delete for good</button>
        <a href="/account">Cancel</a>
      </form>
    </section>
    """

    static let deleted = """
    <h1>Account deleted</h1>
    <section class="card">
      <p>{{address}} and everything in it are gone.</p>
      <p><a href="/">Home</a></p>
    </section>
    """
}
