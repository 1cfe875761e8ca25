//! The explain scanner and verdict on a log of arbitrary bytes; the first byte picks the
//! exit status the user saw (none, or one of the statuses that change the verdict).
#![no_main]

use libfuzzer_sys::fuzz_target;

const CODES: [Option<i32>; 8] = [
    None,
    Some(0),
    Some(1),
    Some(2),
    Some(127),
    Some(134),
    Some(137),
    Some(143),
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, log)) = data.split_first() else {
        return;
    };
    let code = CODES[usize::from(which) % CODES.len()];
    let explanation = memfit_explain::explain(log, code).expect("reading a slice cannot fail");
    let _ = serde_json::to_string(&explanation).expect("an explanation serializes");
    if let Some(code) = code {
        let _ = memfit_explain::explain_exit_code(code);
    }
});
