use memfit_core::jvm::{self as jvm_model, ItemBasis, NonHeap};
use memfit_core::plan::HEAP_SHARE_PERCENT;

use super::{mib, Rule};
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
wins over `MaxRAMPercentage`. The heap plus the JVM's memory beside it, item by item, is
compared with the container limit; a `MaxRAMPercentage` above 80 is reported whatever the
limit.

The items beside the heap:
- **metaspace**: `-XX:MaxMetaspaceSize` when set (the service allows it that much), else
  83 MiB, measured with 15,000 classes loaded (a Spring Boot service loads about that many);
- **code cache**: 16 MiB measured after the JIT warmed up, or `-XX:ReservedCodeCacheSize`
  when that is smaller;
- **thread stacks**: the server's threads × the stack each touches (108 KiB measured, never
  more than `-Xss`/`-XX:ThreadStackSize`). The threads come from `SERVER_TOMCAT_THREADS_MAX`
  (or `SERVER_JETTY_THREADS_MAX`) in the environment, a `-Dserver.tomcat.threads.max=`
  option, else the largest `server.tomcat.threads.max` (`server.tomcat.max-threads`,
  `server.jetty.threads.max`) of the project's `application*.properties`/`.yml`; without
  any, 200, Tomcat's default;
- **GC and other**: 50 MiB measured with the Serial collector (what the JVM picks under 2
  GB or 2 CPUs): symbols, the CDS archive, the JIT's arenas; 43 MiB more with
  `-XX:+UseG1GC`.

The message names each item and where it came from; the fix sets the heap that leaves them
room (75% of the limit when that leaves enough).

