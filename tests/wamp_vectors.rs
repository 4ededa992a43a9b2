//! Golden-byte tests of the WAMP codec against the WAMP project's test vectors in `tests/vectors/`.
//!
//! For every serialization sample and each of JSON, MessagePack and CBOR, every byte variant
//! must decode, match the sample's expected attributes, re-encode to one of the listed variants
//! (the "at least one matches" rule of the vectors' SCHEMA.json, modulo dict key order: see
//! [`matching_variant`]) and decode back to the same thing; and all variants of all serializers
//! must decode a sample to the same `Message`. Samples our `Message` cannot represent are named
//! by `refused::expected_refusal`: they must be refused with exactly that error, and are checked
//! as raw `Value` lists instead. The attribute names map onto `Message` fields in `attributes`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;
use wampmesh::wamp::{CodecError, Message, ParseError, Serializer, Value};

#[path = "vectors/attributes.rs"]
mod attributes;
#[path = "vectors/refused.rs"]
mod refused;

use attributes::{attribute, expected_value};
use refused::{check_raw, decode_raw, encode_raw, expected_refusal};

/// One extracted vector file (see `tests/vectors/extract.py`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    #[allow(dead_code)]
    description: String,
    wamp_message_type: String,
    wamp_message_code: u64,
    #[allow(dead_code)]
    feature: Option<String>,
    #[allow(dead_code)]
    spec_reference: Option<String>,
    samples: Vec<Sample>,
    validation_samples_omitted: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sample {
    description: String,
    serializers: BTreeMap<String, Vec<Variant>>,
    expected_attributes: serde_json::Map<String, Json>,
}

/// One valid byte representation; JSON ones also carry their text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Variant {
    bytes_hex: String,
    bytes: Option<String>,
    #[allow(dead_code)]
    note: Option<String>,
}

/// What a sample decodes to: a `Message`, or for a refused sample the raw list.
#[derive(Debug, PartialEq)]
enum Decoded {
    Message(Message),
    Raw(Value),
}

/// Per-serializer tally, printed at the end.
#[derive(Default, Debug)]
struct Tally {
    messages: usize,
    raw: usize,
    variants: usize,
    exact: usize,
    reordered: usize,
}

fn check_message(
    m: &Message,
    file: &VectorFile,
    attrs: &serde_json::Map<String, Json>,
    context: &str,
) {
    assert_eq!(m.name(), file.wamp_message_type, "{context}: message type");
    for (name, expected) in attrs {
        let got = attribute(m, name)
            .unwrap_or_else(|| panic!("{context}: unknown attribute {name} for {}", m.name()));
        assert_eq!(got, expected_value(name, expected), "{context}: {name}");
    }
}

fn decode(
    serializer: Serializer,
    bytes: &[u8],
    refusal: &Option<ParseError>,
    context: &str,
) -> Decoded {
    let result = serializer.decode(bytes);
    match refusal {
        None => Decoded::Message(result.unwrap_or_else(|e| panic!("{context}: {e}"))),
        Some(expected) => match result {
            Err(CodecError::Parse(got)) if got == *expected => {
                Decoded::Raw(decode_raw(serializer, bytes))
            }
            other => panic!("{context}: expected refusal {expected:?}, got {other:?}"),
        },
    }
}

fn encode(serializer: Serializer, decoded: &Decoded, context: &str) -> Vec<u8> {
    match decoded {
        Decoded::Message(m) => serializer
            .encode(m)
            .unwrap_or_else(|e| panic!("{context}: {e}"))
            .to_vec(),
        Decoded::Raw(v) => encode_raw(serializer, v),
    }
}

