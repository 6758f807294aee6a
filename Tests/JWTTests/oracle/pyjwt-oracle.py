#!/usr/bin/env python3
"""An independent JWT implementation (PyJWT + cryptography) for kbridge's JWT tests.

Reads one JSON request on stdin and answers one JSON object on stdout, so a test runs one process for many cases:
  {"sign":   [{"id", "alg", "key" | "key_file", "claims", "headers"?}],
   "verify": [{"id", "alg", "key" | "key_file", "token"}]}
  -> {"signed": {id: token}, "verified": {id: {"ok": true, "claims", "header"} | {"ok": false, "error"}}}
Claims are kept exactly (json keeps big integers; PyJWT's own claim checks are off: the tests choose the claims).
"""
import json
import sys

import jwt


def key_of(case):
    if "key_file" in case:
        with open(case["key_file"], "r", encoding="utf-8") as handle:
            return handle.read()
    return case["key"]


def main():
    request = json.loads(sys.stdin.read())
    signed = {}
    for case in request.get("sign", []):
        signed[case["id"]] = jwt.encode(case["claims"], key_of(case), algorithm=case["alg"], headers=case.get("headers"))
    verified = {}
    options = {"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False, "verify_iss": False}
    for case in request.get("verify", []):
        try:
            claims = jwt.decode(case["token"], key_of(case), algorithms=[case["alg"]], options=options)
            verified[case["id"]] = {"ok": True, "claims": claims, "header": jwt.get_unverified_header(case["token"])}
        except Exception as error:  # every failure is an answer for the test to check
            verified[case["id"]] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    json.dump({"signed": signed, "verified": verified}, sys.stdout)


if __name__ == "__main__":
    main()
