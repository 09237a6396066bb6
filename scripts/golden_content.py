#!/usr/bin/env python3
"""Known answers for Archivist-compatible content addressing, computed independently of the
Rust code (Python standard library only: hashlib, hand-written varints, protobuf and
base58btc), from the rules in shared/ARCHIVIST.md and Archivist's sources.

    python3 scripts/golden_content.py          # (re)write crates/content/tests/golden/content.json
    python3 scripts/golden_content.py --check  # fail if the committed file differs
"""
import hashlib
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "crates/content/tests/golden/content.json"
BLOCK = 65536
MANIFEST, DATA_BLOCK, DATASET_ROOT, SHA256 = 0xCD01, 0xCD02, 0xCD03, 0x12
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def b58(data):
    n = int.from_bytes(data, "big")
    s = ""
    while n:
        n, r = divmod(n, 58)
        s = B58[r] + s
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + s


def cid_bytes(codec, digest):
    return varint(1) + varint(codec) + varint(SHA256) + varint(len(digest)) + digest


def cid_str(codec, digest):
    return "z" + b58(cid_bytes(codec, digest))


def sha(b):
    return hashlib.sha256(b).digest()


# protobuf, as nim-libp2p's minprotobuf writes it: every written field, zeros included.
def pb_varint(field, value):
    return varint(field << 3) + varint(value)


def pb_bytes(field, value):
    return varint(field << 3 | 2) + varint(len(value)) + value


def compress(left, right, key):
    return sha(left + right + bytes([key]))


ZERO = bytes(32)


