//! The Dockerfile grammar, case by case from the BuildKit reference
//! (https://github.com/moby/buildkit/blob/master/frontend/dockerfile/docs/reference.md) and from
//! the inputs other linters refuse (hadolint/hadolint#1137, #923, #951, #1145).

use memfit_audit::dockerfile::{parse, Dockerfile, Instruction, Keyword, StageRef};

fn keywords(file: &Dockerfile) -> Vec<&str> {
    file.instructions
        .iter()
        .map(|i| i.keyword.as_str())
        .collect()
}

fn only(file: &Dockerfile, keyword: Keyword) -> Instruction {
    let found: Vec<_> = file
        .instructions
        .iter()
        .filter(|i| i.keyword == keyword)
        .collect();
    assert_eq!(found.len(), 1, "{keyword} in {:?}", keywords(file));
    found[0].clone()
}

fn clean(source: &str) -> Dockerfile {
    let file = parse(source);
    assert!(file.problems.is_empty(), "{:?}", file.problems);
    file
}

#[test]
fn parser_directives_at_the_top() {
    let file = clean("# syntax=docker/dockerfile:1.7\n# check=skip=JSONArgsRecommended;error=true\nFROM alpine\n");
    assert_eq!(file.directives.len(), 2);
    assert_eq!(file.directives[0].name, "syntax");
    assert_eq!(file.directives[0].value, "docker/dockerfile:1.7");
    assert_eq!(
        file.directives[1].value,
        "skip=JSONArgsRecommended;error=true"
    );
    // Keys are case-insensitive and whitespace is allowed.
    let file = clean("#  SYNTAX = docker/dockerfile:1\nFROM alpine\n");
    assert_eq!(file.directives[0].name, "syntax");
}

#[test]
fn directives_after_a_comment_blank_line_or_instruction_are_comments() {
    let file = clean("# a comment\n# escape=`\nFROM alpine\n");
    assert!(file.directives.is_empty());
    assert_eq!(file.escape, '\\');
    let file = clean("\n# syntax=docker/dockerfile:1\nFROM alpine\n");
    assert!(file.directives.is_empty());
    let file = clean("FROM alpine\n# syntax=docker/dockerfile:1\n");
    assert!(file.directives.is_empty());
    assert_eq!(file.comments.len(), 1);
    // An unknown directive is a comment, and ends the directives.
    let file = clean("# unknowndirective=value\n# syntax=docker/dockerfile:1\nFROM alpine\n");
    assert!(file.directives.is_empty());
}

#[test]
fn a_repeated_directive_is_a_problem_not_a_failure() {
    let file = parse("# escape=\\\n# escape=`\nFROM alpine\nRUN true\n");
    assert_eq!(file.problems.len(), 1);
    assert_eq!(keywords(&file), ["FROM", "RUN"]);
}

#[test]
fn continuation_lines_with_backslash_and_comment_lines_inside() {
    let file = clean(
        "FROM alpine\nRUN apk add \\\n# a comment inside\n    curl \\\n\n    git\nRUN true\n",
    );
    let run = &file.instructions[1];
    assert_eq!(run.args(), "apk add     curl     git");
    assert_eq!(keywords(&file), ["FROM", "RUN", "RUN"]);
}

#[test]
fn continuation_with_trailing_blanks_after_the_escape() {
    let file = clean("FROM alpine\nRUN echo a \\   \n  b\n");
    assert_eq!(file.instructions[1].args(), "echo a   b");
}

#[test]
fn the_backtick_escape_for_windows_dockerfiles() {
    let file = clean("# escape=`\nFROM mcr.microsoft.com/windows/servercore\nRUN dir c:\\ `\n    && echo done\nCOPY testfile.txt c:\\\n");
    assert_eq!(file.escape, '`');
    assert_eq!(keywords(&file), ["FROM", "RUN", "COPY"]);
    assert_eq!(file.instructions[1].args(), "dir c:\\     && echo done");
    // With the backtick escape a trailing backslash is a path, not a continuation.
    assert_eq!(file.instructions[2].args(), "testfile.txt c:\\");
}

