//! Placeholder resolution on the request path. Run with
//! `cargo bench -p load-density-core --bench resolve`.
//!
//! The template has five placeholders: a variable, an environment variable, a CSV column,
//! `uuid()` and `randint(a,b)`.
//! - `five_placeholders_new_row`: a new task each time, so the CSV placeholder reads the next
//!   row from the shared streaming reader (the cost a task pays);
//! - `five_placeholders_same_task`: the row is already bound (a second request in one task);
//! - `static`: a template without placeholders (borrowed, no allocation).

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use load_density_core::data::{DataSourceSpec, DataSources};
use load_density_core::template::Template;
use load_density_core::variables::{UserVariables, Variables};

fn resolve(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    writeln!(file, "email,password").expect("write");
    for i in 0..10_000 {
        writeln!(file, "user{i}@example.com,secret{i}").expect("write");
    }
    file.flush().expect("flush");
    drop(file);
    std::env::set_var("LD_BENCH_REGION", "eu-west-1");

    let data = Arc::new(DataSources::open([DataSourceSpec::new("users", &path)]).expect("open"));
    let mut run = Variables::new();
    run.insert("base", "http://127.0.0.1:8080".into());
    let mut vars = UserVariables::with_data(Arc::new(run), data, 0);
    let template = Template::parse(
        "${var.base}/login?region=${env.LD_BENCH_REGION}&user=${csv.users.email}&req=${uuid()}&shard=${randint(1,64)}",
    );
    let fixed = Template::parse("http://127.0.0.1:8080/login?region=eu-west-1");

    let mut group = c.benchmark_group("resolve");
    group.bench_function("five_placeholders_new_row", |b| {
        b.iter(|| {
            vars.begin_task();
            black_box(template.render(black_box(&vars)).len())
        })
    });
    vars.begin_task();
    group.bench_function("five_placeholders_same_task", |b| {
        b.iter(|| black_box(template.render(black_box(&vars)).len()))
    });
    group.bench_function("static", |b| {
        b.iter(|| black_box(fixed.render(black_box(&vars)).len()))
    });
    group.finish();
}

mod group {
    // `criterion_group!` generates a public function that cannot carry docs.
    #![allow(missing_docs)]
    super::criterion_group!(benches, super::resolve);
}
criterion_main!(group::benches);
