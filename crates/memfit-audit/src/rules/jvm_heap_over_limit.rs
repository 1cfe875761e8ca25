use memfit_core::plan::{
    self, PlanInput, Runtime as PlanRuntime, HEAP_SHARE_PERCENT, JVM_NON_HEAP,
};
use memfit_core::ByteSize;

use super::{mib, node_version, Rule};
use crate::context::Context;
use crate::finding::{Edit, Finding, Severity};
use crate::runtime::jvm::{self, HeapBasis, JvmOptions};
use crate::runtime::service::value_after;

pub const RULE: Rule = Rule {
    id: "jvm-heap-over-limit",
    severity: Severity::Error,
    summary: "The JVM's maximum heap, with the memory the JVM needs beside it, is over the container limit, or MaxRAMPercentage is above 80",
    doc: r#"## What it does
Finds the JVM's maximum heap wherever it is set: `-Xmx`/`-XX:MaxHeapSize`, `-Xms`,
`-XX:MaxRAMPercentage`, `-XX:InitialRAMPercentage` and `-XX:MaxRAM`, in the `java` command
of the Dockerfile's CMD/ENTRYPOINT, the Procfile or the platform's start command (and the
shell scripts they run), and in `JAVA_TOOL_OPTIONS`, `JDK_JAVA_OPTIONS` and `JAVA_OPTS`
from the image's ENV or the platform's environment (fly.toml, render.yaml, app.json). The
command line wins over `JDK_JAVA_OPTIONS`, which wins over `JAVA_TOOL_OPTIONS`; `-Xmx`
wins over `MaxRAMPercentage`. The heap plus 128 MiB for the JVM's own memory is compared
with the container limit; a `MaxRAMPercentage` above 80 is reported whatever the limit.

## Why is this bad?
The heap is not all a JVM uses. Beside it live the metaspace (class metadata, no limit by
default), the code cache (`ReservedCodeCacheSize`, 240 MiB reserved with tiered
compilation), one stack per thread (`-Xss`, 1 MiB by default on Linux x64, times the
server's threads) and the GC's own structures. A trivial program commits 24 MiB beside its
heap (measured with `-XX:NativeMemoryTracking=summary`, JDK 17); framework services load
many more classes, so memfit budgets at least 128 MiB (the same reserve `memfit plan
--runtime jvm` uses). A heap that leaves less is killed by the kernel (exit 137) before the
JVM throws an `OutOfMemoryError` it could report.

## Example
```dockerfile
CMD ["java", "-Xmx1g", "-jar", "app.jar"]   # on Render's 512 MB starter plan
```

## Use instead
```dockerfile
CMD ["java", "-Xmx384m", "-jar", "app.jar"]   # memfit plan --runtime jvm --limit 512M
```
or `JAVA_TOOL_OPTIONS=-XX:MaxRAMPercentage=75.0`, which follows the limit.

## References
- The `java` command's options and their defaults (`-Xss`, `-XX:MaxRAMPercentage`,
  `-XX:ReservedCodeCacheSize`, `-XX:MaxMetaspaceSize`):
  https://docs.oracle.com/en/java/javase/21/docs/specs/man/java.html
- `JDK_JAVA_OPTIONS` and `JAVA_TOOL_OPTIONS` precedence: same page, "Using the
  JDK_JAVA_OPTIONS Launcher Environment Variable".
- MaxRAMPercentage defaults to 25 (JDK-8186248): https://bugs.openjdk.org/browse/JDK-8186248
"#,
    check,
};

/// memfit's choice: above this MaxRAMPercentage the heap leaves under a fifth of the
/// container to everything else, which the 128 MiB reserve exceeds below 640 MiB.
pub const MAX_RAM_PERCENTAGE_CEILING: f64 = 80.0;

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let Some(service) = jvm::model(ctx) else {
        return;
    };
    let limit = ctx.limit_bytes();
    let Some(heap) = service.heap(limit) else {
        // No limit and no size: only a percentage can be judged.
        if let Some(f) = percentage_finding(ctx, &service, None) {
            out.push(f);
        }
        return;
    };
    let over = limit.filter(|&l| heap.bytes.saturating_add(JVM_NON_HEAP.bytes()) > l);
    let Some(limit) = over else {
        if let Some(f) = percentage_finding(ctx, &service, limit) {
            out.push(f);
        }
        return;
    };
    let (setting, what) = match &heap.basis {
        HeapBasis::MaxHeap(s) => (*s, "maximum heap".to_string()),
        HeapBasis::Percentage(s, p) => (*s, format!("heap of MaxRAMPercentage={p}")),
        HeapBasis::Initial(s) => (
            *s,
            "initial heap (the JVM raises the maximum to it)".to_string(),
        ),
        HeapBasis::Default => return,
    };
    let source = ctx
        .limit
        .as_ref()
        .map(|l| l.description.clone())
        .unwrap_or_default();
    let message = format!(
        "{what} {} ({}) + at least {} the JVM needs beside the heap (metaspace, code cache, thread stacks, GC) = {}, more than the {} container limit ({source}): the kernel kills the JVM (exit 137) before it throws OutOfMemoryError",
        mib(heap.bytes),
        setting.place,
        mib(JVM_NON_HEAP.bytes()),
        mib(heap.bytes + JVM_NON_HEAP.bytes()),
        mib(limit),
    );
    let finding = Finding::new(RULE.id, RULE.severity, setting.file, setting.span, message);
    out.push(with_fix(ctx, finding, setting, &heap.basis, Some(limit)));
}

