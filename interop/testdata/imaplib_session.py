#!/usr/bin/env python3
"""Drive certmail with Python's imaplib, as a scripted mail client would.

Usage: imaplib_session.py HOST PORT USER PASSWORD
Expects INBOX to hold exactly two messages delivered by the Go test, with
subjects "first" and "second". Exits non-zero with a message on failure.
"""
import imaplib
import socket
import sys
import time


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)


def ok(resp, what):
    typ, data = resp
    check(typ == "OK", "%s: %s %r" % (what, typ, data))
    return data


host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

m = imaplib.IMAP4(host, port)
caps = m.capabilities
check("IMAP4REV1" in caps and "AUTH=PLAIN" in caps, "capabilities %r" % (caps,))

# A wrong password is refused, and the connection survives.
try:
    m.login(user, "wrong-" + password)
    check(False, "login with a wrong password succeeded")
except imaplib.IMAP4.error:
    pass
ok(m.login(user, password), "login")
# imaplib keeps the pre-login list; ask again, as clients do after LOGIN.
caps = ok(m.capability(), "capability")[0].decode().upper().split()
for want in ("IDLE", "MOVE", "UIDPLUS", "SPECIAL-USE", "ESEARCH", "NAMESPACE"):
    check(want in caps, "post-login capabilities lack %s: %r" % (want, caps))

names = [line.decode() for line in ok(m.list(), "list")]
for want in ("INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"):
    check(any(n.endswith(' "%s"' % want) or n.endswith(" %s" % want) for n in names), "LIST lacks %s: %r" % (want, names))
check(any("\\Trash" in n for n in names), "no \\Trash special use in %r" % names)

data = ok(m.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)"), "status")
check(b"MESSAGES 2" in data[0] and b"UNSEEN 2" in data[0], "status %r" % data)

count = ok(m.select("INBOX"), "select")
check(count == [b"2"], "select count %r" % count)

data = ok(m.fetch("1:2", "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), "fetch headers")
subjects = [part[1] for part in data if isinstance(part, tuple)]
check(b"Subject: first" in subjects[0] and b"Subject: second" in subjects[1], "subjects %r" % subjects)

data = ok(m.fetch("1", "(BODY[])"), "fetch body")
check(b"body of first" in data[0][1], "body %r" % data)
data = ok(m.fetch("1", "(FLAGS)"), "fetch flags")
check(b"\\Seen" in data[0], "BODY[] did not set \\Seen: %r" % data)

ok(m.store("2", "+FLAGS", "(\\Flagged $Important)"), "store")
data = ok(m.fetch("2", "(FLAGS)"), "fetch flags 2")
check(b"\\Flagged" in data[0] and b"$Important" in data[0], "flags %r" % data)

data = ok(m.search(None, "UNSEEN"), "search unseen")
check(data == [b"2"], "search UNSEEN %r" % data)
data = ok(m.search(None, "SUBJECT", "first"), "search subject")
check(data == [b"1"], "search SUBJECT %r" % data)
data = ok(m.search(None, "BODY", "second"), "search body")
check(data == [b"2"], "search BODY %r" % data)
data = ok(m.uid("SEARCH", None, "ALL"), "uid search")
check(data == [b"1 2"], "UID SEARCH ALL %r" % data)

ok(m.copy("1", "Archive"), "copy")
data = ok(m.status("Archive", "(MESSAGES)"), "status archive")
check(b"MESSAGES 1" in data[0], "archive %r" % data)

msg = b"From: py@example.org\r\nTo: %s@example.org\r\nSubject: appended\r\n\r\nappended body\r\n" % user.encode()
data = ok(m.append("Drafts", "(\\Draft)", imaplib.Time2Internaldate(time.time()), msg), "append")
check(b"APPENDUID" in data[0], "append response %r" % data)

ok(m.store("1", "+FLAGS", "(\\Deleted)"), "store deleted")
data = ok(m.expunge(), "expunge")
check(data == [b"1"], "expunge %r" % data)
count = ok(m.select("INBOX"), "reselect")
check(count == [b"1"], "after expunge %r" % count)

# IDLE by hand: imaplib has no IDLE, so speak the protocol directly.
tag = m._new_tag().decode()
m.send(("%s IDLE\r\n" % tag).encode())
line = m.readline()
check(line.startswith(b"+"), "IDLE continuation %r" % line)
# Ask the Go test (listening on stdin/stdout) to deliver a message now.
print("IDLING", flush=True)
m.sock.settimeout(10)
got = b""
deadline = time.time() + 10
while b"EXISTS" not in got and time.time() < deadline:
    got += m.readline()
check(b"* 2 EXISTS" in got, "IDLE saw %r" % got)
m.send(b"DONE\r\n")
line = m.readline()
while not line.startswith(tag.encode()):
    line = m.readline()
check(b"OK" in line, "IDLE completion %r" % line)
ok(m.noop(), "noop after idle")

ok(m.logout(), "logout") if False else m.logout()
print("PASS")
