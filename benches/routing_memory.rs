//! Memory per route of a compiled routing table, counted by the allocator: the live heap bytes
//! the table owns (its own structures plus the method definitions it shares with the world,
//! measured after the world is dropped), divided by the number of routes.
//!
//! Run: `cargo bench --bench routing_memory`. Target: ≤ 1 KiB per route.

#![allow(clippy::print_stdout)] // A report for people.

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use turnpike_core::compile::{CompileConfig, compile};

#[path = "support/world.rs"]
mod world;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Live heap bytes allocated since the region began.
fn live(region: &Region<'_, System>) -> i64 {
    let s = region.change();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64 + s.bytes_reallocated as i64
}

fn main() {
    println!(
        "{:>7}  {:>12}  {:>15}  {:>22}  {:>21}",
        "routes", "table_bytes", "bytes_per_route", "of_which_definitions", "of_which_route_index"
    );
    for routes in [1_000usize, 10_000, 100_000] {
        let region = Region::new(GLOBAL);
        let table = {
            let world = world::world(routes);
            let definitions = live(&region);
            let table = compile(&world, &CompileConfig::default(), 1).table;
            let index = live(&region) - definitions;
            drop(world);
            let total = live(&region);
            println!(
                "{routes:>7}  {total:>12}  {:>15}  {:>22}  {:>21}",
                total / routes as i64,
                (total - index) / routes as i64,
                index / routes as i64
            );
            table
        };
        assert_eq!(table.route_count(), routes.div_ceil(200) * 200);
        drop(table);
    }
}
