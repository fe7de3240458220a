//! The routing matcher. Tables are compiled once from golden inputs (literal, `{param}` and
//! greedy resources, ANY and explicit methods, a PRIVATE API, a canary stage); each input is
//! then matched against one of them. Input: byte 0 picks the table and the listener, byte 1
//! the URL form (bit 0: the table's own Host for the first API, else the text's `\nhost`);
//! the rest is `METHOD /path[\nhost]`.
#![no_main]

use std::sync::LazyLock;

use turnpike_controller::ingest::world_from_yaml;
use turnpike_core::{
    compile::{CompileConfig, compile},
    routing::{Listener, RoutingTable},
};

/// The golden cases the tables come from (their `Probe` documents dropped).
const WORLDS: [&str; 6] = [
    include_str!("../../tests/golden/path-precedence.in.yaml"),
    include_str!("../../tests/golden/path-greedy-proxy.in.yaml"),
    include_str!("../../tests/golden/method-any-vs-explicit.in.yaml"),
    include_str!("../../tests/golden/endpoint-private-policy.in.yaml"),
    include_str!("../../tests/golden/stage-canary.in.yaml"),
    include_str!("../../tests/golden/petstore.in.yaml"),
];

static TABLES: LazyLock<Vec<(RoutingTable, String)>> = LazyLock::new(|| {
    WORLDS
        .iter()
        .map(|yaml| {
            let objects: Vec<&str> = yaml
                .split("\n---")
                .filter(|doc| !doc.contains("kind: Probe") && !doc.contains("kind: Harness"))
                .collect();
            let world = world_from_yaml(&objects.join("\n---")).expect("a golden input");
            let table = compile(&world, &CompileConfig::default(), 1).table;
            assert!(table.route_count() > 0, "a golden input without routes");
            let host = table
                .apis()
                .next()
                .map(|a| format!("{}{}", a.id, table.hosts.host_suffix()))
                .unwrap_or_default();
            (table, host)
        })
        .collect()
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [pick, form, rest @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (table, own_host) = &TABLES[usize::from(*pick) % TABLES.len()];
    let listener = if pick & 0x80 == 0 {
        Listener::Public
    } else {
        Listener::Private
    };
    let (line, host) = text.split_once('\n').unwrap_or((text, ""));
    let host = if form & 1 == 1 { own_host.as_str() } else { host };
    let (method, path) = line.split_once(' ').unwrap_or(("GET", line));
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let host = (!host.is_empty()).then_some(host);
    if let Ok((located, matched)) = table.find(listener, host, path, &method) {
        // The resource path is the end of the request path, and parameters come from it.
        assert!(
            path.ends_with(located.path) || located.path == "/",
            "{path:?} → {:?}",
            located.path
        );
        for (name, value) in matched.params.iter() {
            assert!(!name.is_empty(), "an unnamed parameter");
            assert!(path.contains(value), "{name}={value:?} is not from {path:?}");
        }
    }
});
