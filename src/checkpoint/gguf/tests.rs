//! The reader and the dequantization against `tests/fixtures/gguf/quants.gguf`, written and dequantized by the
//! Python `gguf` package (`scripts/make_gguf_fixtures.py`), against broken copies of it, and against headers built
//! here.

use super::parse::MAX_ARRAY_DEPTH;
use super::*;
use std::path::PathBuf;

/// GGUF value type ids.
const U8: u32 = 0;
const U32: u32 = 4;
const BOOL: u32 = 7;
const STRING: u32 = 8;
const ARRAY: u32 = 9;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join("gguf").join(name)
}

fn expected() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(fixture("quants.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            (name, view.shape().to_vec(), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A copy of quants.gguf changed by `edit`, and the error reading it gives.
fn open_edited(edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut bytes = std::fs::read(fixture("quants.gguf")).unwrap();
    edit(&mut bytes);
    match GgufFile::from_bytes(Path::new("edited.gguf"), bytes) {
        Ok(_) => panic!("the edited file opened"),
        Err(e) => format!("{e:#}"),
    }
}

/// The header offset of the `field` of tensor `name`: after its name, 0 for the dimension count, 4 + 8 d for
/// dimension d, then the type and the data offset.
fn tensor_field(bytes: &[u8], name: &str) -> usize {
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    let at = bytes.windows(key.len()).position(|w| w == key.as_slice()).expect("tensor name in the header");
    at + key.len()
}

#[test]
fn every_type_dequantizes_as_the_gguf_package_does() {
    let file = GgufFile::open(&fixture("quants.gguf")).unwrap();
    assert_eq!((file.version, file.alignment), (3, 64));
    assert_eq!(file.data_start % 64, 0);
    let expected = expected();
    assert_eq!(expected.len(), file.tensors.len());
    // Types the package can quantize have a `.quantized` case, and every block type has a `.random` one.
    for name in ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"] {
        assert!(expected.iter().any(|(n, _, _)| *n == format!("{name}.random")), "{name}");
    }
    for (name, shape, want) in expected {
        let info = file.tensor(&name).unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!(info.type_name(), name.split('.').next().unwrap());
        let stored = file.stored(info, &name).unwrap();
        assert_eq!(stored.shape, shape, "{name}");
        let got = stored.to_f32();
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert_eq!(worst, 0.0, "{name}: differs from gguf.quants.dequantize by up to {worst}");
        // A row read on its own (as the CPU backend reads rows) gives the same values.
        let mut row = vec![0.0; shape[1]];
        stored.read_f32_range(shape[1], &mut row);
        assert_eq!(row, want[shape[1]..2 * shape[1]], "{name} row 1");
    }
}

#[test]
fn metadata_of_every_type_reads_as_python_reads_it() {
    let file = GgufFile::open(&fixture("quants.gguf")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("quants.json")).unwrap()).unwrap();
    let m = &file.metadata;
    for (key, want) in json["metadata"].as_object().unwrap() {
        let got = m.get(key).unwrap_or_else(|| panic!("{key} is missing")).to_json(usize::MAX);
        match (got.as_f64(), want.as_f64()) {
            (Some(a), Some(b)) if key == "test.f32" => assert_eq!(a as f32, b as f32, "{key}"),
            _ => assert_eq!(&got, want, "{key}"),
        }
    }
    assert_eq!(m.get("test.u64"), Some(&MetaValue::U64((1 << 63) + 5)));
    assert_eq!(m.get("test.i8"), Some(&MetaValue::I8(-100)));
    assert_eq!(m.usize("test.u16").unwrap(), 60000);
    assert_eq!(m.f64("test.u8").unwrap(), 200.0);
    assert_eq!(m.opt_strings("test.strings").unwrap().unwrap(), ["a", "", "ü"]);
    let path = fixture("quants.gguf").display().to_string();
    let err = m.usize("test.string").unwrap_err().to_string();
    assert_eq!(err, format!("{path}: metadata test.string is a string, expected an integer"));
    let err = m.str("test.bool").unwrap_err().to_string();
    assert!(err.contains("metadata test.bool is a bool, expected a string"), "{err}");
    let err = m.usize("test.i8").unwrap_err().to_string();
    assert!(err.contains("metadata test.i8 is -100, expected a non-negative integer"), "{err}");
    let err = m.opt_strings("test.ints").unwrap_err().to_string();
    assert!(err.contains("metadata test.ints[0] is a int32, expected a string"), "{err}");
    let err = m.str("test.absent").unwrap_err().to_string();
    assert!(err.contains("metadata test.absent is missing"), "{err}");
}