With **no heap option** the JVM sizes the heap itself: 25% of the limit (MaxRAMPercentage's
default), but never below its default MaxHeapSize of 124.8 MiB, and half the memory in a
container under ~250 MiB (MinRAMPercentage). Measured with OpenJDK 17.0.15 (`memfit run
--limit L -- java -XX:+PrintFlagsFinal -version`): 100 MiB at 200 MiB, 126 MiB at 256 and 300
MiB, 128 MiB at 512 MiB. On a 256 MB machine (Fly.io's smallest) that heap and the ~170 MiB
beside it are over the limit: a **warning** (the heap only grows there when the service needs
it), with the `-Xmx` to add; not fixed in place, since the flag can go on the command or in
`JAVA_TOOL_OPTIONS`.

## Why is this bad?
The heap is not all a JVM uses. Beside it live the metaspace (class metadata, no limit by
default), the code cache (`ReservedCodeCacheSize`, 240 MiB reserved with tiered
compilation, committed as the JIT fills it), one stack per thread (`-Xss`, 1 MiB reserved by
default on Linux x64, of which only the touched pages count) and the GC's own structures. A
heap that leaves less is killed by the kernel (exit 137) before the JVM throws an
`OutOfMemoryError` it could report.

What they commit, measured with Native Memory Tracking (committed memory, MiB) on OpenJDK
17.0.15 under `memfit run --limit 1G` with `bench/jvm_nonheap.sh` (a program that loads
classes of the JDK's modules, compiles a source file with javac 40 times so the JIT fills
its code cache, and starts threads that each do some library work):

| program | classes | threads | metaspace | code cache | thread stacks (per thread) | GC | other | non-heap | RSS peak | memfit peak |
|---|---|---|---|---|---|---|---|---|---|---|
| trivial | 0 | 13 | 0.6 | 7.4 | 0.6 (49 KiB) | 0.1 | 14.2 | 23.0 | 36.4 | 17.5 |
| javac ×40 | 0 | 12 | 12.8 | 16.0 | 0.6 (55 KiB) | 0.1 | 36.1 | 65.6 | 132.9 | 102.5 |
| + 5,000 classes, 50 threads | 5000 | 62 | 28.4 | 15.4 | 6.1 (100 KiB) | 0.2 | 36.7 | 86.7 | 198.6 | 172.4 |
| + 15,000 classes, 200 threads | 15000 | 213 | 82.5 | 15.5 | 21.9 (105 KiB) | 0.4 | 49.8 | 170.1 | 307.1 | 288.5 |
| same, `-XX:+UseG1GC` | 15000 | 216 | 82.4 | 15.5 | 21.9 (104 KiB) | 41.8 | 54.6 | 216.3 | 352.4 | 323.6 |
| same, `-Xss256k` | 15000 | 212 | 82.4 | 14.9 | 21.8 (105 KiB) | 0.4 | 51.8 | 171.3 | 302.8 | 273.4 |

"other" is everything else NMT counts (symbols, the CDS archive, compiler arenas, class
loaders' and threads' malloc) without NMT's own tracking; "RSS peak" is the process's VmHWM
(the heap's touched pages included), "memfit peak" the cgroup's charge. The columns other than
"other" repeat within 1 MiB from run to run; "other" does not (the JIT's arenas at exit): on
the 15,000-class row, GC and other came to 45.1, 50.2 and 53.4 MiB over three runs (the
table is the median run), and memfit takes the median, 50 MiB. A thread's stack is reserved at
`-Xss` but only touched pages are committed: 200 threads commit 22 MiB, not 200 MiB, and
`-Xss256k` changes nothing for them. memfit budgets the 15,000-class row: 83 + 16 + 200 ×
108 KiB + 50 = 170 MiB beside the heap, the same figure `memfit plan --runtime jvm` leaves
(one model, `memfit_core::jvm`). A service that loads more classes, or whose threads run
deeper stacks, needs more: measure it with `memfit run` and NMT.

## Example
```dockerfile
CMD ["java", "-Xmx1g", "-jar", "app.jar"]   # on Render's 512 MB starter plan
```
gives `maximum heap 1 GiB (…) + metaspace ~83 MiB + code cache ~16 MiB + 200 thread
stacks ~21.1 MiB (no pool size found: 200 as Tomcat's default server.tomcat.threads.max;
108 KiB touched each) + GC and other ~50 MiB = 1.2 GiB, more than the 512 MiB container
limit`.

## Use instead
```dockerfile
CMD ["java", "-Xmx340m", "-jar", "app.jar"]   # 512 MiB - 170.1 MiB beside the heap
```
or `JAVA_TOOL_OPTIONS=-XX:MaxRAMPercentage=66.0` (`memfit plan --runtime jvm --limit
512M`), which follows the limit; a service with a smaller pool (`server.tomcat.threads.max`)
or a capped metaspace gets a larger heap.

## References
- The `java` command's options and their defaults (`-Xss` 1024 KB on Linux x64,
  `-XX:ThreadStackSize`, `-XX:MaxRAMPercentage`, `-XX:ReservedCodeCacheSize` 240 MB,
  `-XX:MaxMetaspaceSize` unlimited):
  https://docs.oracle.com/en/java/javase/17/docs/specs/man/java.html
- Native Memory Tracking: https://docs.oracle.com/en/java/javase/17/vm/native-memory-tracking.html
- The "server-class machine" (2 or more processors, 2 or more GB) below which the JVM
  picks the Serial collector: https://docs.oracle.com/javase/8/docs/technotes/guides/vm/gctuning/ergonomics.html
  (JDK 17 under `memfit run --limit 1G` on 2 CPUs: `UseSerialGC` ergonomic, measured).
- `server.tomcat.threads.max` (default 200) and `server.jetty.threads.max`:
  https://docs.spring.io/spring-boot/appendix/application-properties/index.html
- `JDK_JAVA_OPTIONS` and `JAVA_TOOL_OPTIONS` precedence: the java page, "Using the
  JDK_JAVA_OPTIONS Launcher Environment Variable".
- MaxRAMPercentage defaults to 25 (JDK-8186248): https://bugs.openjdk.org/browse/JDK-8186248
"#,
    check,
};

/// Below this the JVM is not worth fixing in place: memfit plan's floor for a JVM heap.
const MIN_HEAP: u64 = 32 * 1024 * 1024;

/// memfit's choice: above this MaxRAMPercentage the heap leaves under a fifth of the
/// container to everything else, which the measured non-heap (~170 MiB) exceeds below
/// 850 MiB.
pub const MAX_RAM_PERCENTAGE_CEILING: f64 = 80.0;

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let Some(service) = jvm::model(ctx) else {
        return;
    };
    let pool = jvm::thread_pool(ctx, &service);
    let mut options = service.non_heap_options();
    options.threads = pool.as_ref().map(|p| p.threads);
    let non_heap = NonHeap::estimate(&options);
    let limit = ctx.limit_bytes();
    let Some(heap) = service.heap(limit) else {
        // No limit and no size: only a percentage can be judged.
        if let Some(f) = percentage_finding(ctx, &service, None, &non_heap) {
            out.push(f);
        }
        return;
    };
    let over = limit.filter(|&l| heap.bytes.saturating_add(non_heap.total()) > l);
    let Some(limit) = over else {
        if let Some(f) = percentage_finding(ctx, &service, limit, &non_heap) {
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
        HeapBasis::Default => {
            out.extend(default_heap_finding(
                ctx,
                &service,
                heap.bytes,
                limit,
                &non_heap,
                pool.as_ref(),
            ));
            return;
        }
    };
    let source = limit_source(ctx);
    let message = format!(
        "{what} {} ({}) + {} = {}, more than the {} container limit ({source}): the kernel kills the JVM (exit 137) before it throws OutOfMemoryError",
        mib(heap.bytes),
        setting.place,
        itemised(&non_heap, pool.as_ref()),
        mib(heap.bytes.saturating_add(non_heap.total())),
        mib(limit),
    );
    let finding = Finding::new(RULE.id, RULE.severity, setting.file, setting.span, message);
    out.push(with_fix(
        ctx,
        finding,
        setting,
        &heap.basis,
        Some(limit),
        &non_heap,
    ));
}

/// No heap option: HotSpot sizes the heap itself, and in a small container its floor (or half
/// the memory) with the non-heap is over the limit. A warning, not an error: the heap grows
/// there only when the service needs it. Advised, not fixed: where to add the flag is the
/// user's choice (the command or `JAVA_TOOL_OPTIONS`).
fn default_heap_finding(
    ctx: &Context,
    service: &jvm::JvmService,
    heap: u64,
    limit: u64,
    non_heap: &NonHeap,
    pool: Option<&jvm::ThreadPool>,
) -> Option<Finding> {
    // The java command when the service has one, else the last place options are set.
    let setting = service
        .settings
        .iter()
        .rev()
        .find(|s| s.place.starts_with("java command"))
        .or(service.settings.last())?;
    let percent_of_limit = |p: f64| limit as f64 * p / 100.0;
    let why = if percent_of_limit(jvm_model::MIN_RAM_PERCENTAGE)
        < jvm_model::DEFAULT_MAX_HEAP as f64
    {
        format!(
            "half of a container this small: MinRAMPercentage's {}%",
            jvm_model::MIN_RAM_PERCENTAGE
        )
    } else if percent_of_limit(jvm::DEFAULT_MAX_RAM_PERCENTAGE) < jvm_model::DEFAULT_MAX_HEAP as f64
    {
        format!(
            "HotSpot's floor, its default MaxHeapSize of {}, above the {}% MaxRAMPercentage gives by default",
            mib(jvm_model::DEFAULT_MAX_HEAP),
            jvm::DEFAULT_MAX_RAM_PERCENTAGE
        )
    } else {
        format!(
            "MaxRAMPercentage's default {}% of the limit",
            jvm::DEFAULT_MAX_RAM_PERCENTAGE
        )
    };
    let source = limit_source(ctx);
    let message = format!(
        "no heap option: in a {} container ({source}) the JVM lets its heap grow to {} ({why}) + {} = {}, more than the limit: when the heap grows there the kernel kills the JVM (exit 137) before it throws OutOfMemoryError",
        mib(limit),
        mib(heap),
        itemised(non_heap, pool),
        mib(heap.saturating_add(non_heap.total())),
    );
    let finding = Finding::new(
        RULE.id,
        Severity::Warning,
        setting.file,
        setting.span,
        message,
    );
    let planned = jvm_model::planned_heap(limit, non_heap);
    Some(if planned < MIN_HEAP {
        finding.advise(no_room(limit, non_heap))
    } else {
        let m = jvm_model::xmx_mib(planned);
        finding.advise(format!(
            "add -Xmx{m}m to the java command (or JAVA_TOOL_OPTIONS=-Xmx{m}m in the service's environment): the heap that leaves {} for the JVM beside it (`memfit plan --runtime jvm --limit {}M`)",
            mib(limit.saturating_sub(m * 1024 * 1024)),
            limit / (1024 * 1024),
        ))
    })
}

/// Where the container limit came from (`fly.toml [[vm]] memory = "256mb"`).
fn limit_source(ctx: &Context) -> String {
    ctx.limit
        .as_ref()
        .map(|l| l.description.clone())
        .unwrap_or_default()
}

/// The advice when the non-heap alone leaves no room for a heap worth having.
fn no_room(limit: u64, non_heap: &NonHeap) -> String {
    format!(
        "{} leaves no room for a heap beside the ~{} the JVM needs outside it: give the service a larger plan, or fewer threads",
        mib(limit),
        mib(non_heap.total())
    )
}

/// `metaspace ~83 MiB + code cache ~16 MiB + 200 thread stacks ~21.1 MiB (…) + GC and other
/// ~40 MiB`, each with where it comes from.
fn itemised(non_heap: &NonHeap, pool: Option<&jvm::ThreadPool>) -> String {
    let basis = |b: ItemBasis, option: &str| match b {
        ItemBasis::Option => format!(" ({option})"),
        ItemBasis::Measured => String::new(),
    };
    let threads = match pool {
        Some(p) => p.place.clone(),
        None => format!(
            "no pool size found: {} as Tomcat's default server.tomcat.threads.max",
            jvm_model::DEFAULT_THREADS
        ),
    };
    format!(
        "metaspace ~{}{} + code cache ~{}{} + {} thread stacks ~{} ({threads}; {} touched each{}) + GC and other ~{}",
        mib(non_heap.metaspace),
        basis(non_heap.metaspace_basis, "-XX:MaxMetaspaceSize"),
        mib(non_heap.code_cache),
        basis(non_heap.code_cache_basis, "-XX:ReservedCodeCacheSize"),
        non_heap.threads,
        mib(non_heap.thread_stacks()),
        mib(non_heap.stack_per_thread),
        basis(non_heap.stack_basis, "-Xss"),
        mib(non_heap.gc_and_other),
    )
}

/// A MaxRAMPercentage above the ceiling, reported when the heap check did not fire.
fn percentage_finding(
    ctx: &Context,
    service: &jvm::JvmService,
    limit: Option<u64>,
    non_heap: &NonHeap,
) -> Option<Finding> {
    let heap = service.heap(limit.or(Some(1 << 30)))?;
    let (setting, percent) = heap.percentage?;
    if percent <= MAX_RAM_PERCENTAGE_CEILING || !matches!(heap.basis, HeapBasis::Percentage(..)) {
        return None;
    }
    let message = format!(
        "MaxRAMPercentage={percent} ({}) leaves {}% of the container for the metaspace, code cache, thread stacks and GC, which need ~{} ({}): under a {} limit that is {}",
        setting.place,
        100.0 - percent,
        mib(non_heap.total()),
        itemised(non_heap, jvm::thread_pool(ctx, service).as_ref()),
        mib(limit.unwrap_or(1 << 30)),
        mib(((limit.unwrap_or(1 << 30)) as f64 * (100.0 - percent) / 100.0) as u64),
    );
    let finding = Finding::new(RULE.id, RULE.severity, setting.file, setting.span, message);
    Some(with_fix(
        ctx,
        finding,
        setting,
        &heap.basis,
        limit,
        non_heap,
    ))
}

/// The fix: the heap that leaves the service's non-heap beside it (75% of the limit when that
/// leaves enough, as `memfit plan --runtime jvm`), written where the winning setting is.
fn with_fix(
    ctx: &Context,
    finding: Finding,
    setting: &JvmOptions,
    basis: &HeapBasis,
    limit: Option<u64>,
    non_heap: &NonHeap,
) -> Finding {
    let heap = limit.map(|l| jvm_model::planned_heap(l, non_heap));
    if let (Some(l), Some(h)) = (limit, heap) {
        if h < MIN_HEAP {
            return finding.advise(no_room(l, non_heap));
        }
    }
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
            let m = jvm_model::xmx_mib(h);
            (span, format!("{m}m"), format!("set -Xmx{m}m: the heap that leaves {} for the JVM beside it", mib(limit.unwrap_or_default().saturating_sub(m * 1024 * 1024))))
        }
        // In a small container the JVM gives no heap below its floor from a percentage.
        (HeapBasis::Percentage(..), Some(h))
            if jvm_model::heap_of_percentage(limit.unwrap_or_default(), percent as f64) > h =>
        {
            (None, String::new(), format!("set -Xmx{}m instead of MaxRAMPercentage: below {} the JVM does not take a percentage of a {} limit", jvm_model::xmx_mib(h), mib(jvm_model::DEFAULT_MAX_HEAP), mib(limit.unwrap_or_default())))
        }
        (HeapBasis::Percentage(..), _) => (
            value_after(text, setting.span, "-XX:MaxRAMPercentage=", number),
            format!("{percent}.0"),
            format!("set -XX:MaxRAMPercentage={percent}.0: the heap that leaves the JVM its non-heap"),
        ),
        _ => (None, String::new(), format!("cap the heap below the limit: -XX:MaxRAMPercentage={percent}.0")),
    };
    match span {
        Some(span) => finding.fix_with(
            description,
            vec![Edit::replace(file.source.path.clone(), span, replacement)],
        ),
        None => finding.advise(description),
    }
}
