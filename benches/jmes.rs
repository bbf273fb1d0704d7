//! `jmesPath` benchmark: [`extract`] (JSON parsing, conversion, evaluation, rendering) on a JSON
//! secret of about 180 KB, the size class of `--max-keyvault-response-bytes` (256 KiB), with
//! typical and with the most expensive accepted expressions; the time is what one object's
//! blocking-pool job takes.
//!
//! Run: `cargo bench --bench jmes` (release profile). Prints figures; asserts nothing.

use std::time::Instant;

use akv_csi_provider::content::jmes::{MAX_PATHS_PER_OBJECT, extract};

fn main() {
    let items: Vec<String> = (0..4000)
        .map(|i| {
            format!(
                r#"{{"name":"n{:05}","pw":"p{i}","tags":[1,2,3]}}"#,
                (i * 7919) % 4000
            )
        })
        .collect();
    let document = format!(
        r#"{{"items":[{}],"conn":{{"host":"db.internal","port":5432}}}}"#,
        items.join(",")
    );
    println!("jmesPath benchmark: a {} byte JSON secret", document.len());
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("one field", vec!["conn.host".into()]),
        (
            "64 fields",
            (0..MAX_PATHS_PER_OBJECT)
                .map(|i| format!("items[{i}].pw"))
                .collect(),
        ),
        ("a filter", vec!["items[?name=='n00042'].pw | [0]".into()]),
        (
            "sort_by + projection",
            vec!["sort_by(items, &name)[*].name".into()],
        ),
        (
            "4 × 15 projections",
            vec![format!("items{}length(@)", "[*] | ".repeat(15)); 4],
        ),
    ];
    let mut runs_of = vec![(document.clone(), cases.to_vec(), 20)];
    // The worst accepted case: a 256 KiB array of 128K numbers, 4 entries of 15 piped
    // projections each (32 nesting characters each, 128 for the object).
    let numbers = format!("[{}]", vec!["0"; 128 * 1024 - 1].join(","));
    runs_of.push((
        numbers,
        vec![(
            "worst: 4 × 15 over 128K",
            vec![format!("@{} | length(@)", " | [*]".repeat(15)); 4],
        )],
        2,
    ));
    for (document, cases, runs) in runs_of {
        for (label, paths) in cases {
            let started = Instant::now();
            let mut bytes = 0;
            for _ in 0..runs {
                let files = extract(&document, &paths).expect("extract");
                bytes = files.iter().map(Vec::len).sum::<usize>();
            }
            let per_run = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
            println!("{label:<22} {per_run:>8.2} ms per object ({bytes} bytes of files)");
        }
    }
}
