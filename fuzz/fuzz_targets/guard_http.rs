//! The guard's HTTP request parser on arbitrary bytes, as a client on the network sends them
//! (`memfit_guard::http::parse_request`): no panic, and what it accepts stays within its
//! bounds and slices the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memfit_guard::http::{parse_request, MAX_HEAD, MAX_HEADERS};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = parse_request(data) {
        assert!(request.headers.len() <= MAX_HEADERS);
        let head = &data[..data.len().min(MAX_HEAD)];
        let inside = |s: &str| {
            let (start, end) = (head.as_ptr() as usize, head.as_ptr() as usize + head.len());
            let p = s.as_ptr() as usize;
            s.is_empty() || (p >= start && p + s.len() <= end)
        };
        assert!(inside(request.method) && inside(request.path) && inside(request.version));
        for (name, value) in &request.headers {
            assert!(inside(name) && inside(value));
            let _ = request.header_values(name).count();
        }
    }
});
