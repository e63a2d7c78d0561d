//! Fuzzes the key index (`yaml::keys`, which locates diagnostics in files
//! the fast reader took) against the positions the event parser records
//! (`yaml::parse`): on any text it indexes and the loader accepts, every
//! path the parser records is found at the same position or is unsure,
//! and every indexed path is recorded by the parser at that position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackgen::yaml::keys::{Found, index};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(ix) = index(text) else { return };
    let Ok((_, spans)) = stackgen::yaml::parse(text) else { return };
    for (path, pos) in spans.paths() {
        match ix.exact(path) {
            Found::At(p) => assert_eq!(p, pos, "{path} in {text:?}"),
            Found::Unsure => {}
            Found::Absent => panic!("{path} is at {pos:?}, the index says absent, in {text:?}"),
        }
    }
    for (path, pos) in ix.paths() {
        assert_eq!(spans.exact(path), Some(pos), "{path} in {text:?}");
    }
});
