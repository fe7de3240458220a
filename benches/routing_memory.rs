//! Memory per route of a compiled routing table, counted by the allocator: the live heap bytes
//! the table owns (its own structures plus the method definitions it shares with the world,
//! measured after the world is dropped), divided by the number of routes.
//!
//! Run: `cargo bench --bench routing_memory`. Target: ≤ 1 KiB per route.

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use turnpike::compile::{CompileConfig, compile};

#[path = "support/world.rs"]
mod world;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    println!(
        "{:>7}  {:>12}  {:>15}",
        "routes", "table_bytes", "bytes_per_route"
    );
    for routes in [1_000usize, 10_000, 100_000] {
        let region = Region::new(GLOBAL);
        let table = {
            let world = world::world(routes);
            compile(&world, &CompileConfig::default(), 1).table
        };
        let stats = region.change();
        let live =
            stats.bytes_allocated as i64 - stats.bytes_deallocated as i64 + stats.bytes_reallocated as i64;
        println!("{routes:>7}  {live:>12}  {:>15}", live / routes as i64);
        assert_eq!(table.route_count(), routes.div_ceil(200) * 200);
        drop(table);
    }
}
