#!/usr/bin/env python3
"""Verify a certmail evidence bundle without certmail.

usage: verify_jwcrypto.py BUNDLE.json GATEWAY.pem [MESSAGE.eml [SALT]]

Uses only Debian's python3-jwcrypto (JWS, JWK) and the Python standard
library (hashlib for H(L,M), the hash chain and the RFC 6962 Merkle proofs),
plus python3-cryptography, which jwcrypto depends on, for the Ed25519
signature of the checkpoint (a C2SP signed note, not a JWS).

It checks, as docs/verify.md explains:
  1. the gateway key (PEM, obtained independently) is the bundle's key;
  2. the checkpoint's signature, and what it commits to (size, root);
  3. for each record: the JWS signature (EdDSA) with the gateway key, its
     label/hash/gateway, seq and the prev hash chain, canonical JSON;
  4. each record's RFC 6962 inclusion proof into the checkpoint's root;
  5. each COD or refusal: the recipient's JWS signature with their key
     from the bundle, that it names this item, and that it was signed
     between the item's posting and its deadline and not after the
     gateway recorded it (5 minutes' clock tolerance); each ROD names a
     COD, and for a salted item releases the salt r;
  6. the head (version 2 bundles): the gateway's JWS, typ
     certmail-head+jws, that these are all the item's records as of its
     issued_at: same item, record count, last record's digest, and the
     checkpoint's tree size. A version 1 bundle has no head: it verifies,
     but nothing shows that no records follow its last one;
  7. with MESSAGE: the item's commitment, of the version its COP names
     (data.commitment): 2 is the salted
     H(L,r,M) = SHA-256(len(L) 4-byte BE || L || len(r) 4-byte BE || r || M),
     with r the salt the bundle releases (data.salt of the ROD) or, for an
     item not released, SALT (hex, given to the sender at posting);
     absent is the unsalted H(L,M) = SHA-256(len(L) 4-byte BE || L || M)
     of items posted before salting.
Prints what happened and exits 0, or prints FAIL: reason and exits 1.
"""

import base64
import datetime
import hashlib
import json
import sys

# A COD's signed_at may be this far outside the item's life (clock skew);
# receipts.CODClockTolerance in certmail.
CLOCK_TOLERANCE = datetime.timedelta(minutes=5)

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk, jws


