//! `ledgerline serve` and `ledgerline client`: argument handling only; the
//! server and the client live in their crates.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use ledgerline_client::{expand_inputs, progress_bar, show_progress, Client, ClientError};
use ledgerline_server::{ServerConfig, ServerError};

use crate::{print_json, settings_from, SettingArgs};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (use 0.0.0.0:PORT to listen beyond this machine).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    addr: SocketAddr,
    /// Directory of the embedded store: uploads, reports, the database
    /// (with --files: only uploads on their way in).
    #[arg(long, default_value = "ledgerline-data", value_name = "DIR")]
    data_dir: PathBuf,
    #[command(flatten)]
    shared: SharedArgs,
    /// Bearer token every endpoint but health requires.
    #[arg(
        long,
        env = "LEDGERLINE_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Largest upload in megabytes.
    #[arg(long, default_value_t = 1024, value_name = "MB")]
    max_upload_mb: u64,
    /// Jobs that may wait in the queue; more are refused with 429.
    #[arg(long, default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    queue_depth: u64,
    /// Jobs run at once (they share the memory budget).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=64))]
    max_jobs: u64,
    /// Requests per second per client IP (bursts of twice that); 0 = no limit.
    #[arg(long, default_value_t = 100, value_name = "N")]
    rate_limit: u32,
    /// Seconds a client has to send a request's head before it is cut off.
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Serve the API only; run no jobs (with a Redis store: workers do).
    #[arg(long)]
    no_work: bool,
    #[command(flatten)]
    settings: SettingArgs,
}

/// What `serve` and `worker` share: where the deployment's state lives and
/// how work is taken.
#[derive(Debug, Args)]
struct SharedArgs {
    /// The store: embedded in --data-dir (default), or `redis://HOST:PORT`
    /// (jobs, progress and the task queue in Redis, shared by every server
    /// and worker).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Prefix of every key in a Redis store (deployments can share a Redis).
    #[arg(long, default_value = "ledgerline", value_name = "PREFIX")]
    store_prefix: String,
    /// Where uploads and reports live, reachable by every process:
    /// `file:///shared/dir` or `s3://bucket/prefix` (AWS_* variables:
    /// AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_ALLOW_HTTP). Default: --data-dir. Needs a Redis store.
    #[arg(long, value_name = "URL")]
    files: Option<String>,
    /// With a Redis store: files worked on at once by this process (they
    /// share the memory budget and the cores).
    #[arg(long, default_value_t = 2, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=256))]
    concurrency: u64,
    /// With a Redis store: seconds a task may go without a sign of life
    /// from its worker before another worker takes it over.
    #[arg(long, default_value_t = 60, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    claim_after: u64,
    /// Where jobs asking for `"load": true` load their clean rows (give
    /// every API node and worker the same).
    #[command(flatten)]
    load: crate::LoadArgs,
}

impl SharedArgs {
    fn apply(self, config: &mut ServerConfig) {
        config.store = self.store;
        config.store_prefix = self.store_prefix;
        config.files = self.files;
        config.concurrency = self.concurrency as usize;
        config.claim_after = std::time::Duration::from_secs(self.claim_after);
    }
}

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Local directory for spooled copies of remote files.
    #[arg(long, default_value = "ledgerline-spool", value_name = "DIR")]
    spool_dir: PathBuf,
    #[command(flatten)]
    shared: SharedArgs,
    #[command(flatten)]
    settings: SettingArgs,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The exit status of a server or worker that ended.
fn exit_status(what: &str, result: Result<(), ServerError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e @ ServerError::Config(_)) => {
            eprintln!("ledgerline {what}: {e}");
            2
        }
        Err(e) => {
            eprintln!("ledgerline {what}: {e}");
            1
        }
    }
}

/// The configuration both start from: settings checked (exit status 2
/// when bad), logging on.
fn base_config(
    dir: PathBuf,
    shared: SharedArgs,
    settings: &SettingArgs,
) -> Result<ServerConfig, i32> {
    let settings = settings_from(settings).map_err(|e| {
        eprintln!("ledgerline: {}: {}", e.code, e.message);
        2
    })?;
    // Connected and the table made before anything starts.
    let load = shared.load.target().map_err(|e| {
        eprintln!("ledgerline: {e}");
        2
    })?;
    init_logging();
    let mut config = ServerConfig::new(dir);
    shared.apply(&mut config);
    config.load = load;
    config.settings = settings;
    Ok(config)
}

pub(crate) fn worker(args: WorkerArgs) -> i32 {
    let config = match base_config(args.spool_dir, args.shared, &args.settings) {
        Ok(c) => c,
        Err(status) => return status,
    };
    if config.files.is_none() {
        eprintln!("ledgerline worker: --files is required (where uploads and reports live)");
        return 2;
    }
    exit_status("worker", ledgerline_server::work_until_signal(config))
}

