//! Lockfiles: which packages are installed, which are dev-only or optional, and which run
//! install scripts (npm's `hasInstallScript`, pnpm's `requiresBuild`).

use crate::project::{Kind, Parsed, Project};
use crate::source::FileId;
use crate::yaml::YamlNode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    pub name: String,
    pub dev: bool,
    pub optional: bool,
    pub install_script: bool,
}

#[derive(Debug, Clone)]
pub struct Lockfile {
    pub file: FileId,
    pub packages: Vec<LockedPackage>,
}

/// `node_modules/a/node_modules/@scope/b` → `@scope/b`.
fn package_name(path: &str) -> &str {
    match path.rfind("node_modules/") {
        Some(p) => &path[p + "node_modules/".len()..],
        None => path,
    }
}

/// `/@scope/name@1.2.3(peer)` or `name@1.2.3` → `@scope/name`.
fn pnpm_name(key: &str) -> String {
    let k = key.trim_start_matches('/');
    let at = if let Some(rest) = k.strip_prefix('@') {
        rest.find(['@', '/']).and_then(|slash| {
            rest[slash + 1..]
                .find(['@', '/'])
                .map(|p| slash + 1 + p + 1)
        })
    } else {
        k.find(['@', '/'])
    };
    match at {
        Some(i) => k[..i].to_string(),
        None => k.to_string(),
    }
}

fn npm(id: FileId, text: &str) -> Option<Lockfile> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut packages = Vec::new();
    if let Some(map) = value.get("packages").and_then(|p| p.as_object()) {
        for (path, meta) in map {
            if path.is_empty() {
                continue;
            }
            let flag = |k: &str| meta.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
            packages.push(LockedPackage {
                name: package_name(path).to_string(),
                dev: flag("dev") || flag("devOptional"),
                optional: flag("optional"),
                install_script: flag("hasInstallScript"),
            });
        }
    } else if let Some(map) = value.get("dependencies").and_then(|p| p.as_object()) {
        // lockfileVersion 1: nested `dependencies`.
        let mut stack: Vec<(&String, &serde_json::Value)> = map.iter().collect();
        while let Some((name, meta)) = stack.pop() {
            let flag = |k: &str| meta.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
            packages.push(LockedPackage {
                name: name.clone(),
                dev: flag("dev"),
                optional: flag("optional"),
                install_script: false,
            });
            if let Some(nested) = meta.get("dependencies").and_then(|d| d.as_object()) {
                stack.extend(nested.iter());
            }
        }
    }
    Some(Lockfile { file: id, packages })
}

fn pnpm(id: FileId, docs: &[YamlNode]) -> Lockfile {
    let mut packages = Vec::new();
    for doc in docs {
        for (key, meta) in doc
            .get("packages")
            .map(YamlNode::entries)
            .unwrap_or_default()
        {
            let flag = |k: &str| meta.get(k).and_then(YamlNode::as_str) == Some("true");
            packages.push(LockedPackage {
                name: pnpm_name(key),
                dev: flag("dev"),
                optional: flag("optional"),
                install_script: flag("requiresBuild"),
            });
        }
    }
    Lockfile { file: id, packages }
}

/// yarn.lock v1 and berry: `"name@^1", name@^1.2:` entry headers.
fn yarn(id: FileId, text: &str) -> Lockfile {
    let mut packages = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '#']) || !line.ends_with(':') || line.starts_with("__metadata") {
            continue;
        }
        let first = line
            .trim_end_matches(':')
            .split(", ")
            .next()
            .unwrap_or("")
            .trim_matches('"');
        let name = match first.strip_prefix('@') {
            Some(rest) => rest.find('@').map_or(first, |p| &first[..p + 1]),
            None => first.split('@').next().unwrap_or(first),
        };
        if !name.is_empty() {
            packages.push(LockedPackage {
                name: name.to_string(),
                dev: false,
                optional: false,
                install_script: false,
            });
        }
    }
    packages.dedup();
    Lockfile { file: id, packages }
}

/// bun.lock (JSONC): `"packages": { "name": ["name@1.0.0", …] }`.
fn bun(id: FileId, project: &Project) -> Option<Lockfile> {
    let root = project.json(id)?;
    let packages = root
        .get("packages")?
        .entries()
        .iter()
        .map(|(name, _, _)| LockedPackage {
            name: name
                .rsplit('/')
                .next()
                .filter(|_| !name.starts_with('@'))
                .unwrap_or(name)
                .to_string(),
            dev: false,
            optional: false,
            install_script: false,
        })
        .collect();
    Some(Lockfile { file: id, packages })
}

/// Every lockfile of the project that could be read.
pub fn read(project: &Project) -> Vec<Lockfile> {
    let mut out = Vec::new();
    for (id, file) in project.files.iter().enumerate() {
        let lock = match (file.kind, &file.parsed) {
            (Kind::PackageLock, _) => npm(id, &file.source.text),
            (Kind::PnpmLock, Parsed::Yaml(docs)) => Some(pnpm(id, docs)),
            (Kind::YarnLock, _) => Some(yarn(id, &file.source.text)),
            (Kind::BunLock, _) => bun(id, project),
            _ => None,
        };
        out.extend(lock);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_v3_flags() {
        let text = r#"{"lockfileVersion":3,"packages":{"":{"name":"a"},
            "node_modules/bcrypt":{"version":"5.1.1","hasInstallScript":true},
            "node_modules/typescript":{"version":"5.6.3","dev":true},
            "node_modules/@esbuild/linux-x64":{"version":"0.24.0","optional":true},
            "node_modules/a/node_modules/@scope/b":{"version":"1.0.0"}}}"#;
        let lock = npm(0, text).unwrap();
        let get = |n: &str| lock.packages.iter().find(|p| p.name == n).unwrap().clone();
        assert!(get("bcrypt").install_script);
        assert!(get("typescript").dev);
        assert!(get("@esbuild/linux-x64").optional);
        assert_eq!(get("@scope/b").name, "@scope/b");
    }

    #[test]
    fn pnpm_and_yarn_names() {
        assert_eq!(
            pnpm_name("/@prisma/client@5.22.0(prisma@5.22.0)"),
            "@prisma/client"
        );
        assert_eq!(pnpm_name("esbuild@0.24.0"), "esbuild");
        assert_eq!(pnpm_name("/sharp/0.33.5"), "sharp");
        let lock = yarn(0, "# yarn lockfile v1\n\n\"@babel/core@^7.0.0\", \"@babel/core@^7.1.0\":\n  version \"7.26.0\"\n\nesbuild@^0.24.0:\n  version \"0.24.0\"\n");
        let names: Vec<&str> = lock.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["@babel/core", "esbuild"]);
    }
}
