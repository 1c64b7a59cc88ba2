"""The HTTP client the web tests share: keeps cookies like a browser, one connection per request,
URL-encoded and multipart form posts. Responses come back as (response, bytes)."""
from __future__ import annotations

import http.client
import re
import urllib.parse
import uuid

from harness import HOST


class WebClient:
    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        for value in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
            if "Max-Age=0" in value:
                self.cookies.pop(name, None)
        conn.close()
        return resp, data

    def post_form(self, path: str, fields: dict, raw: bytes | None = None):
        body = raw if raw is not None else urllib.parse.urlencode(fields).encode()
        return self.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})

    def post_multipart(self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]]):
        """multipart/form-data as a browser sends it: fields, then files (name -> (filename, bytes))."""
        boundary = "----postern-" + uuid.uuid4().hex
        parts = []
        for name, value in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                         + value.encode() + b"\r\n")
        for name, (filename, data) in files.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                         f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("POST", path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def csrf(self, path: str) -> str:
        _, page = self.request("GET", path)
        return re.search(r'name="csrf" value="([^"]+)"', page.decode("utf-8", "replace")).group(1)
