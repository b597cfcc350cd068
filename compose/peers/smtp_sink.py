"""A real SMTP server (aiosmtpd, from PyPI) that accepts every message and appends it, parsed, as one JSON
line to --out: envelope sender and recipients, Subject, Message-ID, and the text and HTML parts. The alert
engine's email tests read that file."""

import argparse
import asyncio
import email
import email.policy
import json

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {"text/plain": None, "text/html": None}
        for part in msg.walk():
            if part.get_content_type() in parts and not part.is_multipart():
                parts[part.get_content_type()] = part.get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "content_type": msg.get_content_type(),
            "text": parts["text/plain"],
            "html": parts["text/html"],
        }
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 Message accepted"


async def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True, help="file the received messages are appended to")
    args = parser.parse_args()
    controller = Controller(Sink(args.out), hostname="127.0.0.1", port=args.port)
    controller.start()
    try:
        await asyncio.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    asyncio.run(main())
