//! The commands the running service executes, whatever its runtime: the start command (the
//! platform's, else the image's CMD), the other Procfile processes, and the shell scripts
//! they run when the project holds a script of that name; and the environment they see.

use crate::context::Context;
use crate::dockerfile::{shell, Span};
use crate::project::Kind;
use crate::source::FileId;

/// One command of the service.
#[derive(Debug, Clone)]
pub struct ServiceCommand {
    pub command: shell::SimpleCommand,
    /// e.g. `Dockerfile CMD`, `Procfile worker`, `docker/entrypoint.sh`.
    pub place: String,
    pub file: FileId,
    /// What a finding points at: the CMD instruction, the Procfile line, the script's
    /// command.
    pub span: Span,
}

/// A variable the service sees, and where it is set.
#[derive(Debug, Clone)]
pub struct EnvValue {
    pub value: String,
    pub place: String,
    pub file: FileId,
    pub span: Span,
}

/// How deep start scripts are followed (a script that runs a script…).
const SCRIPT_DEPTH: usize = 3;

/// Every command the service runs, outermost first.
pub fn commands(ctx: &Context) -> Vec<ServiceCommand> {
    let mut out = Vec::new();
    for step in &ctx.runtime.start {
        for command in shell::split(&step.command) {
            out.push(ServiceCommand {
                command,
                place: step.place.clone(),
                file: step.file,
                span: step.span,
            });
        }
    }
    // The Procfile's other processes (a celery worker beside the web process); `web` is the
    // start command already, `release` runs once per deploy.
    for (id, file) in ctx.project.of_kind(Kind::Procfile) {
        for (n, line) in file.source.text.lines().enumerate() {
            let Some((name, command)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name == "web" || name == "release" || name.starts_with('#') {
                continue;
            }
            let span = file.source.line_span(n + 1);
            for command in shell::split(command) {
                out.push(ServiceCommand {
                    command,
                    place: format!("Procfile {name}"),
                    file: id,
                    span,
                });
            }
        }
    }
    let mut followed: Vec<FileId> = Vec::new();
    let mut from = 0;
    for _ in 0..SCRIPT_DEPTH {
        let end = out.len();
        let mut more = Vec::new();
        for c in &out[from..end] {
            let Some((id, text)) = script_of(ctx, &c.command) else {
                continue;
            };
            if followed.contains(&id) {
                continue;
            }
            followed.push(id);
            let place = ctx.file(id).source.display();
            for command in shell::split(text) {
                let span = Span::new(command.start, command.end);
                more.push(ServiceCommand {
                    command,
                    place: place.clone(),
                    file: id,
                    span,
                });
            }
        }
        if more.is_empty() {
            break;
        }
        from = end;
        out.extend(more);
    }
    out
}

/// The project's shell script a command runs: `./start.sh`, `/entrypoint.sh`,
/// `sh scripts/run.sh`, matched by file name.
fn script_of<'c>(ctx: &'c Context, command: &shell::SimpleCommand) -> Option<(FileId, &'c str)> {
    let argv = command.argv();
    let first = argv.first()?.text.as_str();
    let path = if matches!(
        first.rsplit('/').next(),
        Some("sh" | "bash" | "dash" | "ash")
    ) {
        argv.iter()
            .skip(1)
            .map(|w| w.text.as_str())
            .find(|a| !a.starts_with('-'))?
    } else {
        first
    };
    if !path.ends_with(".sh") {
        return None;
    }
    let wanted = path.trim_start_matches("./").trim_start_matches('/');
    let name = wanted.rsplit('/').next()?;
    let candidates: Vec<(FileId, &crate::project::ProjectFile)> = ctx
        .project
        .of_kind(Kind::ShellScript)
        .filter(|(_, f)| f.source.path.file_name().and_then(|n| n.to_str()) == Some(name))
        .collect();
    // The script at that path, else the only one of that name.
    let exact = candidates.iter().find(|(_, f)| {
        wanted.ends_with(&f.source.display()) || f.source.display().ends_with(wanted)
    });
    let (id, file) = match exact {
        Some(c) => *c,
        None if candidates.len() == 1 => candidates[0],
        None => return None,
    };
    Some((id, file.source.text.as_str()))
}

/// The value of a variable the service sees: set inline on a command or exported by a
/// script (last wins), else the image's and the platform's environment.
pub fn env(ctx: &Context, commands: &[ServiceCommand], name: &str) -> Option<EnvValue> {
    let mut found = None;
    for c in commands {
        let exported = if c.command.program() == Some("export") {
            c.command.args()
        } else {
            &[]
        };
        let pairs = c
            .command
            .assignments()
            .chain(exported.iter().filter_map(|w| w.text.split_once('=')));
        for (n, v) in pairs {
            if n == name {
                found = Some(EnvValue {
                    value: v.to_string(),
                    place: c.place.clone(),
                    file: c.file,
                    span: c.span,
                });
            }
        }
    }
    found.or_else(|| {
        ctx.runtime.env_value(name).map(|e| EnvValue {
            value: e.value.clone(),
            place: e.origin.clone(),
            file: e.file,
            span: e.span,
        })
    })
}

/// The byte range of the value written after `option` inside `span` of a file: `8` in
/// `-w 8`, `"-w", "8"`, `--workers=8`, `-Xmx1g`; the last occurrence, as the last one wins.
/// `value` says which characters the value has.
pub fn value_after(
    text: &str,
    span: Span,
    option: &str,
    value: impl Fn(char) -> bool,
) -> Option<Span> {
    let region = text.get(span.start..span.end)?;
    let mut search = region.len();
    while let Some(pos) = region[..search].rfind(option) {
        search = pos;
        let before = region[..pos].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            continue;
        }
        let after = &region[pos + option.len()..];
        let skipped = after.len()
            - after
                .trim_start_matches([' ', '"', '\'', ',', '=', '\t'])
                .len();
        // `-w8` and `-Xmx1g` glue the value on; `-w 8` and `--workers=8` separate it.
        let glued = skipped == 0;
        if glued && !option.ends_with(['=', 'x', 's']) && option.starts_with("--") {
            continue;
        }
        let start = pos + option.len() + skipped;
        let len = region[start..]
            .find(|c: char| !value(c))
            .unwrap_or(region.len() - start);
        if len == 0 {
            continue;
        }
        return Some(Span::new(span.start + start, span.start + start + len));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_after_options() {
        let digits = |c: char| c.is_ascii_digit();
        let t = r#"CMD ["gunicorn", "-w", "8", "app"]"#;
        let s = value_after(t, Span::new(0, t.len()), "-w", digits).unwrap();
        assert_eq!(&t[s.start..s.end], "8");
        let t = "gunicorn --workers=12 --bind :80 app";
        let s = value_after(t, Span::new(0, t.len()), "--workers", digits).unwrap();
        assert_eq!(&t[s.start..s.end], "12");
        let t = "java -Xmx1g -Xmx512m -jar a.jar";
        let size = |c: char| c.is_ascii_alphanumeric();
        let s = value_after(t, Span::new(0, t.len()), "-Xmx", size).unwrap();
        assert_eq!(&t[s.start..s.end], "512m");
        let t = "celery worker --concurrency 4";
        assert!(value_after(t, Span::new(0, t.len()), "-c", digits).is_none());
    }
}