#[test]
fn lower_case_instructions_and_leading_whitespace() {
    let file = clean("from alpine as base\n   run echo hi\n\tcmd [\"sh\"]\n");
    assert_eq!(keywords(&file), ["FROM", "RUN", "CMD"]);
    assert_eq!(file.stages()[0].name.as_deref(), Some("base"));
}

#[test]
fn json_and_shell_forms() {
    let file = clean("FROM node:20\nCMD [\"node\", \"server.js\"]\nENTRYPOINT [\"tini\", \"--\"]\nRUN [\"sh\", \"-c\", \"npm ci\"]\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n");
    assert_eq!(
        only(&file, Keyword::Cmd).exec,
        Some(vec!["node".into(), "server.js".into()])
    );
    assert_eq!(only(&file, Keyword::Entrypoint).exec.unwrap().len(), 2);
    let run = only(&file, Keyword::Run);
    assert_eq!(run.scripts()[0].text, "npm ci");
    // Not valid JSON: BuildKit runs it in shell form.
    let file = clean("FROM node:20\nCMD [\"node\", 'server.js']\n");
    assert!(only(&file, Keyword::Cmd).is_shell_form());
}

#[test]
fn run_flags_are_kept_as_data() {
    let file = clean("FROM node:20\nRUN --mount=type=cache,target=/root/.npm,sharing=locked --mount=type=secret,id=npmrc,target=/root/.npmrc --network=none --security=insecure npm ci\n");
    let run = only(&file, Keyword::Run);
    assert_eq!(run.flags.len(), 4);
    assert_eq!(
        run.flag_values("mount").collect::<Vec<_>>(),
        [
            "type=cache,target=/root/.npm,sharing=locked",
            "type=secret,id=npmrc,target=/root/.npmrc"
        ]
    );
    assert_eq!(run.flag("network"), Some("none"));
    assert_eq!(run.args(), "npm ci");
}

#[test]
fn copy_and_add_flags_including_ones_other_linters_refuse() {
    let file = clean(concat!(
        "FROM alpine\n",
        "COPY --from=builder --chown=node:node --chmod=755 --link /app/dist /app\n",
        "COPY --parents --exclude=*.md ./docs/ /docs/\n",
        "ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.10.1 /buildkit\n",
        "ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d --unpack=true https://example.com/a.tar.gz /\n",
        "COPY --future-flag=\"some value\" a b\n",
    ));
    let copies: Vec<_> = file
        .instructions
        .iter()
        .filter(|i| i.keyword == Keyword::Copy)
        .collect();
    assert_eq!(copies[0].flag("from"), Some("builder"));
    assert_eq!(copies[0].flag("link"), Some(""));
    assert_eq!(copies[1].flag("exclude"), Some("*.md"));
    assert_eq!(copies[2].flag("future-flag"), Some("some value"));
    assert_eq!(copies[2].args(), "a b");
    let adds: Vec<_> = file
        .instructions
        .iter()
        .filter(|i| i.keyword == Keyword::Add)
        .collect();
    assert_eq!(adds[0].flag("keep-git-dir"), Some("true"));
    assert_eq!(adds[1].flag("unpack"), Some("true"));
}

#[test]
fn a_heredoc_as_the_whole_run() {
    let source = "FROM alpine\nRUN <<EOF\napk add curl\necho done\nEOF\nCMD [\"sh\"]\n";
    let file = clean(source);
    let run = only(&file, Keyword::Run);
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].body, "apk add curl\necho done\n");
    assert!(run.heredocs[0].terminated);
    let scripts = run.scripts();
    assert!(scripts.iter().any(|s| s.text.contains("apk add curl")));
    assert_eq!(
        &source[run.span.start..run.span.end],
        "RUN <<EOF\napk add curl\necho done\nEOF"
    );
    assert_eq!(keywords(&file), ["FROM", "RUN", "CMD"]);
}

#[test]
fn several_heredocs_in_one_instruction_close_in_order() {
    let file = clean("FROM alpine\nRUN <<FILE1 cat > file1 && <<FILE2 cat > file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2\nRUN ls\n");
    let run = &file.instructions[1];
    assert_eq!(run.heredocs.len(), 2);
    assert_eq!(run.heredocs[0].delimiter, "FILE1");
    assert_eq!(run.heredocs[0].body, "I am\nfirst\n");
    assert_eq!(run.heredocs[1].body, "I am\nsecond\n");
    assert_eq!(keywords(&file), ["FROM", "RUN", "RUN"]);
}