pub(crate) fn serve(args: ServeArgs) -> i32 {
    let mut config = match base_config(args.data_dir, args.shared, &args.settings) {
        Ok(c) => c,
        Err(status) => return status,
    };
    config.addr = args.addr;
    config.token = args.token.filter(|t| !t.is_empty());
    config.max_upload_bytes = args.max_upload_mb.saturating_mul(1024 * 1024);
    config.queue_depth = args.queue_depth;
    config.max_jobs = args.max_jobs as usize;
    config.rate_limit = args.rate_limit;
    config.work = !args.no_work;
    config.header_timeout = std::time::Duration::from_secs(args.header_timeout);
    exit_status("serve", ledgerline_server::serve_until_signal(config))
}

#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The server.
    #[arg(
        long,
        env = "LEDGERLINE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// Bearer token for the server.
    #[arg(
        long,
        env = "LEDGERLINE_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Is the server up? Its version, store and queue.
    Health,
    /// Upload files (folders: their files); prints each id.
    Upload {
        /// Files or folders.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// All in one multipart request (all kept or none) instead of one request each.
        #[arg(long)]
        multipart: bool,
    },
    /// Start a bulk job over files (uploaded first) or ids of uploads.
    Bulk {
        /// Local files or folders, or ids of uploaded files.
        #[arg(required = true, value_name = "FILE_OR_ID")]
        inputs: Vec<String>,
        /// Run the standard processor instead of the optimized one.
        #[arg(long)]
        standard: bool,
        /// Wait for the job to end (a progress bar on a terminal), then print its summary.
        #[arg(long)]
        wait: bool,
        /// With --wait: print the bulk report (SPEC §11) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        outputs: OutputArgs,
        #[command(flatten)]
        settings: Box<SettingArgs>,
    },
    /// A job's state and progress.
    Status {
        /// The job's id.
        job: String,
        /// Print the job as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Follow a job's progress live until it ends.
    Watch {
        /// The job's id.
        job: String,
    },
    /// A finished job's bulk report: a summary, or the JSON with --json.
    Report {
        /// The job's id.
        job: String,
        /// Print the report (SPEC §11) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job.
    Cancel {
        /// The job's id.
        job: String,
    },
    /// Download a done file's rejects or clean rows from a job that asked
    /// for them (`bulk --rejects/--valid`).
    Output {
        /// The job's id.
        job: String,
        /// The uploaded file's id.
        file_id: String,
        /// Which: rejects or valid.
        #[arg(value_parser = ["rejects", "valid"])]
        which: String,
        /// Where to write it.
        #[arg(long, short, value_name = "PATH")]
        out: PathBuf,
    },
    /// A menu-driven session: health, upload, bulk (both processors), progress.
    Interactive,
}

/// What a job writes besides its reports.
#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    /// Keep each file's invalid rows (csv or xlsx), to download with
    /// `client output JOB FILE_ID rejects`.
    #[arg(long, value_name = "FORMAT", value_parser = ["csv", "xlsx"])]
    rejects: Option<String>,
    /// Keep each file's clean rows (csv, jsonl or parquet), to download
    /// with `client output JOB FILE_ID valid`.
    #[arg(long, value_name = "FORMAT", value_parser = ["csv", "jsonl", "parquet"])]
    valid: Option<String>,
    /// Load the clean rows into the server's database (its --load).
    #[arg(long)]
    load: bool,
}

impl OutputArgs {
    fn request(&self) -> ledgerline_api::JobOutputs {
        use ledgerline_api::{RejectsKind, ValidKind};
        ledgerline_api::JobOutputs {
            rejects: self.rejects.as_deref().map(|f| match f {
                "xlsx" => RejectsKind::Xlsx,
                _ => RejectsKind::Csv,
            }),
            valid: self.valid.as_deref().map(|f| match f {
                "jsonl" => ValidKind::Jsonl,
                "parquet" => ValidKind::Parquet,
                _ => ValidKind::Csv,
            }),
            load: self.load,
        }
    }
}

fn fail(e: &ClientError) -> i32 {
    eprintln!("ledgerline client: {e}");
    2
}

