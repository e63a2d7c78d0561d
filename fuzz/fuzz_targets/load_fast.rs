//! Fuzzes the fast reader for stack files (`yaml::fast::parse_input`, used
//! by `yaml::parse_value`) against the event loader (`yaml::parse`, which
//! always reads with yaml-rust2 and records positions): both must accept the
//! same texts and give the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let fast = stackgen::yaml::parse_value(text);
    let slow = stackgen::yaml::parse(text).map(|(value, _)| value);
    match (&fast, &slow) {
        // Debug text, so that NaN compares equal to NaN.
        (Ok(f), Ok(s)) => assert_eq!(format!("{f:?}"), format!("{s:?}"), "values differ on {text:?}"),
        (Err(_), Err(_)) => {}
        _ => panic!("one reader accepts, the other refuses {text:?}: fast {fast:?}, event loader {slow:?}"),
    }
});