#[test]
fn heredoc_in_the_middle_of_a_command_chain() {
    // hadolint #923: a heredoc after `&&` is a parse error there.
    let file =
        clean("FROM alpine\nRUN apk add python3 && python3 <<EOF && echo ok\nprint('hi')\nEOF\n");
    let run = &file.instructions[1];
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].body, "print('hi')\n");
}

#[test]
fn heredoc_followed_directly_by_an_instruction() {
    // hadolint #1137: "unexpected 'R'" on the RUN right after a heredoc.
    let file = clean("FROM debian\nRUN <<EOF bash\nset -e\napt-get update\nEOF\nRUN echo next\n");
    assert_eq!(keywords(&file), ["FROM", "RUN", "RUN"]);
    assert_eq!(file.instructions[2].args(), "echo next");
}

#[test]
fn quoted_delimiters_dash_and_fd_prefixes() {
    let file = clean("FROM alpine\nRUN <<-\"EOT\" sh\n\techo $HOME\n\tEOT\nRUN 3<<'SECOND' cat /dev/fd/3\nkept $literal\nSECOND\n");
    let first = &file.instructions[1].heredocs[0];
    assert!(first.strip_tabs && first.quoted);
    assert_eq!(first.delimiter, "EOT");
    assert_eq!(first.body, "echo $HOME\n");
    let second = &file.instructions[2].heredocs[0];
    assert_eq!(second.fd, Some(3));
    assert!(second.quoted);
    assert_eq!(second.body, "kept $literal\n");
}

#[test]
fn copy_and_add_heredocs() {
    let file = clean("FROM nginx\nCOPY <<EOF /usr/share/nginx/html/index.html\n<html>hi</html>\nEOF\nADD <<conf /etc/app.conf\nkey=value\nconf\n");
    assert_eq!(
        only(&file, Keyword::Copy).heredocs[0].body,
        "<html>hi</html>\n"
    );
    assert_eq!(only(&file, Keyword::Add).heredocs[0].delimiter, "conf");
}

#[test]
fn a_heredoc_feeding_a_shell_is_a_script() {
    let file = clean("FROM alpine\nRUN bash <<EOF\nnpm ci\nEOF\nRUN python3 <<EOF\nimport os\nEOF\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n");
    let runs: Vec<_> = file
        .instructions
        .iter()
        .filter(|i| i.keyword == Keyword::Run)
        .collect();
    assert!(runs[0].scripts().iter().any(|s| s.text == "npm ci\n"));
    assert!(!runs[1].scripts().iter().any(|s| s.text.contains("import")));
    assert!(!runs[2].scripts().iter().any(|s| s.text.contains("print")));
}

#[test]
fn not_heredocs() {
    // `<< EOF` with a space, a here-string, a quoted marker and `<<` inside a word.
    let file = clean(
        "FROM alpine\nRUN cat << EOF\nRUN cat <<< \"text\"\nRUN echo \"<<EOF\"\nRUN echo a<<b\n",
    );
    assert!(file.instructions.iter().all(|i| i.heredocs.is_empty()));
    assert_eq!(keywords(&file), ["FROM", "RUN", "RUN", "RUN", "RUN"]);
}

#[test]
fn an_unterminated_heredoc_is_a_problem_and_runs_to_the_end() {
    let file = parse("FROM alpine\nRUN <<EOF\necho a\nRUN echo b\n");
    assert_eq!(file.problems.len(), 1);
    assert!(file.problems[0].message.contains("no terminating `EOF`"));
    assert_eq!(
        file.instructions[1].heredocs[0].body,
        "echo a\nRUN echo b\n"
    );
}

