#!/usr/bin/env python3
"""Prints HMAC signing vectors for tests/unit/jupyter/wire_test.c, as computed by jupyter_client.

Run once with jupyter_client installed (pip install jupyter_client); the output is pasted into the
test as literals so the test does not need Python.
"""
import hashlib

from jupyter_client.session import Session

KEY = b"5ca1ab1e-feed-4bad-b0a7-c0ffee000001"
PARTS = [
    b'{"msg_id":"a1","msg_type":"execute_request","session":"s1","username":"u","date":"2024-01-02T03:04:05.000006Z","version":"5.4"}',
    b"{}",
    b'{"deletedCells":[]}',
    b'{"code":"SELECT 1","silent":false}',
]
SCHEMES = ["hmac-sha256", "hmac-sha512", "hmac-md5", "hmac-sha1", "hmac-sha3_256", "hmac-blake2b"]

for scheme in SCHEMES:
    digest = scheme.split("-", 1)[1]
    if not hasattr(hashlib, digest):
        continue
    session = Session(key=KEY, signature_scheme=scheme)
    print(f'{{"{scheme}", "{session.sign(PARTS).decode()}"}},')
print(f'empty key: "{Session(key=b"").sign(PARTS).decode()}"')

# A whole message as jupyter_client puts it on the wire (its JSON has spaces after ':' and ',', and
# non-ASCII text stays UTF-8), for message_test.c's "decodes what jupyter_client sends".
session = Session(key=KEY, signature_scheme="hmac-sha256", session="s1", username="ü")
msg = {
    "header": {"msg_id": "m1", "msg_type": "execute_request", "session": "s1", "username": "ü",
               "date": "2024-01-02T03:04:05.000006Z", "version": "5.4"},
    "parent_header": {},
    "metadata": {},
    "content": {"code": "SELECT 'é'", "silent": False},
    "msg_id": "m1",
    "msg_type": "execute_request",
}
for frame in session.serialize(msg, ident=[b"client-1"]):
    print("frame:", frame.decode())
