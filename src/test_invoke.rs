//! `turnpike test-invoke`: AWS TestInvokeMethod from the command line. Posts the request to a
//! gateway's admin listener (`POST /restapis/{api}/stages/{stage}/test-invoke`), which runs it
//! through the stage's routing table without any client listener, and prints the execution
//! log, then the response (status line, headers, body).

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

#[derive(Debug, Args)]
pub struct TestInvokeArgs {
    /// The admin listener, e.g. `http://127.0.0.1:9090`.
    #[arg(long, env = "TURNPIKE_ADMIN_URL", default_value = "http://127.0.0.1:9090")]
    admin: String,
    /// A file holding the admin token (`--admin-token-file` of the gateway), sent as
    /// `Authorization: Bearer`; without it the admin listener takes loopback callers only.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The RestApi: its name (or its apiId).
    #[arg(long)]
    api: String,
    /// The RestApi's namespace, when its name is not unique.
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// The stage name.
    #[arg(long)]
    stage: String,
    /// The HTTP method.
    method: String,
    /// The resource path with its query string, e.g. `/pets/1?type=dog`.
    path: String,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// The request body.
    #[arg(short = 'd', long = "data")]
    data: Option<String>,
}

/// Runs the test invoke and prints its log and response; fails when the gateway refuses it.
pub async fn run(args: TestInvokeArgs) -> anyhow::Result<()> {
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in &args.headers {
        let Some((name, value)) = h.split_once(':') else {
            bail!("header {h:?} is not `Name: value`");
        };
        multi
            .entry(name.trim().to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    let document = serde_json::json!({
        "httpMethod": args.method.to_ascii_uppercase(),
        "pathWithQueryString": args.path,
        "multiValueHeaders": multi,
        "body": args.data,
    });
    // Object names, namespaces and stage names need no escaping in a path or query.
    for name in [Some(&args.api), Some(&args.stage), args.namespace.as_ref()]
        .into_iter()
        .flatten()
    {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            bail!("{name:?} is not an object, namespace or stage name");
        }
    }
    let mut url = format!(
        "{}/restapis/{}/stages/{}/test-invoke",
        args.admin.trim_end_matches('/'),
        args.api,
        args.stage
    );
    if let Some(ns) = &args.namespace {
        url.push_str(&format!("?namespace={ns}"));
    }
    let mut req = http::Request::post(&url).header(http::header::CONTENT_TYPE, "application/json");
    if let Some(file) = &args.token_file {
        let token = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {}", token.trim()));
    }
    let req = req
        .body(Full::new(Bytes::from(document.to_string())))
        .context("building the request")?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = client
        .request(req)
        .await
        .with_context(|| format!("calling {url}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    if !status.is_success() {
        bail!(
            "the admin listener answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    let answer: serde_json::Value = serde_json::from_slice(&body).context("the answer is not JSON")?;
    let mut out = String::new();
    out.push_str("Execution log:\n");
    out.push_str(answer["log"].as_str().unwrap_or_default());
    out.push_str(&format!(
        "\nStatus: {}\nLatency: {} ms\n",
        answer["status"], answer["latency"]
    ));
    out.push_str("Response headers:\n");
    if let Some(headers) = answer["multiValueHeaders"].as_object() {
        for (name, values) in headers {
            for v in values.as_array().into_iter().flatten() {
                out.push_str(&format!("  {name}: {}\n", v.as_str().unwrap_or_default()));
            }
        }
    }
    out.push_str("Response body:\n");
    out.push_str(answer["body"].as_str().unwrap_or_default());
    out.push('\n');
    #[allow(clippy::print_stdout)]
    {
        print!("{out}");
    }
    Ok(())
}
