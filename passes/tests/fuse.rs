//! The `fuse` pass on inputs built to stress its limits.

use mite_ir::{verify_module, Builder, Module, Op, TensorType};
use mite_passes::passes::Fuse;
use mite_passes::{Pass, Statistics};
use std::time::{Duration, Instant};

/// `x [2, 3, 4]` through `n` reshapes alternating between `[6, 4]` and `[24]`.
fn reshape_chain(n: usize) -> Module {
    let mut m = Module::new("chain");
    let mut b = Builder::new(&mut m, "f");
    let mut v = b.arg("x", TensorType::f32(&[2, 3, 4]));
    for i in 0..n {
        let shape = if i % 2 == 0 { vec![6, 4] } else { vec![24] };
        v = b.op(Op::Reshape { shape }, &[v]).unwrap();
    }
    let out = b.op(Op::Relu {}, &[v]).unwrap();
    b.ret(&[out]);
    m
}

#[test]
fn a_chain_of_ten_thousand_reshapes_stops_at_the_node_limit() {
    let mut m = reshape_chain(10_000);
    // The chain alone has 10,002 nodes; the first iteration adds thousands more.
    let mut pass = Fuse {
        node_limit: 12_000,
        iter_limit: 30,
        time_limit: Duration::from_secs(20),
    };
    let mut stats = Statistics::new();
    let start = Instant::now();
    pass.run(&mut m, &mut stats).unwrap();
    let took = start.elapsed();
    verify_module(&m).unwrap();
    assert_eq!(stats.get("stop.node-limit"), 1, "{stats}");
    assert_eq!(stats.get("stop.saturated"), 0, "{stats}");
    assert!(stats.get("iterations") < 30, "{stats}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    // Stopped early, the pass still shortens the chain with what it found.
    assert!(m.functions[0].num_ops() < 10_001, "{stats}");
}

#[test]
fn the_iteration_and_time_limits_are_reported() {
    let mut m = reshape_chain(2_000);
    let mut stats = Statistics::new();
    let mut pass = Fuse {
        node_limit: usize::MAX,
        iter_limit: 1,
        time_limit: Duration::from_secs(20),
    };
    pass.run(&mut m, &mut stats).unwrap();
    verify_module(&m).unwrap();
    assert_eq!(stats.get("stop.iter-limit"), 1, "{stats}");
    let mut m = reshape_chain(2_000);
    let mut stats = Statistics::new();
    let mut pass = Fuse {
        node_limit: usize::MAX,
        iter_limit: usize::MAX,
        time_limit: Duration::ZERO,
    };
    pass.run(&mut m, &mut stats).unwrap();
    verify_module(&m).unwrap();
    assert_eq!(stats.get("stop.time-limit"), 1, "{stats}");
}
