//! Fuzzes the fast parser that reads rendered YAML back: whenever its fast
//! path accepts a text, serde_yaml must accept it too and give the same
//! value. (When it declines, `parse` is serde_yaml itself.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(fast) = stackgen::yaml::fast::parse_subset(text) {
        match serde_yaml::from_str::<serde_json::Value>(text) {
            Ok(slow) => assert_eq!(fast, slow, "fast parser disagrees with serde_yaml on {text:?}"),
            Err(e) => panic!("fast parser accepted what serde_yaml rejects ({e}): {text:?}"),
        }
    }
});
