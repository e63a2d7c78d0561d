//! Fuzzes the parallel reader of large stack files (`yaml::split`, used by
//! `yaml::parse_value` from 256 KiB on) against the event loader: whenever
//! it splits a text and gives a value, parsing the whole text on one thread
//! must give the same value (never an error).
//!
//! The split needs a file with at least 64 services, which random bytes
//! never form, so the input is a template: the text before the first line
//! `===` is the body of every service (after its `  svc-NNN:` line, `{i}`
//! replaced by the service's number), the text after it follows the
//! services. 70 services are written, each from the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let (body, tail) = input.split_once("\n===\n").unwrap_or((input, ""));
    let mut text = String::from("name: big\nservices:\n");
    for i in 0..70 {
        text.push_str(&format!("  svc-{i:03}:\n"));
        text.push_str(&body.replace("{i}", &i.to_string()));
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    text.push_str(tail);
    if let Some(split) = stackgen::yaml::parse_split(&text) {
        match stackgen::yaml::parse(&text) {
            Ok((one, _)) => assert_eq!(split, one, "the split parse differs on {text:?}"),
            Err(e) => panic!("the split parse accepts what one thread refuses ({}): {text:?}", e.message),
        }
    }
});
