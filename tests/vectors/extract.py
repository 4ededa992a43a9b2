#!/usr/bin/env python3
"""Regenerates tests/vectors/ from ../shared/wamp-vectors (the WAMP project's test vectors).

Keeps, per message file: description, message type and code, feature, spec reference, and per
serialization sample: the json/msgpack/cbor byte variants (as hex; JSON also as text) and the
expected attributes. Drops ubjson/flatbuffers bytes, the embedded validation/construction code
snippets, and the validation-only samples (raw `wmsg` lists without bytes; their number is
recorded as `validation_samples_omitted`). Multi-message vectors are copied only if a step carries
serialized bytes. Run from anywhere: `python3 tests/vectors/extract.py`.
"""

import base64
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE.parents[2] / "shared" / "wamp-vectors"
SERIALIZERS = ("json", "msgpack", "cbor")


def variant(serializer, raw):
    """One byte representation, normalised to hex; checks that given forms agree."""
    forms = []
    if "bytes_hex" in raw:
        forms.append(bytes.fromhex(raw["bytes_hex"]))
    if "bytes_base64" in raw:
        forms.append(base64.b64decode(raw["bytes_base64"]))
    if "bytes" in raw:
        forms.append(raw["bytes"].encode("utf-8"))
    if not forms or any(f != forms[0] for f in forms):
        sys.exit(f"inconsistent or missing bytes in {raw!r}")
    out = {"bytes_hex": forms[0].hex()}
    if serializer == "json":
        out["bytes"] = forms[0].decode("utf-8")
    if "note" in raw:
        out["note"] = raw["note"]
    return out


def single_message(data):
    samples, omitted = [], 0
    for sample in data["samples"]:
        if "serializers" not in sample:
            omitted += 1
            continue
        serializers = {
            name: [variant(name, v) for v in sample["serializers"][name]]
            for name in SERIALIZERS
            if name in sample["serializers"]
        }
        samples.append(
            {
                "description": sample["description"],
                "serializers": serializers,
                "expected_attributes": sample["expected_attributes"],
            }
        )
    out = {
        key: data[key]
        for key in (
            "description",
            "wamp_message_type",
            "wamp_message_code",
            "feature",
            "spec_reference",
        )
        if key in data
    }
    out["samples"] = samples
    out["validation_samples_omitted"] = omitted
    return out if samples else None


def main():
    if not SOURCE.is_dir():
        sys.exit(f"not found: {SOURCE}")
    for old in HERE.rglob("*.json"):
        old.unlink()
    for path in sorted(SOURCE.rglob("*.json")):
        if path.name == "SCHEMA.json":
            continue
        relative = path.relative_to(SOURCE)
        data = json.loads(path.read_text(encoding="utf-8"))
        if "samples" in data:
            out = single_message(data)
        elif any("serializers" in step for step in data.get("sequence", [])):
            sys.exit(f"{relative}: multi-message vector with bytes; extend this script")
        else:
            out = None
        if out is None:
            print(f"skipped {relative}: no serialized bytes")
            continue
        target = HERE / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(out, indent=2, ensure_ascii=False) + "\n"
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target.relative_to(HERE.parents[1])}: {len(out['samples'])} samples")


if __name__ == "__main__":
    main()
