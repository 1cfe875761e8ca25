//! `memfit audit --from`: a run report's processes (untrusted) as the audit reads them. One
//! process a line, `pid ppid peak_rss started_ms command…`; the servers and their workers
//! are found without a panic, and every worker is a child of its master.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memfit_audit::measured::{MeasuredProcess, MeasuredRun};
use memfit_audit::runtime::python_run::{servers, Measured};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let command: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(' ')
        .map(str::to_string)
        .collect();
    let processes = lines
        .filter_map(|line| {
            let mut words = line.splitn(5, ' ');
            let mut number = || words.next()?.parse::<i64>().ok();
            let (pid, ppid, peak, started) = (number()?, number()?, number()?, number()?);
            Some(MeasuredProcess {
                pid: pid as i32,
                ppid: ppid as i32,
                peak_rss_bytes: (peak as u64) << 20,
                started_ms: started as u64,
                command: words.next().unwrap_or_default().to_string(),
            })
        })
        .collect();
    let run = MeasuredRun {
        file: "run.json".into(),
        command,
        processes,
    };
    let measured = Measured::of(&run);
    for server in servers(&run) {
        assert!(server.worker_peaks.iter().all(|&p| p > 0));
        let _ = (server.worker_bytes(), server.worker_range(), server.app);
    }
    assert!(measured.command.chars().count() <= memfit_audit::measured::MAX_COMMAND_CHARS + 1);
});
