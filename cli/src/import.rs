//! `load-density har FILE` and `load-density openapi SPEC`: an action document on stdout.

use std::path::PathBuf;

use clap::Args;
use load_density::import::har::{self, HarOptions};

/// Arguments of `har`.
#[derive(Debug, Args)]
pub struct HarArgs {
    /// The HAR file (as browsers' developer tools save it).
    file: PathBuf,
    /// Keep only entries whose URL matches one of these regexes.
    #[arg(long)]
    include: Vec<String>,
    /// Drop entries whose URL matches one of these regexes.
    #[arg(long)]
    exclude: Vec<String>,
    /// The user type replaying the entries.
    #[arg(long, default_value = "fast_http_user")]
    user: String,
    /// Users.
    #[arg(long, default_value_t = 10)]
    user_count: u64,
    /// Users started per second.
    #[arg(long, default_value_t = 5.0)]
    spawn_rate: f64,
    /// Seconds the test runs.
    #[arg(long, default_value_t = 60.0)]
    test_time: f64,
    /// Send `${` in recorded text literally (written as `$${`).
    #[arg(long)]
    escape_placeholders: bool,
    /// Turn values responses gave (tokens) and later requests send back into extractors and
    /// `${var.corr_N}` placeholders.
    #[arg(long)]
    correlate: bool,
    /// Request headers to leave out (e.g. cookie).
    #[arg(long)]
    exclude_header: Vec<String>,
    /// Replay recorded cookies as they are, even those a recorded response set (by default
    /// those are left to the user's cookie jar, and the plan uses http_user, which has one).
    #[arg(long)]
    keep_cookies: bool,
}

/// Prints the action document converted from the HAR.
pub fn har(args: &HarArgs) -> anyhow::Result<bool> {
    let document = har::load_har(&args.file)?;
    let options = HarOptions {
        escape_placeholders: args.escape_placeholders,
        correlate: args.correlate,
        exclude_headers: args.exclude_header.clone(),
        keep_cookies: args.keep_cookies,
    };
    let plan = har::har_to_action_json(
        &document,
        &args.user,
        args.user_count,
        args.spawn_rate,
        args.test_time,
        &args.include,
        &args.exclude,
        &options,
    )?;
    println!("{}", serde_json::to_string_pretty(&plan)?);
    Ok(true)
}

/// Arguments of `openapi`.
#[derive(Debug, Args)]
pub struct OpenApiArgs {
    /// The OpenAPI 3 document (.json, .yaml or .yml).
    spec: PathBuf,
    /// The base URL (default: the document's first server).
    #[arg(long)]
    base_url: Option<String>,
    /// The user type.
    #[arg(long, default_value = "fast_http_user")]
    user: String,
    /// Users.
    #[arg(long, default_value_t = 10)]
    user_count: u64,
    /// Users started per second.
    #[arg(long, default_value_t = 5.0)]
    spawn_rate: f64,
    /// Seconds the test runs.
    #[arg(long, default_value_t = 60.0)]
    test_time: f64,
}

/// Prints the action document converted from the OpenAPI document.
pub fn openapi(args: &OpenApiArgs) -> anyhow::Result<bool> {
    use load_density::import::openapi;
    let document = openapi::load_openapi(&args.spec)?;
    let plan = openapi::openapi_to_action_json(
        &document,
        args.base_url.as_deref(),
        &args.user,
        args.user_count,
        args.spawn_rate,
        args.test_time,
    )?;
    println!("{}", serde_json::to_string_pretty(&plan)?);
    Ok(true)
}
