"""Exercise claude-bridge over HTTPS with Python's own TLS stack and print what it saw, as JSON.

Usage: tls_probe.py PORT CA_FILE [leave]

Everything goes to https://localhost:PORT with the certificate in CA_FILE as the only trust
anchor. The Rust test (tests/tls.rs) checks the output.
"""

import http.client
import json
import socket
import ssl
import sys
import threading
import time

PORT = int(sys.argv[1])
CTX = ssl.create_default_context(cafile=sys.argv[2])


def conn():
    return http.client.HTTPSConnection("localhost", PORT, context=CTX, timeout=20)


def send(c, channel, content):
    c.request("POST", "/api/send", json.dumps({"channel": channel, "sender": "py", "content": content}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    body = json.loads(r.read())
    assert r.status == 200, (r.status, body)
    return body


def send_later(delay, channel, content):
    def run():
        time.sleep(delay)
        c = conn()
        send(c, channel, content)
        c.close()
    t = threading.Thread(target=run)
    t.start()
    return t


def waits_on_one_connection():
    """Two long-polls in a row on one keep-alive connection, each woken by a send on another:
    the relay must write the answer while the connection's reader waits for the next request."""
    c = conn()
    cursor = send(c, "tls:wait", "start")["id"]
    out = []
    for i in range(2):
        t = send_later(0.3, "tls:wait", f"wake {i}")
        started = time.monotonic()
        c.request("GET", f"/api/wait?channel=tls:wait&since_id={cursor}&timeout_seconds=10")
        r = c.getresponse()
        body = json.loads(r.read())
        t.join()
        out.append({"status": r.status, "seconds": time.monotonic() - started,
                    "contents": [m["content"] for m in body["messages"]]})
        cursor = body["next_cursor"]
    c.close()
    return out


def event_stream():
    """A live event stream over TLS receives messages sent on other connections."""
    raw = socket.create_connection(("localhost", PORT), timeout=10)
    s = CTX.wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"GET /events/channel/tls:events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head = buf.split(b"\r\n", 1)[0].decode()
    senders = [send_later(0.1 * (i + 1), "tls:events", f"event {i}") for i in range(3)]
    seen = []
    deadline = time.monotonic() + 10
    while len(seen) < 3 and time.monotonic() < deadline:
        buf += s.recv(4096)
        seen = [c for c in ["event 0", "event 1", "event 2"] if c.encode() in buf]
    for t in senders:
        t.join()
    s.close()
    return {"status_line": head, "seen": seen}


def plaintext_to_the_tls_port():
    """An HTTP request in clear text to the HTTPS port is refused and the socket ends."""
    s = socket.create_connection(("localhost", PORT), timeout=5)
    s.sendall(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
    started = time.monotonic()
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, socket.timeout) as e:
        got += repr(e).encode()
    s.close()
    return {"seconds": time.monotonic() - started, "clear_text_reply": b"HTTP/1.1" in got}


def handshake_then_vanish():
    """Clients that finish the handshake and go, with or without a request half sent."""
    for partial in [b"", b"POST /api/send HTTP/1.1\r\nHost: localhost\r\nContent-Length: 50\r\n\r\n{"]:
        raw = socket.create_connection(("localhost", PORT), timeout=5)
        s = CTX.wrap_socket(raw, server_hostname="localhost")
        if partial:
            s.sendall(partial)
        socket.socket(fileno=s.detach()).close()  # no close_notify: the socket just goes
    return True


def parallel_sends(clients=16, each=25):
    """Many TLS connections sending at once."""
    errors = []

    def run(n):
        try:
            c = conn()
            for i in range(each):
                send(c, "tls:many", f"{n}-{i}")
            c.close()
        except Exception as e:  # reported, not raised: the Rust side shows it
            errors.append(repr(e))
    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c = conn()
    c.request("GET", "/api/messages?channel=tls:many&limit=500")
    r = c.getresponse()
    listed = json.loads(r.read())["messages"]
    c.close()
    return {"errors": errors, "sent": clients * each, "listed": len(listed),
            "distinct": len({m["preview"] for m in listed})}


def tls_versions():
    """The protocol versions the relay agrees to."""
    out = {}
    for name, version in [("1.2", ssl.TLSVersion.TLSv1_2), ("1.3", ssl.TLSVersion.TLSv1_3)]:
        ctx = ssl.create_default_context(cafile=sys.argv[2])
        ctx.minimum_version = version
        ctx.maximum_version = version
        with socket.create_connection(("localhost", PORT), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                out[name] = s.version()
    return out


def leave_a_long_poll():
    """Start a long-poll, then leave the way a polite TLS client does: close_notify, then FIN."""
    raw = socket.create_connection(("localhost", PORT), timeout=10)
    s = CTX.wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"GET /api/wait?channel=tls:leave&consumer_id=c&timeout_seconds=50 HTTP/1.1\r\n"
              b"Host: localhost\r\n\r\n")
    time.sleep(0.5)
    s.settimeout(1)
    try:
        s = s.unwrap()  # sends close_notify (the relay has no answer to give yet)
    except (ssl.SSLError, OSError):
        pass
    s.close()
    return True


if len(sys.argv) > 3 and sys.argv[3] == "leave":
    print(json.dumps({"left": leave_a_long_poll()}))
    sys.exit(0)

print(json.dumps({
    "waits": waits_on_one_connection(),
    "events": event_stream(),
    "plaintext": plaintext_to_the_tls_port(),
    "vanish": handshake_then_vanish(),
    "parallel": parallel_sends(),
    "versions": tls_versions(),
}))
