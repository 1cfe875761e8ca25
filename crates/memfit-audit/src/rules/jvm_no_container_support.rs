use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::runtime::jvm::jdk_of_image;

pub const RULE: Rule = Rule {
    id: "jvm-no-container-support",
    severity: Severity::Error,
    summary: "The image ships a JDK that does not read the container's memory limit (JDK 8 before 8u191, JDK 9)",
    doc: r#"## What it does
Reads the JDK version from the tag of the image a shipped stage is built `FROM`
(`openjdk:8u181-jre-alpine`, `java:8`, `openjdk:9-jre`) and reports JDK 8 before update 191
and JDK 9.

## Why is this bad?
Container support (the JVM reading the cgroup's memory limit and CPU quota) arrived in JDK
10 (JDK-8146115) and was backported to 8u191. An older JVM sizes its default heap (a quarter
of "physical" memory) and its GC and compiler threads from the host: on a 64 GB node a
512 MB container gets a 16 GB default heap, and the kernel kills the JVM long before a GC
would have run. `-XX:MaxRAMPercentage` and `-XX:+UseContainerSupport` do not exist there
either. The `java` image on Docker Hub was deprecated in 2017 and its last JDK 8 is older
than 8u191.

## Example
```dockerfile
FROM openjdk:8u181-jre-alpine
```

## Use instead
```dockerfile
FROM eclipse-temurin:8-jre   # a current JDK 8 update (or move to 17/21)
```

## References
- JDK-8146115, "Improve docker container detection and resource configuration usage":
  https://bugs.openjdk.org/browse/JDK-8146115 (fixed in 10, backported to 8u191)
- The deprecated `java` image: https://hub.docker.com/_/java
"#,
    check,
};

/// The first JDK 8 update with container support (JDK-8146115's backport).
pub const FIRST_CONTAINER_AWARE_8: u32 = 191;

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for view in ctx.dockerfiles() {
        if Some(view.id) != ctx.runtime.dockerfile {
            continue;
        }
        for &s in &view.shipped {
            let stage = &view.stages[s];
            if stage.base_stage.is_some() {
                continue;
            }
            let Some((major, update, tag)) = jdk_of_image(&stage.base) else {
                continue;
            };
            // The `java` image stopped at JDK 8u111 when it was deprecated (2017).
            let java_image = tag.starts_with("java:");
            let old = match (major, update) {
                (8, Some(u)) => u < FIRST_CONTAINER_AWARE_8,
                (8, None) => java_image,
                (7 | 9, _) => true,
                _ => false,
            };
            if !old {
                continue;
            }
            let version = match update {
                Some(u) => format!("{major}u{u}"),
                None => major.to_string(),
            };
            out.push(
                Finding::new(
                    RULE.id,
                    RULE.severity,
                    view.id,
                    view.docker.instructions[stage.from].span,
                    format!("`{tag}` ships JDK {version}, which does not read the container's memory limit (container support came with 8u191 and JDK 10, JDK-8146115): its default heap and thread counts follow the host's memory and CPUs"),
                )
                .advise("use a current JDK 8 update (eclipse-temurin:8-jre) or a newer JDK (eclipse-temurin:21-jre), then size the heap with -XX:MaxRAMPercentage"),
            );
        }
    }
}
