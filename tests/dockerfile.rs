//! The Dockerfile's two build steps, replayed here without a container runtime: the dependency
//! step (the manifests and the lock file copied, every target stubbed) must give Cargo a
//! workspace it can load, or `docker build` fails before it compiles anything; and the step
//! that copies the sources must bring everything the workspace reads. Each step's `COPY`s are
//! made into a scratch directory and its `RUN` script is run there, with `cargo build`
//! replaced by `cargo fetch --locked --offline` for this machine's target, which loads every
//! manifest and checks every target's file as a build does, without compiling.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// One step of the build stage: what it copies (source, destination) and its shell script.
struct Step {
    copies: Vec<(String, String)>,
    script: String,
}

/// The build stage's steps: each ends at a `RUN`; the stage ends at the next `FROM`.
fn steps(dockerfile: &str) -> Vec<Step> {
    // Continuation lines joined; comments dropped.
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        if line.trim_start().starts_with('#') && current.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    let mut steps = Vec::new();
    let mut copies = Vec::new();
    let mut froms = 0;
    for line in &lines {
        let line = line.trim();
        if line.starts_with("FROM ") {
            froms += 1;
            if froms > 1 {
                break;
            }
        } else if let Some(args) = line.strip_prefix("COPY ") {
            let args: Vec<&str> = args.split_whitespace().collect();
            let (to, from) = args.split_last().expect("COPY names a destination");
            assert!(!from.is_empty() && !to.starts_with("--"), "a plain COPY: {line}");
            copies.extend(from.iter().map(|f| (f.to_string(), to.to_string())));
        } else if let Some(script) = line.strip_prefix("RUN ") {
            steps.push(Step {
                copies: std::mem::take(&mut copies),
                script: script.to_string(),
            });
        }
    }
    steps
}

/// Makes a `COPY from to` of the repository at `root` into `scratch`: into the directory `to`
/// when it ends with a slash (or is `./`), else as `to`.
fn copy_step(root: &Path, scratch: &Path, from: &str, to: &str) {
    let dest = if to.ends_with('/') {
        scratch
            .join(to)
            .join(Path::new(from).file_name().expect("a file name"))
    } else {
        scratch.join(to)
    };
    copy(&root.join(from), &dest);
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// `script` with its build made into a workspace load (for the host's target only: the
/// crates other platforms need may not be in the local registry).
fn cargo_loads(script: &str) -> String {
    let rustc = Command::new("rustc").arg("-vV").output().expect("rustc runs");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc names its host");
    script
        .replace(
            "cargo build --release --locked --bin turnpike",
            &format!("cargo fetch --locked --offline --target {host}"),
        )
        .replace("cp target/release/turnpike /turnpike", "true")
}

/// Runs `script` in `dir` with its build made into a workspace load.
fn replay(dir: &Path, script: &str) -> std::process::Output {
    let script = cargo_loads(script);
    assert!(
        script.contains("cargo fetch"),
        "the step builds with something else than `cargo build --release --locked --bin turnpike`: {script}"
    );
    Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir)
        .output()
        .expect("bash runs")
}

/// The repository's Dockerfile, and where the repository is.
fn dockerfile() -> (PathBuf, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    (root, text)
}

#[test]
fn the_build_steps_load_the_workspace() {
    let (root, dockerfile) = dockerfile();
    let steps = steps(&dockerfile);
    assert_eq!(steps.len(), 2, "a dependency step and a source step");
    let scratch = tempfile::tempdir().expect("tempdir");
    for step in &steps {
        for (from, to) in &step.copies {
            copy_step(&root, scratch.path(), from, to);
        }
        let out = replay(scratch.path(), &step.script);
        assert!(
            out.status.success(),
            "the Dockerfile step failed:\n{}\n{}",
            step.script,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_step_that_misses_a_manifest_fails_here() {
    // The replay itself: a dependency step without one crate's manifest cannot load.
    let (root, dockerfile) = dockerfile();
    let first = steps(&dockerfile).into_iter().next().expect("a first step");
    let scratch = tempfile::tempdir().expect("tempdir");
    for (from, to) in first.copies.iter().filter(|(from, _)| !from.contains("openapi")) {
        copy_step(&root, scratch.path(), from, to);
    }
    let out = replay(scratch.path(), &first.script);
    assert!(!out.status.success(), "a workspace without crates/openapi loaded");
}

/// `NAME=value` pairs of the runtime image's `ENV` lines that set `MIMALLOC_*`.
fn image_allocator_env(dockerfile: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(str::split_whitespace)
        .filter(|p| p.starts_with("MIMALLOC_"))
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pairs.sort();
    pairs
}

#[test]
fn cargo_runs_with_the_allocator_settings_of_the_image() {
    let (root, dockerfile) = dockerfile();
    let image = image_allocator_env(&dockerfile);
    assert!(!image.is_empty(), "the image sets the allocator's settings");
    let config = std::fs::read_to_string(root.join(".cargo/config.toml")).expect(".cargo/config.toml");
    let mut cargo: Vec<(String, String)> = config
        .lines()
        .filter(|l| l.starts_with("MIMALLOC_"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect();
    cargo.sort();
    assert_eq!(
        cargo, image,
        ".cargo/config.toml [env] and the Dockerfile's ENV differ"
    );
    // Cargo hands them to what it runs: this test among them.
    for (k, v) in &image {
        assert_eq!(
            std::env::var(k).ok().as_ref(),
            Some(v),
            "{k} in a test's environment"
        );
    }
}
