//! The Dockerfile parser, and what the rules derive from its result: stages, RUN steps,
//! shell scripts split into commands, spans mapped back to the source.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memfit_audit::dockerfile::{self, shell, LineIndex, ScriptOrigin, Span};

fn check_span(source: &str, span: Span, what: &str) {
    assert!(
        span.start <= span.end && span.end <= source.len(),
        "{what} span {span:?} outside a source of {} bytes",
        source.len()
    );
}

fuzz_target!(|data: &[u8]| {
    // As the audit reads a file: UTF-8, or a lossy decoding of it.
    let source = String::from_utf8_lossy(data);
    let parsed = dockerfile::parse(&source);
    for problem in &parsed.problems {
        check_span(&source, problem.span, "problem");
    }
    for comment in &parsed.comments {
        check_span(&source, comment.span, "comment");
    }
    let lines = LineIndex::new(&source);
    for instruction in &parsed.instructions {
        check_span(&source, instruction.keyword_span, "keyword");
        check_span(&source, instruction.span, "instruction");
        let _ = lines.line_col(&source, instruction.span.start);
        let _ = instruction.source_span(0, instruction.text.len());
        for flag in &instruction.flags {
            check_span(&source, flag.span, "flag");
        }
        let _ = instruction.args();
        let _ = instruction.flag("from");
        let _ = instruction.flag_values("mount").count();
        for script in instruction.scripts() {
            if let ScriptOrigin::Text(at) = script.origin {
                let _ = instruction.source_span(at, at + script.text.len());
            }
            for command in shell::split(&script.text) {
                let _ = command.program();
                let _ = command.subcommand();
                let _ = command.operands().count();
                let _ = command.assignments().count();
                let _ = command.has_option(&["--omit", "-f"]);
            }
        }
    }
    let stages = parsed.stages();
    let _ = parsed.shipped_stages(&stages);
    for stage in &stages {
        let _ = parsed.stage_instructions(stage);
        let _ = parsed.resolve(&stages, &stage.base);
    }
    let _ = parsed.run_steps(&source);
});
