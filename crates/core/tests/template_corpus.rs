//! Mapping templates found in public projects and the AWS documentation, rendered against a
//! fixed request and compared with the expected output kept beside each one:
//! `templates/NAME/{template.vtl, request.json, expected.txt[, override.json]}`.
//! Regenerate the expected files with `UPDATE_TEMPLATES=1` and review the diff.

use std::path::Path;

use serde_json::Value as Json;
use turnpike_core::template::{Limits, Map, Request, Template, Value};

fn map_of(json: &Json) -> Map {
    match Value::from_json(json) {
        Value::Map(m) => m,
        _ => Map::default(),
    }
}

#[test]
fn corpus_renders_as_expected() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates");
    let update = std::env::var_os("UPDATE_TEMPLATES").is_some();
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/templates")
        .map(|e| e.expect("entry").path())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "the corpus is there");
    let mut failures = Vec::new();
    let mut planned = Vec::new();
    for dir in dirs {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let source = std::fs::read_to_string(dir.join("template.vtl")).expect("template.vtl");
        let request: Json =
            serde_json::from_str(&std::fs::read_to_string(dir.join("request.json")).expect("request.json"))
                .expect("request.json is JSON");
        let template = Template::parse(&source).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (params, context, stage_variables) = (
            map_of(&request["params"]),
            Value::Map(map_of(&request["context"])),
            map_of(&request["stageVariables"]),
        );
        let request = Request {
            body: request["body"].as_str().unwrap_or_default(),
            params: &params,
            context: &context,
            stage_variables: &stage_variables,
        };
        let rendered = template
            .render(request, &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // A template of the common shape renders by its program: as the evaluator does.
        if template.has_plan() {
            planned.push(name.clone());
            assert_eq!(
                Ok(&rendered),
                template.render_evaluated(request, &Limits::default()).as_ref(),
                "{name}"
            );
        }
        // Every template of the corpus writes JSON, but where `$util.escapeJavaScript` escapes
        // a single quote (`\'`, which JSON does not have: AWS documents the same).
        if !rendered.body.contains("\\'")
            && let Err(e) = serde_json::from_str::<Json>(&rendered.body)
        {
            failures.push(format!("{name}: not JSON ({e}):\n{}", rendered.body));
        }
        let expected_path = dir.join("expected.txt");
        if update {
            std::fs::write(&expected_path, &rendered.body).expect("write");
        } else {
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            if expected != rendered.body {
                failures.push(format!("{name}: expected\n{expected}\ngot\n{}", rendered.body));
            }
        }
        let overrides = dir.join("override.json");
        let (status, headers) = (rendered.status_override(), rendered.header_overrides());
        match std::fs::read_to_string(&overrides) {
            Ok(text) => {
                let want: Json = serde_json::from_str(&text).expect("override.json");
                assert_eq!(status.map(u64::from), want["status"].as_u64(), "{name}");
                let want_headers: Vec<(String, String)> =
                    serde_json::from_value(want["headers"].clone()).expect("headers");
                assert_eq!(headers, want_headers, "{name}");
            }
            Err(_) => assert!(
                status.is_none() && headers.is_empty(),
                "{name}: unexpected override"
            ),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    println!("rendered by their programs: {planned:?}");
}
