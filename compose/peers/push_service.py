"""A Web Push service stand-in for the alert engine's tests. For each browser named by --browsers it makes
what a browser makes when it subscribes (a P-256 key pair and a 16-byte auth secret) and writes the
subscriptions, as PushSubscription.toJSON() gives them, to --subscriptions. Then it accepts pushes on
/push/<browser>: it checks the VAPID authorization (RFC 8292: an ES256 JWT whose audience is this origin,
signed with the key in `k=`), decrypts the body with the browser's keys (RFC 8291, aes128gcm, through
PyPI's http_ece) and appends one JSON line per push to --out. A browser called `gone` answers 410, as a
push service does for an ended subscription.
"""

import argparse
import base64
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def vapid_problem(header: str, origin: str):
    """None when `header` is a valid VAPID authorization for `origin`, else what is wrong."""
    if not header.startswith("vapid "):
        return "no vapid scheme"
    fields = dict(p.strip().split("=", 1) for p in header[6:].split(","))
    token, key = fields.get("t"), fields.get("k")
    if not token or not key:
        return "t= or k= missing"
    head, claims, signature = token.split(".")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(key))
    raw = unb64u(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "bad signature"
    if json.loads(unb64u(head)).get("alg") != "ES256":
        return "not ES256"
    body = json.loads(unb64u(claims))
    if body.get("aud") != origin:
        return f"aud {body.get('aud')} is not {origin}"
    if not body.get("sub", "").startswith(("mailto:", "https://")):
        return "no sub"
    if not time.time() < body.get("exp", 0) <= time.time() + 24 * 3600 + 60:
        return "exp out of range"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--browsers", required=True, help="comma-separated names")
    parser.add_argument("--subscriptions", required=True, help="where to write the subscriptions")
    parser.add_argument("--out", required=True, help="where to append what was pushed")
    args = parser.parse_args()
    origin = f"http://127.0.0.1:{args.port}"

    browsers = {}
    subscriptions = {}
    for name in args.browsers.split(","):
        private = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        public = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        browsers[name] = (private, auth)
        subscriptions[name] = {
            "endpoint": f"{origin}/push/{name}",
            "expirationTime": None,
            "keys": {"p256dh": b64u(public), "auth": b64u(auth)},
        }
    with open(args.subscriptions, "w", encoding="utf-8") as f:
        json.dump(subscriptions, f)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            name = self.path.rsplit("/", 1)[-1]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if name not in browsers:
                self.send_response(404)
                self.end_headers()
                return
            if name == "gone":
                self.send_response(410)
                self.end_headers()
                return
            private, auth = browsers[name]
            record = {
                "browser": name,
                "topic": self.headers.get("Topic"),
                "urgency": self.headers.get("Urgency"),
                "ttl": self.headers.get("TTL"),
                "content_encoding": self.headers.get("Content-Encoding"),
                "vapid_problem": vapid_problem(self.headers.get("Authorization", ""), origin),
            }
            try:
                plain = http_ece.decrypt(body, private_key=private, auth_secret=auth, version="aes128gcm")
                record["payload"] = json.loads(plain)
            except Exception as e:  # noqa: BLE001 - the test reads what went wrong
                record["decrypt_error"] = repr(e)
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            self.send_response(201)
            self.end_headers()

        def log_message(self, *_):
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
