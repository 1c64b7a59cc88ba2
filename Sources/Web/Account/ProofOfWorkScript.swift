/// The sign-up page's optional helper: when JavaScript is on, it mints the hashcash stamp for the
/// chosen address in the browser before the form is sent; with JavaScript off, the page asks for
/// a stamp pasted from `postern hashcash mint`. SHA-1 is written out here because WebCrypto is
/// only offered to "secure contexts", which a plain-HTTP .i2p site is not.
enum ProofOfWorkScript {
    static let asset = StaticAsset(contentType: "text/javascript; charset=utf-8", body: #"""
    "use strict";
    (function () {
      function sha1(bytes) {
        var h0 = 0x67452301, h1 = 0xEFCDAB89, h2 = 0x98BADCFE, h3 = 0x10325476, h4 = 0xC3D2E1F0;
        var length = bytes.length, words = ((length + 8) >> 6) + 1, w = new Int32Array(words * 16), i;
        for (i = 0; i < length; i++) w[i >> 2] |= bytes[i] << (24 - (i & 3) * 8);
        w[length >> 2] |= 0x80 << (24 - (length & 3) * 8);
        w[words * 16 - 1] = length * 8;
        var m = new Int32Array(80);
        for (var block = 0; block < w.length; block += 16) {
          for (i = 0; i < 16; i++) m[i] = w[block + i];
          for (i = 16; i < 80; i++) { var x = m[i - 3] ^ m[i - 8] ^ m[i - 14] ^ m[i - 16]; m[i] = (x << 1) | (x >>> 31); }
          var a = h0, b = h1, c = h2, d = h3, e = h4, f, k, t;
          for (i = 0; i < 80; i++) {
            if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
            else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
            else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6; }
            t = (((a << 5) | (a >>> 27)) + f + e + k + m[i]) | 0;
            e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
          }
          h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0; h4 = (h4 + e) | 0;
        }
        return [h0, h1, h2, h3, h4];
      }
      function zeroBits(hash, bits) {
        for (var i = 0; i < 5 && bits > 0; i++) {
          var need = Math.min(32, bits);
          if (need === 32 ? hash[i] !== 0 : (hash[i] >>> (32 - need)) !== 0) return false;
          bits -= need;
        }
        return true;
      }
      function ascii(text) { var out = new Array(text.length); for (var i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0x7f; return out; }
      function two(n) { return (n < 10 ? "0" : "") + n; }
      function randomText() {
        var alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", out = "", r = new Uint8Array(16);
        window.crypto.getRandomValues(r);
        for (var i = 0; i < 16; i++) out += alphabet[r[i] & 63];
        return out;
      }
      var form = document.getElementById("signup");
      if (!form) return;
      var bits = parseInt(form.getAttribute("data-bits"), 10), domain = form.getAttribute("data-domain");
      var stamp = document.getElementById("stamp"), status = document.getElementById("pow-status"), working = false;
      form.addEventListener("submit", function (event) {
        if (stamp.value.trim() !== "" || working) { if (working) event.preventDefault(); return; }
        event.preventDefault();
        var name = document.getElementById("name").value.trim().toLowerCase();
        if (name === "") { status.textContent = "Choose a name first."; return; }
        working = true;
        var now = new Date();
        var prefix = "1:" + bits + ":" + two(now.getUTCFullYear() % 100) + two(now.getUTCMonth() + 1) + two(now.getUTCDate()) +
          ":" + name + "@" + domain + "::" + randomText() + ":";
        var prefixBytes = ascii(prefix), counter = 0;
        status.textContent = "Working on the proof of work…";
        function step() {
          for (var n = 0; n < 20000; n++, counter++) {
            var bytes = prefixBytes.concat(ascii(String(counter)));
            if (zeroBits(sha1(bytes), bits)) {
              stamp.value = prefix + counter;
              status.textContent = "Done.";
              working = false;
              form.submit();
              return;
            }
          }
          status.textContent = "Working on the proof of work… " + counter + " tries";
          setTimeout(step, 0);
        }
        setTimeout(step, 0);
      });
    })();
    """#)
}
