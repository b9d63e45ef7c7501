"""Check a Fengqiao case bundle offline: python3 verifier.py BUNDLE [KEY_ID] (needs `cryptography`)."""

import base64, hashlib, json, re, sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "fengqiao-bundle-v1"
STATEMENT = b"fengqiao-case-bundle-v1\n"  # signed before the manifest's JCS bytes

class Invalid(Exception):  # verification failed; the message says what is wrong
    pass

def jcs(value):  # RFC 8785 for these values (strings, integers below 2**53, lists, objects)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

def node(left, right):  # RFC 9162: SHA-256(0x01 || left || right)
    return hashlib.sha256(b"\x01" + left + right).digest()

def leaf(case, version, position, topic, state):  # SHA-256(0x00 || the entry's JCS bytes)
    entry = {"case": case, "position": position, "state_sha256": hashlib.sha256(state).hexdigest(),
             "topic": topic, "version": version}
    return hashlib.sha256(b"\x00" + jcs(entry)).digest()

def unhex(text, what):  # strict: one spelling per value, so no byte can change unseen
    if not isinstance(text, str) or not re.fullmatch("[0-9a-f]{64}", text):
        raise Invalid(f"{what} is not 32 bytes of lowercase hex")
    return bytes.fromhex(text)

def unb64(text, what):
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise Invalid(f"{what} is not base64") from None
    if base64.b64encode(raw).decode() != text:
        raise Invalid(f"{what} is not canonical base64")
    return raw

def check_signature(key, signature, message, failure):
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
    except InvalidSignature:
        raise Invalid(failure) from None

def walk(fn, sn, proof, what):  # RFC 9162's climb up the tree: each proof hash, True if it is on the left
    for p in proof:
        if sn == 0:
            raise Invalid(f"{what} is too long")
        left = fn & 1 or fn == sn
        yield p, left
        if left:
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise Invalid(f"{what} is too short")

def inclusion_root(index, size, leaf_hash, proof):  # RFC 9162 section 2.1.3.2
    if not 0 <= index < size:
        raise Invalid(f"leaf index {index} is outside a tree of {size}")
    r = leaf_hash
    for p, left in walk(index, size - 1, proof, f"the inclusion proof of leaf {index}"):
        r = node(p, r) if left else node(r, p)
    return r

def check_consistency(first, second, first_root, second_root, proof):  # RFC 9162 section 2.1.4.2
    if first == second and not proof and first_root == second_root:
        return
    if not 0 < first < second or not proof:
        raise Invalid(f"no consistency proof from a tree of {first} to one of {second}")
    if first & (first - 1) == 0:
        proof = [first_root, *proof]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c, left in walk(fn, sn, proof[1:], "the consistency proof"):
        fr, sr = (node(c, fr), node(c, sr)) if left else (fr, node(sr, c))
    if fr != first_root or sr != second_root:
        raise Invalid(f"the log of {second} entries does not extend the older tree head of {first}: "
                      "history up to it was rewritten (or the proof is wrong)")

def open_note(note, public_key):  # C2SP signed-note + tlog-checkpoint -> (origin, size, root, extensions)
    text, sep, signatures = note.rpartition("\n\n")
    lines = text.split("\n")
    if not sep or len(lines) < 3 or not note.endswith("\n"):
        raise Invalid("the tree head is not a signed checkpoint note")
    if not re.fullmatch("0|[1-9][0-9]{0,17}", lines[1]):
        raise Invalid("the tree head's size line is not a number")
    key_hash = hashlib.sha256(lines[0].encode() + b"\n\x01" + public_key).digest()[:4]
    for line in signatures.splitlines():
        name, _, signature = line.removeprefix("\u2014 ").partition(" ")
        raw = unb64(signature, "a tree head signature")
        if name == lines[0] and raw[:4] == key_hash:
            check_signature(public_key, raw[4:], (text + "\n").encode(),
                            "the tree head's signature does not verify: it was forged or edited")
            return lines[0], int(lines[1]), unb64(lines[2], "the tree head's root hash"), lines[3:]
    raise Invalid("the tree head is not signed by the bundle's key")

def check_events(bundle, size, root):
    events, signed = bundle["events"], bundle["manifest"]["leaves"]
    if len(events) != len(signed):
        raise Invalid(f"the log signed {len(signed)} events of this case; the bundle holds {len(events)}: "
                      "events were dropped or added")
    for n, event in enumerate(events, start=1):
        what = f"event {n} (version {event['version']}, position {event['position']})"
        if event["version"] != n or n > 1 and event["position"] <= events[n - 2]["position"]:
            raise Invalid(f"{what} is out of place: events were dropped or reordered")
        hashed = leaf(bundle["case"], n, event["position"], event["topic"], unb64(event["state"], what))
        if hashed.hex() != signed[n - 1]:
            raise Invalid(f"{what} is not the event the log signed: it was altered")
        proof = [unhex(p, f"the proof of {what}") for p in event["proof"]]
        if inclusion_root(event["leaf_index"], size, hashed, proof) != root:
            raise Invalid(f"{what} is not in the signed tree head: its inclusion proof fails")

def verify_bundle(data, key_id=None):
    """Check a bundle's bytes; return a summary, or raise Invalid saying what is wrong."""
    try:
        bundle = json.loads(data.decode("utf-8"))
        if jcs(bundle) != data or bundle["format"] != FORMAT:
            raise Invalid(f"not a {FORMAT} bundle in canonical form: it was edited")
        key = unhex(bundle["public_key"], "the public key")
        fingerprint = hashlib.sha256(key).hexdigest()[:16]
        if key_id and key_id != fingerprint:
            raise Invalid(f"the bundle is signed by key {fingerprint}, not by the expected {key_id}")
        origin, size, root, _ = open_note(bundle["tree_head"], key)
        manifest = bundle["manifest"]
        check_signature(key, unb64(bundle["signature"], "the signature"), STATEMENT + jcs(manifest),
                        "the bundle's manifest signature does not verify: the manifest was edited")
        if [manifest["case"], manifest["tree_size"], manifest["root"]] != [
                bundle["case"], size, base64.b64encode(root).decode()]:
            raise Invalid("the manifest is for another case or another tree head")
        check_events(bundle, size, root)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, UnicodeError) as error:
        raise Invalid(f"the bundle is malformed: {type(error).__name__} {error}") from None
    return {"case": bundle["case"], "events": len(bundle["events"]), "origin": origin,
            "tree_size": size, "root": root.hex(), "key_id": fingerprint}

if __name__ == "__main__":
    try:
        summary = verify_bundle(open(sys.argv[1], "rb").read(), *sys.argv[2:3])
    except Invalid as failure:
        print(f"BUNDLE INVALID: {failure}")
        sys.exit(1)
    print(f"bundle OK: {summary['events']} events of case {summary['case']} are in the tree head of "
          f"{summary['origin']} at size {summary['tree_size']}, signed by key {summary['key_id']}")