/// Whether our encoding is one of the listed variants: `Some(true)` byte for byte,
/// `Some(false)` modulo dict key order. `Dict` is a `BTreeMap`, so we emit keys sorted, while
/// some vectors keep insertion order (e.g. HELLO roles `subscriber, publisher`). Reordering map
/// entries keeps the length and the multiset of bytes, which is what is compared then; that the
/// content is the same is checked by decoding.
fn matching_variant(encoded: &[u8], variants: &[Vec<u8>]) -> Option<bool> {
    if variants.iter().any(|v| v == encoded) {
        return Some(true);
    }
    let mut ours = encoded.to_vec();
    ours.sort_unstable();
    variants
        .iter()
        .any(|v| {
            let mut theirs = v.clone();
            theirs.sort_unstable();
            theirs == ours
        })
        .then_some(false)
}

fn check_sample(file: &VectorFile, sample: &Sample, context: &str, tallies: &mut [Tally; 3]) {
    let attrs = &sample.expected_attributes;
    assert_eq!(
        attrs.get("message_type"),
        Some(&Json::from(file.wamp_message_code)),
        "{context}"
    );
    for name in sample.serializers.keys() {
        assert!(
            Serializer::from_name(name).is_some(),
            "{context}: unknown serializer {name}"
        );
    }
    let refusal = expected_refusal(file.wamp_message_code, attrs);
    let mut first: Option<Decoded> = None;
    for serializer in Serializer::ALL {
        let context = format!("{context} [{}]", serializer.name());
        let variants = sample.serializers.get(serializer.name());
        let variants = variants.unwrap_or_else(|| panic!("{context}: no bytes"));
        let tally = &mut tallies[serializer.index()];
        let mut all_bytes = Vec::new();
        for variant in variants {
            let bytes = hex::decode(&variant.bytes_hex).expect("hex");
            if let Some(text) = &variant.bytes {
                assert_eq!(text.as_bytes(), bytes, "{context}: text and hex differ");
            }
            let decoded = decode(serializer, &bytes, &refusal, &context);
            match &decoded {
                Decoded::Message(m) => check_message(m, file, attrs, &context),
                Decoded::Raw(v) => check_raw(v, attrs, &context),
            }
            let again = decode(
                serializer,
                &encode(serializer, &decoded, &context),
                &refusal,
                &context,
            );
            assert_eq!(again, decoded, "{context}: round trip");
            match &first {
                None => first = Some(decoded),
                Some(f) => assert_eq!(&decoded, f, "{context}: differs from the first decode"),
            }
            all_bytes.push(bytes);
            tally.variants += 1;
        }
        let decoded = first.as_ref().expect("at least one variant");
        match matching_variant(&encode(serializer, decoded, &context), &all_bytes) {
            Some(true) => tally.exact += 1,
            Some(false) => tally.reordered += 1,
            None => panic!("{context}: our encoding matches no listed variant"),
        }
        match decoded {
            Decoded::Message(_) => tally.messages += 1,
            Decoded::Raw(_) => tally.raw += 1,
        }
    }
}

fn vector_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("tests/vectors is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            vector_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

#[test]
fn codec_matches_wamp_test_vectors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut paths = Vec::new();
    vector_files(&root, &mut paths);
    paths.sort();
    assert!(!paths.is_empty(), "no vectors under {}", root.display());
    let mut tallies: [Tally; 3] = Default::default();
    let mut omitted = 0;
    for path in &paths {
        let name = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(path).expect("vector file is readable");
        let file: VectorFile =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!file.samples.is_empty(), "{name}: no samples");
        omitted += file.validation_samples_omitted;
        for sample in &file.samples {
            check_sample(
                &file,
                sample,
                &format!("{name}: {}", sample.description),
                &mut tallies,
            );
        }
    }
    for serializer in Serializer::ALL {
        let t = &tallies[serializer.index()];
        println!(
            "{}: {} samples checked ({} as Message, {} refused and checked as Value), {} byte variants; \
             re-encoding matched a variant exactly {}x, modulo dict key order {}x",
            serializer.name(),
            t.messages + t.raw,
            t.messages,
            t.raw,
            t.variants,
            t.exact,
            t.reordered
        );
        assert!(t.messages > 0, "{}: no samples checked", serializer.name());
    }
    println!(
        "{omitted} validation-only samples (router option checks) are not part of tests/vectors"
    );
}