class Fail(Exception):
    pass


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def sha256_hex(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rfc3339(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def field(b):
    """A length-prefixed field of H(L,M) and H(L,r,M)."""
    return len(b).to_bytes(4, "big") + b


def canonical_json(payload, what):
    """Decode a signed payload, which must be canonical JSON (RFC 8785;
    for these payloads, sorted keys and no spaces)."""
    obj = json.loads(payload)
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if canonical != payload:
        raise Fail("%s: payload is not canonical JSON" % what)
    return obj


def verify_jws(compact, key, want_typ):
    """Verify a compact JWS with key; return (header, payload bytes)."""
    token = jws.JWS()
    token.deserialize(compact)
    header = token.jose_header
    if header.get("alg") != "EdDSA" or header.get("typ") != want_typ:
        raise Fail("unexpected JWS header %r" % header)
    token.verify(key, alg="EdDSA")  # raises on a bad signature
    return header, token.payload


# --- RFC 6962 / RFC 9162 Merkle tree hashing ---

def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, path, root):
    """RFC 9162, section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# --- C2SP signed note (the checkpoint) ---

def verify_checkpoint(note, vkey, pub):
    """Check the note's Ed25519 signature by the key vkey names, which must
    be pub; return (origin, size, root)."""
    name, key_hash_hex, key_b64 = vkey.split("+", 2)
    raw_key = base64.b64decode(key_b64)
    if raw_key[0] != 1 or raw_key[1:] != pub:
        raise Fail("the checkpoint's verifier key is not the gateway key")
    key_hash = hashlib.sha256(name.encode() + b"\n" + raw_key).digest()[:4]
    if key_hash.hex() != key_hash_hex:
        raise Fail("note verifier key hash mismatch")
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise Fail("checkpoint has no signature block")
    text += "\n"  # the signed text ends with its last newline
    verified = False
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            raise Fail("malformed signature line %r" % line)
        signer, b64sig = line[2:].rsplit(" ", 1)
        sig = base64.b64decode(b64sig)
        if signer == name and sig[:4] == key_hash:
            Ed25519PublicKey.from_public_bytes(pub).verify(sig[4:], text.encode())
            verified = True
    if not verified:
        raise Fail("no checkpoint signature by %s" % name)
    lines = text.split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    if origin != name:
        raise Fail("checkpoint origin %r is not the key name %r" % (origin, name))
    return origin, size, root


def main(argv):
    if len(argv) not in (3, 4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    bundle = json.load(open(argv[1], encoding="utf-8"))
    pem = open(argv[2], "rb").read()

    # 1. The gateway key, obtained independently, is the bundle's.
    gw = jwk.JWK.from_pem(pem)
    gw_kid = gw.thumbprint()  # RFC 7638, SHA-256: the records' kid
    gw_pub = serialization.load_pem_public_key(pem).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if not any(k["kid"] == gw_kid and b64url_decode(k["x"]) == gw_pub for k in bundle["gateway_keys"]):
        raise Fail("the bundle does not carry the given gateway key %s" % gw_kid)

    parties = {}
    for p in bundle["parties"]:
        key = jwk.JWK(**p["jwk"])
        if key.thumbprint() != p["jwk"]["kid"]:
            raise Fail("party key of %s: kid is not its thumbprint" % p["name"])
        parties[p["jwk"]["kid"]] = (p["name"], key)

    # 2. The checkpoint.
    origin, size, root = verify_checkpoint(bundle["checkpoint"], bundle["note_verifier_key"], gw_pub)
    print("checkpoint: %s, %d records, root %s, signed by the gateway" % (origin, size, base64.b64encode(root).decode()))

    label, item_hash, gateway = bundle["label"], bundle["hash"], bundle["gateway"]
    prev, cods = "", {}
    commitment, salt, posted, deadline = 1, None, None, None
    for i, rec in enumerate(bundle["records"]):
        compact = rec["jws"]
        # 3. Signature, item, chain.
        header, payload = verify_jws(compact, gw, "certmail-evidence+jws")
        if header.get("kid") != gw_kid:
            raise Fail("record %d: kid %s is not the gateway key" % (i, header.get("kid")))
        r = canonical_json(payload, "record %d" % i)
        if r["v"] != 1 or r["label"] != label or r["hash"] != item_hash or r["gateway"] != gateway:
            raise Fail("record %d: names another item or gateway" % i)
        if r["seq"] != i or r["prev"] != prev:
            raise Fail("record %d: hash chain broken (seq %d, prev %s, want %s)" % (i, r["seq"], r["prev"], prev))
        prev = sha256_hex(compact.encode())
        # 4. Inclusion in the checkpoint's tree.
        path = [base64.b64decode(h) for h in rec["inclusion_proof"]]
        if not verify_inclusion(rec["leaf_index"], size, leaf_hash(compact.encode()), path, root):
            raise Fail("record %d: inclusion proof does not lead to the checkpoint's root" % i)
        # 5. The recipient's COD or refusal, and the ROD.
        data, what = r["data"], ""
        if "commitment" in data and (r["type"] != "SubmissionAcceptance" or data["commitment"] != 2):
            raise Fail("record %d: commitment %r, only a COP names one, and only 2" % (i, data["commitment"]))
        if "salt" in data:
            if r["type"] not in ("ContentHandover", "AcceptanceRejectionExpiry") or commitment != 2 or salt is not None:
                raise Fail("record %d: a salt is released once, with the message, for a salted item" % i)
            salt = data["salt"]
            if len(salt) != 64 or salt != bytes.fromhex(salt).hex():
                raise Fail("record %d: salt %r is not 64 lower-case hex digits" % (i, salt))
        if r["type"] in ("ConsignmentAcceptance", "ConsignmentRejection"):
            cod = data["cod"]
            kid = json.loads(b64url_decode(cod.split(".")[0]))["kid"]
            if kid not in parties:
                raise Fail("record %d: COD signed by unknown key %s" % (i, kid))
            name, key = parties[kid]
            _, cod_payload = verify_jws(cod, key, "certmail-cod+jws")
            c = json.loads(cod_payload)
            want = "cod" if r["type"] == "ConsignmentAcceptance" else "refusal"
            if (c["type"], c["label"], c["hash"], c["gateway"]) != (want, label, item_hash, gateway):
                raise Fail("record %d: the %s is for another item" % (i, want))
            if c["recipient"] != name or data["signer"] != name:
                raise Fail("record %d: %s signed by %s's key but names %s" % (i, want, name, c["recipient"]))
            signed_at = rfc3339(c["signed_at"])
            if signed_at < posted - CLOCK_TOLERANCE:
                raise Fail("record %d: the %s was signed at %s, before the item was posted at %s" % (i, want, c["signed_at"], posted))
            if signed_at > deadline + CLOCK_TOLERANCE:
                raise Fail("record %d: the %s was signed at %s, after the deadline %s" % (i, want, c["signed_at"], deadline))
            if signed_at > rfc3339(r["time"]) + CLOCK_TOLERANCE:
                raise Fail("record %d: the %s was signed at %s, after the gateway received it" % (i, want, c["signed_at"]))
            cods[sha256_hex(cod.encode())] = name
            what = "%s signed by %s (%s key) at %s" % (want.upper(), name, c["custody"], c["signed_at"])
        elif r["type"] == "ContentHandover":
            if cods.get(data["cod_hash"]) != data["signer"]:
                raise Fail("record %d: the ROD names no COD of this item" % i)
            if commitment == 2 and "salt" not in data:
                raise Fail("record %d: the ROD of a salted item releases no salt" % i)
            what = "message released to %s" % data["signer"]
            if "salt" in data:
                what += ", with salt r %s" % data["salt"]
        elif r["type"] == "SubmissionAcceptance":
            commitment = data.get("commitment", 1)
            posted, deadline = rfc3339(r["time"]), rfc3339(data["deadline"])
            what = "accepted for %s, deadline %s, %s commitment" % (
                data["recipient"], data["deadline"], "salted H(L,r,M)" if commitment == 2 else "unsalted H(L,M)")
        else:
            what = json.dumps(data, sort_keys=True)
        print("record %d: %s %s %s; gateway signature, chain and inclusion OK" % (i, r["time"], r["type"], what))

    # 6. The head: the gateway's word that no records follow the last one.
    version = bundle["version"]
    if type(version) is not int:  # JSON true would pass for 1 in Python
        raise Fail("bundle version %r is not an integer" % (version,))
    if version == 2:
        if not bundle.get("head"):
            raise Fail("head: a version 2 bundle needs the gateway's signed head, and this one has none")
        header, payload = verify_jws(bundle["head"], gw, "certmail-head+jws")
        if header.get("kid") != gw_kid:
            raise Fail("head: kid %s is not the gateway key" % header.get("kid"))
        h = canonical_json(payload, "head")
        if sorted(h) != ["gateway", "hash", "issued_at", "label", "last", "records", "tree_size"]:
            raise Fail("head: unexpected fields %s" % sorted(h))
        if type(h["records"]) is not int or type(h["tree_size"]) is not int:
            raise Fail("head: records and tree_size must be integers")
        if (h["gateway"], h["label"], h["hash"]) != (gateway, label, item_hash):
            raise Fail("head: signed for another item or gateway")
        if h["records"] != len(bundle["records"]):
            raise Fail("head: the gateway signed %d records, the bundle has %d" % (h["records"], len(bundle["records"])))
        if h["last"] != prev:
            raise Fail("head: the gateway signed %s as the last record, the bundle's last is %s" % (h["last"], prev))
        if h["tree_size"] != size:
            raise Fail("head: signed for log size %d, the checkpoint has size %d" % (h["tree_size"], size))
        print("head: complete: the gateway signed at %s that these are all %d records (log size %d)"
              % (h["issued_at"], h["records"], h["tree_size"]))
    elif version == 1:
        if "head" in bundle:
            raise Fail("head: a version 1 bundle carries none")
        print("head: none (version 1 bundle): completeness not shown, records after the last one may exist")
    else:
        raise Fail("bundle version %r, want 2 (or 1)" % version)

    # 7. The message file, against the commitment of the COP's version.
    if len(argv) >= 4:
        m = open(argv[3], "rb").read()
        lb = label.encode("ascii")
        given = argv[4] if len(argv) == 5 else None
        if commitment == 1:
            if given is not None:
                raise Fail("message: the item's H(L,M) is unsalted: no salt applies")
            name, h = "H(L,M)", sha256_hex(field(lb) + m)
        else:
            if salt is not None and given is not None and given != salt:
                raise Fail("message: the salt given is %s, but the gateway released %s" % (given, salt))
            r_hex = salt if salt is not None else given
            if r_hex is None:
                raise Fail("message: the commitment H(L,r,M) is salted and the bundle releases no salt r: give the sender's")
            name, h = "H(L,r,M)", sha256_hex(field(lb) + field(bytes.fromhex(r_hex)) + m)
        if h != item_hash:
            raise Fail("message: %s is %s, the evidence names %s" % (name, h, item_hash))
        print("message: %s matches" % name)
    print("OK: %d records of %s verified with jwcrypto" % (len(bundle["records"]), label))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as e:  # any failure, including a bad signature, is a FAIL
        print("FAIL: %s: %s" % (type(e).__name__, e))
        sys.exit(1)
