//! Beyond Node: what explain tells apart for the JVM, Python worker pools, Go and Rust builds,
//! and the SIGKILLs that a time limit or an eviction sends. The corpus (tests/corpus) holds the
//! real logs; these pin the distinctions one line at a time.

use memfit_explain::{explain, Explanation, Kind, SubReason, Verdict};

fn explain_str(log: &str) -> Explanation {
    explain(log.as_bytes(), None).unwrap()
}

fn commands(e: &Explanation) -> Vec<String> {
    e.remedies
        .iter()
        .flat_map(|r| r.commands.iter().cloned())
        .collect()
}

#[test]
fn a_java_out_of_memory_error_is_not_a_python_memory_error() {
    let e = explain_str("java.lang.OutOfMemoryError: unable to create native thread: possibly out of memory or process/resource limits reached\n");
    assert!(
        !e.signatures_matched
            .iter()
            .any(|s| s == "python-memoryerror"),
        "{:?}",
        e.signatures_matched
    );
    assert_eq!(e.kind, Kind::JvmNative);
    let e = explain_str("numpy.core._exceptions._ArrayMemoryError: Unable to allocate 58.0 GiB for an array with shape (176351, 176460) and data type uint16\n");
    assert_eq!(e.kind, Kind::PythonMemoryerror);
}

#[test]
fn a_sigkill_gunicorn_sent_for_a_worker_timeout_is_not_memory() {
    let log = "[2024-01-19 00:48:31 +0000] [2973] [CRITICAL] WORKER TIMEOUT (pid:2976)\n\
               [2024-01-19 00:48:32 +0000] [2973] [ERROR] Worker (pid:2976) was sent SIGKILL! Perhaps out of memory?\n";
    let e = explain_str(log);
    assert_eq!(e.verdict, Verdict::NotOom);
    assert_eq!(e.sub_reason, Some(SubReason::TimeoutKill));
    assert!(commands(&e).iter().any(|c| c.contains("--timeout")));
    // Without the timeout, the same SIGKILL is the OOM killer's.
    let e = explain_str(log.lines().nth(1).unwrap());
    assert_eq!(e.verdict, Verdict::Oom);
    assert_eq!(e.kind, Kind::WorkerKilled);
    assert!(commands(&e).iter().any(|c| c.contains("--max-requests")));
}

#[test]
fn a_celery_hard_time_limit_kill_is_not_memory() {
    let e = explain_str(
        "[   ERROR/MainThread] Hard time limit (60s) exceeded for lava-test[2f4b]\n\
         [   ERROR/MainThread] Process 'Worker-1' pid:51721 exited with 'signal 9 (SIGKILL)'\n",
    );
    assert_eq!(e.sub_reason, Some(SubReason::TimeoutKill));
}

#[test]
fn an_eviction_for_disk_is_not_memory_and_one_for_memory_is() {
    let disk = explain_str("The node was low on resource: ephemeral-storage. Container app was using 1148032Ki, request is 0\nexitCode 137\n");
    assert_eq!(disk.verdict, Verdict::NotOom);
    assert_eq!(disk.sub_reason, Some(SubReason::Evicted));
    assert_eq!(disk.exit_code, Some(137));
    let memory = explain_str("The node was low on resource: memory. Container kilo was using 30332Ki, which exceeds its request of 0.\n");
    assert_eq!(memory.verdict, Verdict::Oom);
    assert_eq!(memory.process.as_deref(), Some("kilo"));
    // An evicted pod has no "step" to measure: the remedy is its memory request.
    let memory_commands = commands(&memory);
    assert!(
        memory_commands.iter().all(|c| !c.starts_with("memfit run")),
        "{memory_commands:?}"
    );
    assert!(memory_commands
        .iter()
        .any(|c| c.contains("--requests=memory")));
}

#[test]
fn runtime_remedies_follow_the_runtime_the_log_shows() {
    let plain = explain_str("java.lang.OutOfMemoryError: Java heap space\n");
    assert!(commands(&plain).iter().all(|c| !c.contains("gradle")));
    assert!(commands(&plain).iter().all(|c| !c.contains("MAVEN_OPTS")));
    let gradle = explain_str("Expiring Daemon because JVM heap space is exhausted\n");
    assert!(commands(&gradle)
        .iter()
        .any(|c| c.contains("org.gradle.jvmargs")));
    let maven = explain_str("[ERROR] Java heap space -> [Help 1]\n");
    assert!(commands(&maven).iter().any(|c| c.contains("MAVEN_OPTS")));
    let go = explain_str(
        "go build crypto/elliptic: /usr/local/go/pkg/tool/linux_amd64/compile: signal: killed\n",
    );
    assert_eq!(go.process.as_deref(), Some("compile"));
    assert!(commands(&go).iter().any(|c| c.contains("GOMEMLIMIT")));
    assert!(commands(&go).iter().all(|c| !c.contains("CARGO")));
    let rust = explain_str("LLVM ERROR: out of memory\nerror: could not compile `servo`.\n");
    assert_eq!(rust.process.as_deref(), Some("rustc (crate servo)"));
    assert!(commands(&rust)
        .iter()
        .any(|c| c.contains("CARGO_BUILD_JOBS=1")));
    assert!(commands(&rust).iter().all(|c| c != "make -j1"));
}

#[test]
fn gradle_task_lines_are_not_commands_but_a_shell_prompt_is() {
    let e = explain_str(
        "> Task :app:compileJava FAILED\njava.lang.OutOfMemoryError: Java heap space\n",
    );
    assert_eq!(e.running, None);
    let e = explain_str(
        "root@8bf8f22c0928:/app# gunicorn g:app\n\
         [2020-09-12 05:37:52 +0000] [18] [ERROR] Worker (pid:21) was sent SIGKILL! Perhaps out of memory?\n",
    );
    assert_eq!(e.running.as_deref(), Some("gunicorn g:app"));
    assert!(commands(&e)
        .iter()
        .any(|c| c == "memfit run --cpus 1 -- gunicorn g:app"));
}

#[test]
fn a_killed_linker_gets_the_remedy_of_the_build_that_ran_it() {
    let rust = explain_str(
        "  = note: collect2: fatal error: ld terminated with signal 9 [Killed]\n          compilation terminated.\n",
    );
    assert!(commands(&rust).iter().any(|c| c.contains("cargo build")));
    assert!(commands(&rust).iter().all(|c| c != "make -j1"));
    let cpp = explain_str(
        "collect2: fatal error: ld terminated with signal 9 [Killed]\ncompilation terminated.\n[542/1806] Linking CXX executable bin/llvm-lto\nninja: build stopped: subcommand failed.\n",
    );
    assert!(commands(&cpp).iter().any(|c| c == "make -j1"));
    assert!(commands(&cpp).iter().all(|c| !c.contains("cargo")));
    let go = explain_str("fatal error: runtime: out of memory\n");
    assert!(commands(&go).iter().all(|c| !c.contains("golangci-lint")));
}

#[test]
fn an_llvm_allocation_failure_is_not_told_to_check_fork_overcommit() {
    let e = explain_str("LLVM ERROR: out of memory\nerror: Could not compile `bootstrap`.\n");
    assert_eq!(e.kind, Kind::Enomem);
    assert!(commands(&e).iter().all(|c| !c.contains("overcommit")));
    let cf =
        explain_str("exit_description: APP/PROC/WEB: Exited with status 137 (out of memory)\n");
    assert_eq!(cf.kind, Kind::PaasQuota);
    assert!(commands(&cf).iter().any(|c| c.starts_with("cf scale")));
}