/// A MaxRAMPercentage above the ceiling, reported when the heap check did not fire.
fn percentage_finding(
    ctx: &Context,
    service: &jvm::JvmService,
    limit: Option<u64>,
) -> Option<Finding> {
    let heap = service.heap(limit.or(Some(1 << 30)))?;
    let (setting, percent) = heap.percentage?;
    if percent <= MAX_RAM_PERCENTAGE_CEILING || !matches!(heap.basis, HeapBasis::Percentage(..)) {
        return None;
    }
    let message = format!(
        "MaxRAMPercentage={percent} ({}) leaves {}% of the container for the metaspace, code cache, thread stacks and GC, which need at least {}: under a {} limit that is {}",
        setting.place,
        100.0 - percent,
        mib(JVM_NON_HEAP.bytes()),
        mib(limit.unwrap_or(1 << 30)),
        mib(((limit.unwrap_or(1 << 30)) as f64 * (100.0 - percent) / 100.0) as u64),
    );
    let finding = Finding::new(RULE.id, RULE.severity, setting.file, setting.span, message);
    Some(with_fix(ctx, finding, setting, &heap.basis, limit))
}

/// The fix: the heap `memfit plan --runtime jvm` gives, written where the winning setting is.
fn with_fix(
    ctx: &Context,
    finding: Finding,
    setting: &JvmOptions,
    basis: &HeapBasis,
    limit: Option<u64>,
) -> Finding {
    let budget = limit.map(|l| {
        plan::plan(&PlanInput {
            limit: ByteSize(l),
            runtime: PlanRuntime::Jvm,
            node_version: node_version(ctx),
            cgroup: ctx.cgroup(),
            workers: None,
            cpus: None,
            worker_size: None,
        })
    });
    if let Some(b) = budget.as_ref().filter(|b| !b.fits()) {
        return finding.advise(b.problems.join(" "));
    }
    let heap = budget.as_ref().and_then(|b| b.promised_heap_bytes);
    let percent = match (limit, heap) {
        (Some(l), Some(h)) => (h * 100 / l.max(1)).max(1),
        _ => HEAP_SHARE_PERCENT,
    };
    let file = ctx.file(setting.file);
    let text = &file.source.text;
    let size = |c: char| c.is_ascii_alphanumeric();
    let number = |c: char| c.is_ascii_digit() || c == '.';
    let (span, replacement, description) = match (basis, heap) {
        (HeapBasis::MaxHeap(_), Some(h)) => {
            let span = value_after(text, setting.span, "-Xmx", size)
                .or_else(|| value_after(text, setting.span, "-XX:MaxHeapSize=", size));
            let m = h / (1024 * 1024);
            (span, format!("{m}m"), format!("set -Xmx{m}m (memfit plan --runtime jvm: the heap that leaves {} for the JVM beside it)", mib(limit.unwrap_or_default().saturating_sub(h))))
        }
        (HeapBasis::Percentage(..), _) => (
            value_after(text, setting.span, "-XX:MaxRAMPercentage=", number),
            format!("{percent}.0"),
            format!("set -XX:MaxRAMPercentage={percent}.0 (memfit plan --runtime jvm)"),
        ),
        _ => (None, String::new(), format!("cap the heap below the limit: -XX:MaxRAMPercentage={percent}.0 (memfit plan --runtime jvm)")),
    };
    match span {
        Some(span) => finding.fix_with(
            description,
            vec![Edit::replace(file.source.path.clone(), span, replacement)],
        ),
        None => finding.advise(description),
    }
}
