#!/usr/bin/env python3
"""Submits one message to Relay with Python's smtplib, as an application would.

  submit.py --port P --mode starttls|ssl --password KEY --from A --to B [--to C] --sent FILE
            [--attachment] [--utf8] [--pause-before-data FLAGFILE]

Writes the exact bytes it handed to smtplib (after smtplib's own line-ending normalisation) to --sent,
and prints the final server reply as "REPLY <code> <text>". Exits 0 when the message was accepted.
With --pause-before-data, prints "READY-FOR-DATA" after RCPT and waits until FLAGFILE exists."""
import argparse
import os
import smtplib
import ssl
import sys
import time
from email.message import EmailMessage
from email import policy

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--mode", choices=["starttls", "ssl"], required=True)
parser.add_argument("--password", required=True)
parser.add_argument("--from", dest="sender", required=True)
parser.add_argument("--to", action="append", required=True)
parser.add_argument("--sent", required=True)
parser.add_argument("--attachment", action="store_true")
parser.add_argument("--utf8", action="store_true")
parser.add_argument("--pause-before-data")
args = parser.parse_args()

msg = EmailMessage(policy=policy.SMTP)
msg["From"] = ("Zoë Sender <%s>" if args.utf8 else "Sender <%s>") % args.sender
msg["To"] = ", ".join(args.to)
msg["Subject"] = "Grüße aus Köln ✓" if args.utf8 else "Hello from smtplib"
msg["Message-ID"] = "<smtplib-%d@client.test>" % os.getpid()
msg["Date"] = "Sun, 29 Nov 2026 01:00:00 +0000"
msg.set_content(("Hällo wörld — ünïcode body\n" if args.utf8 else "Hello world\n") + ".leading dot line\n..two\n")
if args.attachment:
    msg.add_attachment(bytes(range(256)) * 40, maintype="application", subtype="octet-stream", filename="data.bin")
data = msg.as_bytes(policy=policy.SMTP)
with open(args.sent, "wb") as f:
    f.write(data)

context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
if args.mode == "ssl":
    client = smtplib.SMTP_SSL("127.0.0.1", args.port, context=context, timeout=30)
else:
    client = smtplib.SMTP("127.0.0.1", args.port, timeout=30)
    client.starttls(context=context)
client.ehlo("client.test")
client.login("any-user", args.password)
try:
    if args.pause_before_data:
        code, text = client.mail(args.sender)
        assert code == 250, (code, text)
        for rcpt in args.to:
            code, text = client.rcpt(rcpt)
            assert code == 250, (code, text)
        print("READY-FOR-DATA", flush=True)
        while not os.path.exists(args.pause_before_data):
            time.sleep(0.05)
        code, text = client.data(data)
    else:
        client.sendmail(args.sender, args.to, data)
        code, text = 250, b"accepted"
    print("REPLY %d %s" % (code, text.decode(errors="replace")), flush=True)
    sys.exit(0 if code == 250 else 1)
except smtplib.SMTPResponseException as error:
    print("REPLY %d %s" % (error.smtp_code, error.smtp_error.decode(errors="replace")), flush=True)
    sys.exit(1)
except smtplib.SMTPRecipientsRefused as error:
    code, text = list(error.recipients.values())[0]
    print("REPLY %d %s" % (code, text.decode(errors="replace")), flush=True)
    sys.exit(1)
finally:
    try:
        client.quit()
    except Exception:
        pass
