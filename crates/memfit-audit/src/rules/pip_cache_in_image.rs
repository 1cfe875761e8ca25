use super::package_cache_left_in_image::cache_mounted;
use super::Rule;
use crate::context::Context;
use crate::finding::{Edit, Finding, Severity};

pub const RULE: Rule = Rule {
    id: "pip-cache-in-image",
    severity: Severity::Warning,
    summary: "`pip install` in a shipped stage keeps pip's download and wheel cache in the image",
    doc: r#"## What it does
In the stages that ship (the final stage and the stages it is built `FROM`), finds
`pip install` / `pip3 install` / `python -m pip install` without `--no-cache-dir`, with no
`PIP_NO_CACHE_DIR` (ENV, ARG or inline) and no cache mount on `~/.cache/pip`.

## Why is this bad?
pip keeps every wheel it downloads or builds in `~/.cache/pip`; in a RUN step that cache is
written into the layer and shipped with the image, where nothing reads it again. For a
scientific stack it is as large as the packages themselves (torch's wheels alone are
hundreds of MB), pulled on every deploy and held on the node's disk.

## Example
```dockerfile
RUN pip install -r requirements.txt
```

## Use instead
```dockerfile
RUN pip install --no-cache-dir -r requirements.txt
```
or `RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt`, which
keeps the cache for the next build outside the image.

## References
- pip's caching and `--no-cache-dir`: https://pip.pypa.io/en/stable/topics/caching/
- Docker's Python guide uses `--mount=type=cache,target=/root/.cache/pip`:
  https://docs.docker.com/guides/python/containerize/
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for view in ctx.dockerfiles() {
        let path = ctx.file(view.id).source.path.clone();
        let pip_env = view.shipped_env("PIP_NO_CACHE_DIR").is_some();
        for (_, run) in view.shipped_commands() {
            let command = &run.command;
            let program = command.program().unwrap_or_default();
            let args: Vec<&str> = command.args().iter().map(|w| w.text.as_str()).collect();
            let is_pip_install = match program {
                "pip" | "pip3" => command.subcommand() == Some("install"),
                p if p.starts_with("python") => {
                    args.windows(3).any(|w| w == ["-m", "pip", "install"])
                }
                _ => false,
            };
            if !is_pip_install
                || command.has_option(&["--no-cache-dir"])
                || pip_env
                || command.assignments().any(|(n, _)| n == "PIP_NO_CACHE_DIR")
                || cache_mounted(run.instruction, &[".cache/pip"])
            {
                continue;
            }
            let install = command.words.iter().position(|w| w.text == "install");
            let f = Finding::new(
                RULE.id,
                RULE.severity,
                view.id,
                run.command_span(),
                "`pip install` without --no-cache-dir keeps ~/.cache/pip (every downloaded and built wheel) in the image",
            );
            out.push(match install {
                Some(i) if run.text_base.is_some() => f.fix_with(
                    "use `pip install --no-cache-dir`",
                    vec![Edit::insert(
                        path.clone(),
                        run.word_span(i).end,
                        " --no-cache-dir",
                    )],
                ),
                _ => f.advise(
                    "use `pip install --no-cache-dir`, or mount a cache on /root/.cache/pip",
                ),
            });
        }
    }
}
