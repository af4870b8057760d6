//! Rendering the connect template (DynamoDB PutItem) with a typical `$connect` context:
//! the work the emulator does on every new connection. Parsing is done once, as sumu-local
//! does at start-up. Run with `scripts/bench templates`.
//!
//! Two measurements of the same code: wall-clock time (criterion's default), and the
//! thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which leaves out the time the thread waits
//! for a core: on a loaded machine (CI, shared hosts) wall-clock figures inflate, CPU time
//! does not.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vtl::{RenderInput, Template};

fn connect_template() -> (Template, String, RenderInput) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../mapping-templates");
    let source = std::fs::read_to_string(format!("{root}/connect.request.vtl")).expect("template");
    let context =
        std::fs::read_to_string(format!("{root}/examples/connect.context.json")).expect("context");
    let input: RenderInput = serde_json::from_str(&context).expect("context JSON");
    let template = Template::parse(&source).expect("parses");
    (template, source, input)
}

fn bench<M: Measurement + 'static>(c: &mut Criterion<M>, label: &str) {
    let (template, source, input) = connect_template();
    c.bench_function(&format!("render connect.request.vtl ({label})"), |b| {
        b.iter(|| template.render(black_box(&input)).expect("renders"))
    });
    c.bench_function(&format!("parse connect.request.vtl ({label})"), |b| {
        b.iter(|| Template::parse(black_box(&source)).expect("parses"))
    });
}

fn wall_clock(c: &mut Criterion) {
    bench(c, "wall clock");
}

fn cpu_time(c: &mut Criterion<ThreadCpuTime>) {
    bench(c, "thread CPU time");
}

/// The calling thread's CPU time.
struct ThreadCpuTime;

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; the clock id is a constant.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_time().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        if typical < 1_000.0 {
            "ns (CPU)"
        } else {
            values.iter_mut().for_each(|value| *value /= 1_000.0);
            "µs (CPU)"
        }
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, _: &mut [f64]) -> &'static str {
        "ns (CPU)"
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}

criterion_group!(wall, wall_clock);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu_time
}
criterion_main!(wall, cpu);