pub(crate) fn client(args: ClientArgs) -> i32 {
    let client = match Client::new(&args.url, args.token.filter(|t| !t.is_empty())) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let result = match args.command {
        ClientCommand::Health => client.health().map(|h| {
            print_json(&serde_json::to_value(&h).unwrap_or_default());
            0
        }),
        ClientCommand::Upload { inputs, multipart } => {
            upload(&client, &inputs, multipart).map(|files| {
                for f in files {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        f.id, f.format, f.size, f.sha256, f.name
                    );
                }
                0
            })
        }
        ClientCommand::Bulk {
            inputs,
            standard,
            wait,
            json,
            outputs,
            settings,
        } => bulk(
            &client,
            &inputs,
            !standard,
            wait,
            json,
            outputs.request(),
            &settings,
        ),
        ClientCommand::Output {
            job,
            file_id,
            which,
            out,
        } => client
            .download_output(&job, &file_id, &which, &out)
            .map(|n| {
                eprintln!("wrote {} ({n} bytes)", out.display());
                0
            }),
        ClientCommand::Status { job, json } => client.job(&job).map(|s| {
            if json {
                print_json(&serde_json::to_value(&s).unwrap_or_default());
            } else {
                let p = &s.progress;
                println!(
                    "{} {} {:.1}% files {}/{} rows {}",
                    s.job_id,
                    s.state.as_str(),
                    p.percent,
                    p.files_done,
                    p.files_total,
                    p.rows_done
                );
            }
            0
        }),
        ClientCommand::Watch { job } => watch(&client, &job).map(|s| {
            println!("{} {}", s.job_id, s.state.as_str());
            0
        }),
        ClientCommand::Report { job, json } => report(&client, &job, json),
        ClientCommand::Cancel { job } => client.cancel(&job).map(|s| {
            println!("{} {}", s.job_id, s.state.as_str());
            0
        }),
        ClientCommand::Interactive => {
            return match ledgerline_client::interactive::run(&client) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("ledgerline client: {e}");
                    2
                }
            }
        }
    };
    result.unwrap_or_else(|e| fail(&e))
}

fn upload(
    client: &Client,
    inputs: &[PathBuf],
    multipart: bool,
) -> Result<Vec<ledgerline_api::FileInfo>, ClientError> {
    let files = expand_inputs(inputs)?;
    if multipart {
        let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
        client.upload_files(&paths)
    } else {
        files.iter().map(|p| client.upload_file(p)).collect()
    }
}

/// The settings flags given, by their SPEC §9 names, for a bulk request.
fn given_settings(args: &SettingArgs) -> BTreeMap<String, serde_json::Value> {
    let mut map = BTreeMap::new();
    for (name, value) in args.named() {
        if let Some(v) = value {
            map.insert(name.to_string(), serde_json::Value::String(v.clone()));
        }
    }
    if !args.map.is_empty() {
        map.insert("map".to_string(), serde_json::json!(args.map));
    }
    map
}

fn bulk(
    client: &Client,
    inputs: &[String],
    use_optimized: bool,
    wait: bool,
    json: bool,
    outputs: ledgerline_api::JobOutputs,
    settings: &SettingArgs,
) -> Result<i32, ClientError> {
    let mut ids = Vec::new();
    for input in inputs {
        let path = PathBuf::from(input);
        if !path.exists() && ledgerline_store::is_id(input) {
            ids.push(input.clone());
            continue;
        }
        for file in expand_inputs(&[path])? {
            match client.upload_file(&file) {
                Ok(info) => {
                    eprintln!("uploaded {} as {}", file.display(), info.id);
                    ids.push(info.id);
                }
                // Refused content (422) is skipped, said loudly; anything
                // else (the server, the network, a limit) stops.
                Err(ClientError::Api {
                    status: 422,
                    code,
                    message,
                    ..
                }) => {
                    eprintln!("skipped {}: {code}: {message}", file.display());
                }
                Err(e) => return Err(e),
            }
        }
    }
    if ids.is_empty() {
        eprintln!("ledgerline client: no file to process");
        return Ok(2);
    }
    let job = client.bulk_request(&ledgerline_api::BulkRequest {
        file_ids: ids,
        use_optimized,
        settings: given_settings(settings),
        outputs,
    })?;
    if !wait {
        println!("{}", job.job_id);
        return Ok(0);
    }
    eprintln!("job {} queued", job.job_id);
    watch(client, &job.job_id)?;
    report(client, &job.job_id, json)
}

fn watch(client: &Client, job: &str) -> Result<ledgerline_api::JobStatus, ClientError> {
    if std::io::stderr().is_terminal() {
        let bar = progress_bar("job");
        let last = client.watch(job, |s| show_progress(&bar, s))?;
        show_progress(&bar, &last);
        bar.finish();
        Ok(last)
    } else {
        client.watch(job, |_| {})
    }
}

fn report(client: &Client, job: &str, json: bool) -> Result<i32, ClientError> {
    let report = client.report(job)?;
    if json {
        print_json(&serde_json::to_value(&report).unwrap_or_default());
    } else {
        let s = &report.summary;
        println!(
            "files {} · valid {} · with invalid rows {} · failed {} · rows {} ({} valid, {} invalid, {} blank)",
            s.files, s.valid, s.with_invalid_rows, s.failed, s.rows.total, s.rows.valid, s.rows.invalid, s.rows.blank
        );
        for t in &s.totals {
            println!(
                "{} net {} tax {} gross {} ({} lines, {} invoices)",
                t.currency, t.net, t.tax, t.gross, t.lines, t.invoices
            );
        }
        for f in report.files.iter().filter(|f| f.outcome.is_err()) {
            if let Err(e) = &f.outcome {
                println!("failed: {}: {}: {}", f.path, e.code, e.message);
            }
        }
    }
    Ok(report.exit_status())
}
