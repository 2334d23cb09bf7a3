//! The `.npy` reader: any bytes decode or fail with an error naming the file; a decoded array
//! encodes to bytes that decode to the same encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mite_data::NpyArray;

fuzz_target!(|data: &[u8]| {
    let Ok(array) = NpyArray::from_bytes(data, "fuzz.npy") else {
        return;
    };
    let bytes = array.to_bytes();
    let again = NpyArray::from_bytes(&bytes, "again.npy")
        .unwrap_or_else(|e| panic!("a written array does not read back: {e}"));
    assert_eq!(again.to_bytes(), bytes, "the round trip changed the array");
});
