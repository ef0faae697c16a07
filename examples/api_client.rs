//! The minimal HTTP client of `ledgerline serve` (SPEC §12) with plain
//! reqwest: upload, start a bulk job, follow its progress, fetch the report.
//!
//! ```sh
//! ledgerline serve &      # in another terminal
//! cargo run --example api_client -- http://127.0.0.1:8080 fixtures/invoices_10k.csv
//! ```

use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (url, file) = match (args.next(), args.next()) {
        (Some(u), Some(f)) => (u, f),
        _ => return Err("usage: api_client URL FILE".into()),
    };
    let http = reqwest::blocking::Client::new();
    // 1. Upload the file as the raw body; the server answers with its id.
    let name = std::path::Path::new(&file)
        .file_name()
        .ok_or("no file name")?;
    let target = reqwest::Url::parse_with_params(
        &format!("{url}/v1/files"),
        [("name", name.to_string_lossy())],
    )?;
    let upload: Value = http
        .post(target)
        .body(std::fs::File::open(&file)?)
        .send()?
        .error_for_status()?
        .json()?;
    let id = upload["files"][0]["id"]
        .as_str()
        .ok_or("no id")?
        .to_string();
    // 2. Start a bulk job with the optimized processor.
    let job: Value = http
        .post(format!("{url}/v1/bulk-process"))
        .json(&json!({"file_ids": [id], "use_optimized": true}))
        .send()?
        .error_for_status()?
        .json()?;
    let status_url = format!(
        "{url}{}",
        job["status_url"].as_str().ok_or("no status_url")?
    );
    // 3. Follow its progress until it ends.
    loop {
        let status: Value = http.get(&status_url).send()?.error_for_status()?.json()?;
        println!("{} {}%", status["state"], status["progress"]["percent"]);
        if !matches!(status["state"].as_str(), Some("queued" | "running")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // 4. The bulk report (SPEC §11).
    let report: Value = http
        .get(format!(
            "{url}{}",
            job["report_url"].as_str().ok_or("no report_url")?
        ))
        .send()?
        .error_for_status()?
        .json()?;
    println!("summary: {}", report["summary"]);
    Ok(())
}
