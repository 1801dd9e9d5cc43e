#!/usr/bin/env python3
"""Verifies every DKIM-Signature of a message with dkimpy, an implementation independent of Relay's.

Usage: dkim_verify.py MESSAGE_FILE RECORDS_JSON
RECORDS_JSON maps "selector._domainkey.domain" to the TXT record value; no real DNS is asked.
Prints one JSON line: {"signatures": [{"index", "domain", "selector", "algorithm", "verified", "log"}]}.
Exits 0 only if the message has at least one signature and all of them verify."""
import io
import json
import logging
import re
import sys

import dkim


def main():
    with open(sys.argv[1], "rb") as f:
        message = f.read()
    with open(sys.argv[2], encoding="utf-8") as f:
        records = {name.lower().rstrip("."): value for name, value in json.load(f).items()}

    def dnsfunc(name, timeout=5):
        return records.get(name.decode("ascii").lower().rstrip("."), "").encode("ascii") or None

    # The header section ends at the first empty line; count its DKIM-Signature fields (folded lines start with WSP).
    header = re.split(rb"\r?\n\r?\n", message, maxsplit=1)[0]
    count = len(re.findall(rb"(?im)^dkim-signature[ \t]*:", header))

    results = []
    for index in range(count):
        log = io.StringIO()
        logger = logging.getLogger(f"dkim_verify.{index}")
        logger.handlers = [logging.StreamHandler(log)]
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        verifier = dkim.DKIM(message, logger=logger)
        try:
            verified = bool(verifier.verify(idx=index, dnsfunc=dnsfunc))
        except Exception as error:  # dkimpy raises on some malformed input rather than returning False
            verified = False
            log.write(f"exception: {error!r}\n")
        fields = verifier.signature_fields or {}
        results.append({
            "index": index,
            "domain": fields.get(b"d", b"").decode("ascii", "replace"),
            "selector": fields.get(b"s", b"").decode("ascii", "replace"),
            "algorithm": fields.get(b"a", b"").decode("ascii", "replace"),
            "verified": verified,
            "log": log.getvalue()[-2000:],
        })
    print(json.dumps({"signatures": results}))
    sys.exit(0 if results and all(r["verified"] for r in results) else 1)


if __name__ == "__main__":
    main()