#[test]
fn arg_before_from_and_stage_aliases() {
    let file = clean(concat!(
        "ARG NODE_VERSION=20.11\n",
        "ARG BASE=node\n",
        "FROM ${BASE}:${NODE_VERSION}-alpine AS Deps\n",
        "RUN npm ci\n",
        "FROM --platform=$BUILDPLATFORM deps as build\n",
        "RUN npm run build\n",
        "FROM node:$NODE_VERSION-slim\n",
        "COPY --from=build /app/dist /app\n",
        "COPY --from=0 /app/node_modules /app/node_modules\n",
        "COPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf\n",
    ));
    assert_eq!(
        file.global_args()[0],
        ("NODE_VERSION".into(), Some("20.11".into()))
    );
    let stages = file.stages();
    assert_eq!(stages.len(), 3);
    assert_eq!(stages[0].base, "node:20.11-alpine");
    assert_eq!(stages[0].name.as_deref(), Some("deps"));
    assert_eq!(stages[1].base_stage, Some(0));
    assert_eq!(stages[1].platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(stages[2].base, "node:20.11-slim");
    assert_eq!(file.resolve(&stages, "build"), StageRef::Stage(1));
    assert_eq!(file.resolve(&stages, "0"), StageRef::Stage(0));
    assert_eq!(
        file.resolve(&stages, "nginx:latest"),
        StageRef::Image("nginx:latest".into())
    );
    // Only the last stage ships: the others are read through COPY --from.
    assert_eq!(file.shipped_stages(&stages), vec![2]);
}

#[test]
fn a_final_stage_built_from_an_earlier_one_ships_both() {
    let file =
        clean("FROM node:20 AS base\nRUN apt-get update\nFROM base AS prod\nCMD [\"node\"]\n");
    let stages = file.stages();
    assert_eq!(file.shipped_stages(&stages), vec![1, 0]);
}

#[test]
fn crlf_line_endings_keep_exact_spans() {
    let source = "FROM alpine\r\nRUN apk add \\\r\n    curl\r\nCMD [\"sh\"]\r\n";
    let file = clean(source);
    let run = &file.instructions[1];
    assert_eq!(run.args(), "apk add     curl");
    assert_eq!(
        &source[run.span.start..run.span.end],
        "RUN apk add \\\r\n    curl"
    );
    let cmd = &file.instructions[2];
    assert_eq!(cmd.exec, Some(vec!["sh".to_string()]));
    // A word's source span, through the continuation.
    let curl = run.args().find("curl").unwrap() + run.args_start;
    let span = run.source_span(curl, curl + 4);
    assert_eq!(&source[span.start..span.end], "curl");
}

#[test]
fn crlf_heredoc() {
    let file = clean("FROM alpine\r\nRUN <<EOF\r\necho hi\r\nEOF\r\n");
    assert_eq!(file.instructions[1].heredocs[0].body, "echo hi\n");
}

#[test]
fn onbuild_wraps_an_instruction() {
    let file = clean(
        "FROM node:20\nONBUILD RUN --mount=type=cache,target=/root/.npm npm ci\nONBUILD COPY . .\n",
    );
    let inner = file.instructions[1].onbuild.as_ref().unwrap();
    assert_eq!(inner.keyword, Keyword::Run);
    assert_eq!(inner.flag("mount"), Some("type=cache,target=/root/.npm"));
    assert_eq!(inner.args(), "npm ci");
    let file = parse("FROM node:20\nONBUILD ONBUILD RUN x\n");
    assert_eq!(file.problems.len(), 1);
}

#[test]
fn healthcheck_forms() {
    let file = clean("FROM node:20\nHEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=3 CMD curl -f http://localhost/ || exit 1\n");
    let hc = only(&file, Keyword::Healthcheck);
    assert_eq!(hc.flags.len(), 5);
    assert!(hc.args().starts_with("CMD curl"));
    clean("FROM node:20\nHEALTHCHECK NONE\n");
}

#[test]
fn every_other_instruction() {
    let file = clean(concat!(
        "FROM node:20\n",
        "MAINTAINER someone\n",
        "LABEL org.opencontainers.image.title=\"app\" version=1\n",
        "ENV NODE_ENV=production NODE_OPTIONS=\"--max-old-space-size=384\"\n",
        "ENV LEGACY value with spaces\n",
        "EXPOSE 3000/tcp 9464\n",
        "VOLUME [\"/data\"]\n",
        "USER node:node\n",
        "WORKDIR /app\n",
        "STOPSIGNAL SIGTERM\n",
        "ARG BUILD_ID\n",
    ));
    assert_eq!(file.instructions.len(), 11);
}

#[test]
fn an_unknown_instruction_is_a_problem_and_parsing_goes_on() {
    let file = parse("FROM alpine\nRUNN echo typo\nRUN echo fine\n");
    assert_eq!(file.problems.len(), 1);
    assert!(file.problems[0].message.contains("RUNN"));
    assert_eq!(keywords(&file), ["FROM", "RUNN", "RUN"]);
}

#[test]
fn byte_order_mark_empty_and_comment_only_files() {
    let file = clean("\u{feff}# syntax=docker/dockerfile:1\nFROM alpine\n");
    assert_eq!(file.directives.len(), 1);
    assert_eq!(keywords(&file), ["FROM"]);
    assert!(clean("").instructions.is_empty());
    assert_eq!(clean("# only\n# comments\n").comments.len(), 2);
    // No newline at the end, and a continuation at the end of the file.
    assert_eq!(
        clean("FROM alpine\nRUN echo \\").instructions[1].args(),
        "echo "
    );
}

#[test]
fn spans_of_keywords_flags_and_heredoc_markers() {
    let source = "FROM alpine\nRUN --mount=type=cache,target=/var/cache/apk apk add <<-'X' sh\n\techo\n\tX\n";
    let file = clean(source);
    let run = &file.instructions[1];
    assert_eq!(&source[run.keyword_span.start..run.keyword_span.end], "RUN");
    let flag = &run.flags[0];
    assert_eq!(
        &source[flag.span.start..flag.span.end],
        "--mount=type=cache,target=/var/cache/apk"
    );
    let marker = run.heredocs[0].marker_span;
    assert_eq!(&source[marker.start..marker.end], "<<-'X'");
}

/// No input makes the parser panic: every prefix and many byte-level mutations of the
/// cases above, and pseudo-random text from Dockerfile fragments.
#[test]
fn never_panics_on_arbitrary_input() {
    let seeds = [
        "# escape=`\nFROM a AS b\nRUN <<-\"E\" x `\n\tE\nCOPY --from=b / /\n",
        "FROM a\r\nRUN x \\\r\n# c\r\n y <<A <<B\r\nA\r\nB\r\nONBUILD ONBUILD\n",
        "\u{feff}ARG X=${Y:-z}\nFROM $X\nHEALTHCHECK --x CMD [\"a\"\nSHELL sh\n",
    ];
    let fragments = [
        "RUN ", "<<", "<<-", "'", "\"", "\\", "`", "\n", "\r\n", "#", "--", "=", "[", "]", "EOF",
        "FROM ", " AS ", "ONBUILD ", "${", "}", "\t", "é", "3<<", " ", "COPY ",
    ];
    for seed in seeds {
        for end in 0..=seed.len() {
            if seed.is_char_boundary(end) {
                let _ = parse(&seed[..end]);
            }
        }
    }
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..(state % 40) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(fragments[(state % fragments.len() as u64) as usize]);
        }
        let file = parse(&text);
        for i in &file.instructions {
            let _ = i.scripts();
            assert!(i.span.start <= i.span.end && i.span.end <= text.len());
        }
        let stages = file.stages();
        let _ = file.shipped_stages(&stages);
    }
}

#[test]
fn a_line_holding_only_the_escape_is_a_problem_not_a_panic() {
    // A continuation with nothing after it (the parser panicked on this before).
    for source in ["FROM node:20\n\\\n", "FROM node:20\n\\", "\\\n"] {
        let file = parse(source);
        assert_eq!(file.problems.len(), 1, "{source:?}: {:?}", file.problems);
        assert!(file.problems[0].message.contains("line continuation"));
        assert!(file.instructions.iter().all(|i| i.keyword == Keyword::From));
    }
    // Before another line it continues into it, as BuildKit reads it.
    let file = clean("FROM node:20\n\\\nRUN true\n");
    assert_eq!(keywords(&file), ["FROM", "RUN"]);
}
