/// Templates and the style sheet both apps use. Pages work with JavaScript off: every action is a
/// plain form, and nothing is loaded from outside the app's own origin.
enum SharedTemplates {
    static let all: [String: String] = ["layout": layout, "problem": problem]

    static let layout = """
    <!DOCTYPE html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="referrer" content="no-referrer">
    <title>{{pageTitle}}</title>
    <link rel="stylesheet" href="/static/style.css">
    </head>
    <body>
    <header class="top">
      <a class="brand" href="/">{{appTitle}}</a>
      {{#account}}
      <nav>
        <span class="who">{{account}}</span>
        {{#nav}}<a href="{{href}}"{{#current}} class="current"{{/current}}>{{label}}</a>{{/nav}}
        <form method="post" action="/logout" class="inline">
          <input type="hidden" name="csrf" value="{{csrf}}">
          <button type="submit" class="link">Log out</button>
        </form>
      </nav>
      {{/account}}
    </header>
    <main>
    {{#notice}}<p class="notice" role="status">{{notice}}</p>{{/notice}}
    {{#error}}<p class="error" role="alert">{{error}}</p>{{/error}}
    {{{body}}}
    </main>
    </body>
    </html>
    """

    static let problem = """
    <h1>{{pageTitle}}</h1>
    <p class="error" role="alert">{{message}}</p>
    <p><a href="{{back}}">Go back</a></p>
    """

    static let styleSheet = StaticAsset(contentType: "text/css; charset=utf-8", body: """
    :root { --ink: #1d2327; --muted: #5f6b73; --line: #d5dbe0; --accent: #2d5f8b; --bad: #9b1c1c; --good: #1f6b3a; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 15px/1.5 system-ui, sans-serif; color: var(--ink); background: #f6f7f8; }
    header.top { display: flex; align-items: center; justify-content: space-between; gap: 1em; padding: .6em 1.2em; background: #243241; color: #fff; }
    header.top a { color: #fff; text-decoration: none; }
    header.top .brand { font-weight: 600; font-size: 1.1em; }
    header.top nav { display: flex; align-items: center; gap: 1em; flex-wrap: wrap; }
    header.top nav a.current { text-decoration: underline; }
    header.top .who { opacity: .8; }
    main { max-width: 60em; margin: 1.5em auto; padding: 0 1.2em; }
    h1 { font-size: 1.5em; margin: .2em 0 .8em; }
    h2 { font-size: 1.15em; margin: 1.6em 0 .5em; }
    section.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 1em 1.2em; margin: 0 0 1.2em; }
    label { display: block; margin: .6em 0 .2em; font-weight: 500; }
    input[type=text], input[type=password], input[type=email], textarea, select { width: 100%; max-width: 36em; padding: .45em .5em; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
    textarea { max-width: none; min-height: 16em; font-family: ui-monospace, monospace; }
    button, .button { display: inline-block; margin-top: .8em; padding: .45em 1.1em; border: 1px solid var(--accent); border-radius: 4px; background: var(--accent); color: #fff; font: inherit; cursor: pointer; text-decoration: none; }
    button.secondary, .button.secondary { background: #fff; color: var(--accent); }
    button.danger { background: var(--bad); border-color: var(--bad); }
    button.link { background: none; border: none; color: inherit; padding: 0; margin: 0; text-decoration: underline; }
    form.inline { display: inline; }
    .notice { background: #e7f4ea; border: 1px solid #b9dcc3; color: var(--good); padding: .6em .9em; border-radius: 4px; }
    .error { background: #fbeaea; border: 1px solid #eab8b8; color: var(--bad); padding: .6em .9em; border-radius: 4px; }
    .hint { color: var(--muted); font-size: .92em; margin: .2em 0; }
    meter.meter { width: 100%; max-width: 36em; height: 1em; }
    .choices label { font-weight: normal; display: flex; gap: .6em; align-items: baseline; }
    .choices .hint { margin-left: 1.8em; }
    table.list { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
    table.list th, table.list td { text-align: left; padding: .45em .6em; border-bottom: 1px solid var(--line); vertical-align: top; }
    table.list th a { color: inherit; }
    table.list tr.unread td { font-weight: 600; }
    table.list td.size, table.list th.size { text-align: right; white-space: nowrap; }
    .toolbar { display: flex; gap: .6em; flex-wrap: wrap; align-items: center; margin: .4em 0 1em; }
    .toolbar form { display: inline; }
    .toolbar button, .toolbar .button { margin-top: 0; }
    .pager { margin: 1em 0; display: flex; gap: 1em; }
    dl.headers { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; margin: 0 0 1em; }
    dl.headers dt { color: var(--muted); }
    dl.headers dd { margin: 0; overflow-wrap: anywhere; }
    pre.body { white-space: pre-wrap; overflow-wrap: anywhere; background: #fff; border: 1px solid var(--line); padding: 1em; font: 14px/1.45 ui-monospace, monospace; }
    iframe.mail { width: 100%; min-height: 28em; border: 1px solid var(--line); background: #fff; }
    code.stamp { display: block; overflow-wrap: anywhere; background: #eef1f4; padding: .4em; }
    ul.attachments { padding-left: 1.2em; }
    """)
}
