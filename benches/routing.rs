//! Compile and match with 1k, 10k and 100k routes.
//!
//! Run: `cargo bench --bench routing`. Targets: match ≤ 250 ns at 10k routes, full compile
//! ≤ 50 ms at 10k routes. Memory per route: `cargo bench --bench routing_memory`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use turnpike_core::compile::{CompileConfig, compile};
use turnpike_core::routing::Listener;

#[path = "support/world.rs"]
mod world;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

fn bench_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for routes in SIZES {
        let world = world::world(routes);
        group.throughput(Throughput::Elements(routes as u64));
        group.bench_with_input(BenchmarkId::from_parameter(routes), &world, |b, world| {
            b.iter(|| compile(black_box(world), &CompileConfig::default(), 1));
        });
    }
    group.finish();
}

/// `match`: 4096 requests spread uniformly over every API and resource — the worst case,
/// where most lookups miss the CPU caches. `match_hot`: 64 distinct requests — a working set
/// that stays in cache, as real traffic with hot APIs does.
fn bench_match(c: &mut Criterion) {
    bench_match_set(c, "match", 4096);
    bench_match_set(c, "match_hot", 64);
}

fn bench_match_set(c: &mut Criterion, name: &str, distinct: usize) {
    let mut group = c.benchmark_group(name);
    for routes in SIZES {
        let world = world::world(routes);
        let table = compile(&world, &CompileConfig::default(), 1).table;
        // A fixed pseudo-random walk over every API and resource, Host-form requests. The
        // request bytes sit in one buffer, hot in cache as a just-parsed request would be.
        let mut ids: Vec<_> = table
            .apis()
            .map(|a| (a.object.name.clone(), a.id.to_string()))
            .collect();
        ids.sort();
        let mut arena = String::new();
        let mut requests = Vec::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..distinct {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (_, id) = &ids[(x as usize) % ids.len()];
            let r = (x as usize >> 16) % world::RESOURCES_PER_API;
            let host = arena.len()..{
                arena.push_str(&format!("{id}{}", table.hosts.host_suffix()));
                arena.len()
            };
            let path = arena.len()..{
                arena.push_str(&format!("/prod{}", world::request_path(r)));
                arena.len()
            };
            let method = if x & 1 == 0 {
                http::Method::GET
            } else {
                http::Method::POST
            };
            requests.push((host, path, method));
        }
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter(routes), |b| {
            let mut i = 0;
            b.iter(|| {
                let (host, path, method) = &requests[i % requests.len()];
                i += 1;
                let found = table.find(
                    Listener::Public,
                    Some(&arena[host.clone()]),
                    &arena[path.clone()],
                    method,
                );
                assert!(found.is_ok());
                black_box(found.map(|(_, m)| m.resource.id.len()))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_compile, bench_match);
criterion_main!(benches);