def tree_layers(leaves):
    layers, bottom = [list(leaves)], True
    while True:
        xs = layers[-1]
        if not bottom and len(xs) == 1:
            return layers
        base = 1 if bottom else 0
        ys = [compress(xs[2 * i], xs[2 * i + 1], base) for i in range(len(xs) // 2)]
        if len(xs) % 2:
            ys.append(compress(xs[-1], ZERO, base + 2))
        layers.append(ys)
        bottom = False


def proof(layers, index):
    path, k, m = [], index, len(layers[0])
    for layer in layers[:-1]:
        j = k ^ 1
        path.append(layer[j] if j < m else ZERO)
        k, m = k >> 1, (m + 1) >> 1
    enc = pb_varint(1, SHA256) + pb_varint(2, index) + pb_varint(3, len(layers[0]))
    for node in path:
        enc += pb_bytes(4, pb_bytes(1, node))
    return enc


def data(n):
    return bytes(i % 251 for i in range(n))


def chunks(b):
    out = []
    for i in range(0, len(b), BLOCK):
        c = b[i:i + BLOCK]
        out.append(c + bytes(BLOCK - len(c)))
    return out


def manifest(tree_root, size, filename=None, mimetype=None):
    header = (pb_bytes(1, cid_bytes(DATASET_ROOT, tree_root)) + pb_varint(2, BLOCK)
              + pb_varint(3, size) + pb_varint(4, DATA_BLOCK) + pb_varint(5, SHA256)
              + pb_varint(6, 2))  # nim-libp2p's CidVersion ordinal of CIDv1
    if filename is not None:
        header += pb_bytes(8, filename.encode())
    if mimetype is not None:
        header += pb_bytes(9, mimetype.encode())
    return pb_bytes(1, header)


def build():
    datasets = []
    for n in [1, 65536, 65537, 5 * 65536 + 123]:
        blocks = chunks(data(n))
        leaves = [sha(b) for b in blocks]
        layers = tree_layers(leaves)
        root = layers[-1][0]
        entry = {
            "size": n,
            "block_cids": [cid_str(DATA_BLOCK, d) for d in leaves],
            "tree_cid": cid_str(DATASET_ROOT, root),
            "proofs": {str(i): proof(layers, i).hex() for i in range(len(leaves))},
            "manifests": [],
        }
        for fn, mt in [("file.bin", "application/octet-stream"), (None, None)]:
            m = manifest(root, n, fn, mt)
            entry["manifests"].append({
                "filename": fn, "mimetype": mt, "bytes": m.hex(),
                "cid": cid_str(MANIFEST, sha(m)),
            })
        datasets.append(entry)
    trees = []
    for count in [1, 2, 3, 5, 8]:
        leaves = [sha(bytes([i])) for i in range(count)]
        layers = tree_layers(leaves)
        trees.append({
            "leaves": [l.hex() for l in leaves],
            "root": layers[-1][0].hex(),
            "proofs": [proof(layers, i).hex() for i in range(count)],
        })
    return {"generator": "scripts/golden_content.py", "datasets": datasets, "trees": trees,
            "blockexc": blockexc()}


# blockexc messages, field by field as archivist/blockexchange/protobuf/message.nim writes them
def bx_address(tree=None, index=None, cid=None):
    if tree is not None:
        return pb_varint(1, 1) + pb_bytes(2, tree) + pb_varint(3, index)
    return pb_varint(1, 0) + pb_bytes(4, cid)


def bx_entry(address, priority, cancel, want_have, send_dont_have):
    return (pb_bytes(1, address) + pb_varint(2, priority) + pb_varint(3, int(cancel))
            + pb_varint(4, int(want_have)) + pb_varint(5, int(send_dont_have)))


def bx_message(entries=(), full=False, payload=(), presences=(), pending=0, account=b"", payment=b""):
    wantlist = b"".join(pb_bytes(1, e) for e in entries) + pb_varint(2, int(full))
    return (pb_bytes(1, wantlist) + b"".join(pb_bytes(3, d) for d in payload)
            + b"".join(pb_bytes(4, p) for p in presences) + pb_varint(5, pending)
            + pb_bytes(6, pb_bytes(1, account)) + pb_bytes(7, pb_bytes(1, payment)))


def blockexc():
    leaves = [sha(bytes([0])), sha(bytes([1]))]
    layers = tree_layers(leaves)
    tree = cid_bytes(DATASET_ROOT, layers[-1][0])
    small = b"hello blockexc"
    small_cid = cid_bytes(DATA_BLOCK, sha(small))
    manifest_cid = cid_bytes(MANIFEST, sha(b"a manifest"))
    wants = bx_message(entries=[
        bx_entry(bx_address(tree=tree, index=1), 1, False, False, True),
        bx_entry(bx_address(cid=manifest_cid), 1, False, True, False),
        bx_entry(bx_address(tree=tree, index=0), 1, True, False, False),
    ])
    leaf_delivery = (pb_bytes(1, cid_bytes(DATA_BLOCK, leaves[1])) + pb_bytes(2, bytes([1]))
                     + pb_bytes(3, bx_address(tree=tree, index=1)) + pb_bytes(4, proof(layers, 1)))
    plain_delivery = (pb_bytes(1, small_cid) + pb_bytes(2, small)
                      + pb_bytes(3, bx_address(cid=small_cid)))
    blocks = bx_message(payload=[leaf_delivery, plain_delivery])
    presences = bx_message(presences=[
        pb_bytes(1, bx_address(tree=tree, index=0)) + pb_varint(2, 0) + pb_bytes(3, bytes([3, 0, 0])),
        pb_bytes(1, bx_address(cid=manifest_cid)) + pb_varint(2, 1) + pb_bytes(3, b""),
    ], pending=1234, account=bytes([0xAB] * 20))
    return {
        "tree_cid": cid_str(DATASET_ROOT, layers[-1][0]),
        "manifest_cid": cid_str(MANIFEST, sha(b"a manifest")),
        "small_cid": cid_str(DATA_BLOCK, sha(small)),
        "wantlist": wants.hex(),
        "deliveries": blocks.hex(),
        "presences": presences.hex(),
    }


def main():
    text = json.dumps(build(), indent=1, sort_keys=True) + "\n"
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            sys.exit(f"{OUT} is not what scripts/golden_content.py produces; run it and commit")
        print("golden: content.json matches its independent generator")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