#[test]
fn version_2_reads_as_version_3() {
    let mut bytes = std::fs::read(fixture("quants.gguf")).unwrap();
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.gguf");
    std::fs::write(&path, &bytes).unwrap();
    let v2 = GgufFile::open(&path).unwrap();
    let v3 = GgufFile::open(&fixture("quants.gguf")).unwrap();
    assert_eq!(v2.version, 2);
    for (a, b) in v2.tensors.iter().zip(&v3.tensors) {
        assert_eq!(v2.stored(a, "t").unwrap().to_f32(), v3.stored(b, "t").unwrap().to_f32(), "{}", a.name);
    }
}

#[test]
fn broken_files_get_errors_naming_file_and_tensor() {
    let err = open_edited(|b| b.truncate(100));
    assert!(err.contains("edited.gguf is not a valid GGUF file") && err.contains("the file is truncated"), "{err}");
    let err = open_edited(|b| {
        let len = b.len();
        b.truncate(len - 100)
    });
    assert!(err.contains("tensor Q6_K.random") && err.contains("runs past the end of the file"), "{err}");
    let err = open_edited(|b| b[0] = b'X');
    assert!(err.contains("not the GGUF magic"), "{err}");
    let err = open_edited(|b| b[4..8].copy_from_slice(&1u32.to_le_bytes()));
    assert!(err.contains("GGUF version 1 is not supported"), "{err}");
    let err = open_edited(|b| {
        let at = tensor_field(b, "Q4_K.random") + 4 + 2 * 8;
        b[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    });
    assert!(err.contains("tensor Q4_K.random has unknown type id 99"), "{err}");
    let err = open_edited(|b| {
        let at = tensor_field(b, "Q5_K.random") + 4;
        b[at..at + 8].copy_from_slice(&500u64.to_le_bytes());
    });
    assert!(err.contains("tensor Q5_K.random has rows of 500 values, not a whole number of 256-value blocks"), "{err}");
    let err = open_edited(|b| {
        let at = tensor_field(b, "F32.quantized") + 4 + 2 * 8 + 4;
        b[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    });
    assert!(err.contains("tensor F32.quantized") && err.contains("runs past the end"), "{err}");
    let err = open_edited(|b| {
        let at = tensor_field(b, "F32.quantized") + 4 + 2 * 8 + 4;
        b[at..at + 8].copy_from_slice(&8u64.to_le_bytes());
    });
    assert!(err.contains("tensor F32.quantized starts at data offset 8, not a multiple of the alignment 64"), "{err}");
}

#[test]
fn unsupported_types_are_named_when_used() {
    // Q2_K (id 10) is a type ggml defines that glov-cuda does not read: the file opens, the tensor does not.
    let mut bytes = std::fs::read(fixture("quants.gguf")).unwrap();
    let at = tensor_field(&bytes, "Q4_K.random") + 4 + 2 * 8;
    bytes[at..at + 4].copy_from_slice(&10u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q2k.gguf");
    std::fs::write(&path, &bytes).unwrap();
    let file = GgufFile::open(&path).unwrap();
    let info = file.tensor("Q4_K.random").unwrap();
    assert_eq!(info.type_name(), "Q2_K");
    let err = file.stored(info, "w").unwrap_err().to_string();
    assert!(
        err.contains("tensor Q4_K.random of") && err.contains("has type Q2_K, which glov-cuda does not read"),
        "{err}"
    );
}

#[test]
fn sizes_that_overflow_are_refused() {
    // 2^62 f32 values would be 2^64 bytes, which wrap to 0 unchecked.
    let err = open_edited(|b| {
        let at = tensor_field(b, "F32.quantized") + 4;
        b[at..at + 16].copy_from_slice(&[(1u64 << 31).to_le_bytes(), (1u64 << 31).to_le_bytes()].concat());
    });
    assert!(err.contains("tensor F32.quantized has dimensions [2147483648, 2147483648], too many values"), "{err}");
    // A zero dimension does not excuse the others: their product must fit an int64 too.
    let err = open_edited(|b| {
        let at = tensor_field(b, "F32.quantized") + 4;
        b[at..at + 16].copy_from_slice(&[0u64.to_le_bytes(), u64::MAX.to_le_bytes()].concat());
    });
    assert!(err.contains("tensor F32.quantized has dimensions [0, 18446744073709551615], too many values"), "{err}");
    let err = open_edited(|b| {
        let at = tensor_field(b, "F32.quantized") + 4 + 2 * 8 + 4;
        b[at..at + 8].copy_from_slice(&u64::MAX.wrapping_sub(63).to_le_bytes());
    });
    assert!(err.contains("tensor F32.quantized") && err.contains("runs past the end"), "{err}");
}

/// A GGUF header with no tensors and the metadata `entries` (key, value type, value bytes).
fn header(entries: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend((entries.len() as u64).to_le_bytes());
    for (key, value_type, value) in entries {
        bytes.extend(string(key));
        bytes.extend(value_type.to_le_bytes());
        bytes.extend(value);
    }
    bytes
}

fn string(s: &str) -> Vec<u8> {
    [&(s.len() as u64).to_le_bytes()[..], s.as_bytes()].concat()
}

/// An array value: its item type, count and item bytes.
fn array(item_type: u32, count: u64, items: &[u8]) -> Vec<u8> {
    [&item_type.to_le_bytes()[..], &count.to_le_bytes(), items].concat()
}

/// An array of arrays `depth` deep whose innermost array holds the uint32 7.
fn nested(depth: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (1..depth).flat_map(|_| array(ARRAY, 1, &[])).collect();
    bytes.extend(array(U32, 1, &7u32.to_le_bytes()));
    bytes
}

fn read(entries: &[(&str, u32, Vec<u8>)]) -> Result<GgufFile> {
    GgufFile::from_bytes(Path::new("m.gguf"), header(entries))
}

#[test]
fn metadata_arrays_are_typed_vectors() {
    let strings = [string("a"), string(""), string("ü")].concat();
    let file = read(&[
        ("bytes", ARRAY, array(U8, 3, &[1, 2, 3])),
        ("strings", ARRAY, array(STRING, 3, &strings)),
        ("flags", ARRAY, array(BOOL, 2, &[1, 0])),
        ("nested", ARRAY, nested(MAX_ARRAY_DEPTH)),
    ])
    .unwrap();
    let m = &file.metadata;
    assert_eq!(m.get("bytes"), Some(&MetaValue::Array(MetaArray::U8(vec![1, 2, 3]))));
    assert_eq!(m.opt_strings("strings").unwrap().unwrap(), ["a", "", "ü"]);
    assert_eq!(m.opt_bools("flags").unwrap().unwrap(), [true, false]);
    assert_eq!(m.opt_numbers("bytes").unwrap().unwrap(), [1.0, 2.0, 3.0]);
    let err = m.opt_numbers("strings").unwrap_err().to_string();
    assert_eq!(err, "m.gguf: metadata strings[0] is a string, expected a number");
    assert_eq!(m.get("nested").unwrap().to_json(8), serde_json::json!([[[7]]]));
}

#[test]
fn metadata_arrays_are_bounded_by_the_file() {
    let err = format!("{:#}", read(&[("deep", ARRAY, nested(MAX_ARRAY_DEPTH + 1))]).err().unwrap());
    assert!(
        err.contains("m.gguf is not a valid GGUF file: metadata deep[0][0] nests arrays more than 3 deep"),
        "{err}"
    );
    // Nesting far past any stack is refused as soon as the limit is reached.
    let err = format!("{:#}", read(&[("deeper", ARRAY, nested(200_000))]).err().unwrap());
    assert!(err.contains("metadata deeper[0][0] nests arrays"), "{err}");
    for (item_type, count) in [(U8, 1u64 << 62), (U32, 1 << 62), (STRING, 1 << 60), (ARRAY, 1 << 40), (U32, u64::MAX)] {
        let err = format!("{:#}", read(&[("huge", ARRAY, array(item_type, count, &[0; 64]))]).err().unwrap());
        assert!(err.contains(&format!("metadata huge claims {count} items")), "{item_type}: {err}");
    }
    let err = format!("{:#}", read(&[("flags", ARRAY, array(BOOL, 3, &[1, 0, 2]))]).err().unwrap());
    assert!(err.contains("metadata flags[2] is a bool stored as 2, expected 0 or 1"), "{err}");
    let err = format!("{:#}", read(&[("odd", ARRAY, array(13, 1, &[0; 8]))]).err().unwrap());
    assert!(err.contains("metadata odd is an array of unknown value type 13"), "{err}");
}
