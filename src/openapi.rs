//! `turnpike openapi import|export`: OpenAPI documents with the x-amazon-apigateway extensions
//! to and from RestApi manifests, offline (crates/openapi does the mapping).

use std::{io::Read as _, path::PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use turnpike_api::{RestApi, RestApiSpec};
use turnpike_openapi::{ExportOptions, ExportType, Extensions};

#[derive(Debug, Subcommand)]
pub enum OpenapiCommand {
    /// Print the RestApi manifest of an OpenAPI 2.0 or 3.0 document (YAML or JSON, AWS
    /// extensions included). What the manifest cannot carry is reported on stderr, one
    /// `warning: JSON-POINTER: message` line each.
    Import(ImportArgs),
    /// Print a RestApi manifest as an OpenAPI document, in the shape of AWS GetExport.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The OpenAPI document; `-` reads stdin.
    file: PathBuf,
    /// The RestApi's name [default: made from `info.title`].
    #[arg(long)]
    name: Option<String>,
    /// The RestApi's namespace.
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,
    /// Fail (exit 1) when the document has anything the RestApi cannot carry.
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A RestApi manifest (the first RestApi of a multi-document file); `-` reads stdin.
    file: PathBuf,
    /// The document type: `oas30` (OpenAPI 3.0.1) or `swagger` (OpenAPI 2.0).
    #[arg(long = "type", default_value = "oas30")]
    kind: ExportType,
    /// Extensions, comma-separated: `integrations`, `authorizers`, `apigateway` (all the
    /// `x-amazon-apigateway-*` extensions). Empty for plain OpenAPI.
    #[arg(long, default_value = "integrations,authorizers,apigateway")]
    extensions: Extensions,
    /// The stage: the base path of the document's server.
    #[arg(long)]
    stage: Option<String>,
    /// The API's host name, e.g. `{apiId}.execute-api.{region}.{baseDomain}` [default: from the
    /// manifest's status.apiId].
    #[arg(long)]
    host: Option<String>,
    /// The region of the default host.
    #[arg(long, env = "TURNPIKE_REGION", default_value = "local")]
    region: String,
    /// The base domain of the default host.
    #[arg(long, env = "TURNPIKE_BASE_DOMAIN", default_value = "turnpike.dev")]
    base_domain: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "json")]
    output: Output,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    Json,
    Yaml,
}

pub fn run(command: OpenapiCommand) -> anyhow::Result<()> {
    match command {
        OpenapiCommand::Import(args) => import(args),
        OpenapiCommand::Export(args) => export(args),
    }
}

fn read(file: &PathBuf) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
    }
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let text = read(&args.file)?;
    let imported =
        turnpike_openapi::import(&text).with_context(|| format!("importing {}", args.file.display()))?;
    let name = match args.name.or_else(|| imported.title.as_deref().map(object_name)) {
        Some(n) if !n.is_empty() => n,
        _ => bail!("the document has no info.title to name the RestApi after: pass --name"),
    };
    for w in &imported.warnings {
        eprintln!("warning: {}: {}", w.pointer, w.message);
    }
    if args.strict && !imported.warnings.is_empty() {
        bail!("{} construct(s) not imported (--strict)", imported.warnings.len());
    }
    let mut api = RestApi::new(&name, imported.spec);
    api.metadata.namespace = Some(args.namespace);
    let yaml = serde_yaml::to_string(&api).context("rendering the RestApi")?;
    #[allow(clippy::print_stdout)]
    {
        print!("{yaml}");
    }
    Ok(())
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    let text = read(&args.file)?;
    let (name, api_id, spec) = rest_api(&text).with_context(|| format!("reading {}", args.file.display()))?;
    let host = args
        .host
        .or_else(|| api_id.map(|id| format!("{id}.execute-api.{}.{}", args.region, args.base_domain)));
    let options = ExportOptions {
        kind: args.kind,
        extensions: args.extensions,
        title: name,
        version: "1".into(),
        host,
        stage: args.stage,
    };
    let doc = turnpike_openapi::export(&spec, &options)?;
    let out = match args.output {
        Output::Json => serde_json::to_string_pretty(&doc)? + "\n",
        Output::Yaml => serde_yaml::to_string(&doc)?,
    };
    #[allow(clippy::print_stdout)]
    {
        print!("{out}");
    }
    Ok(())
}

/// The first RestApi of a manifest stream: its name, status.apiId and spec.
fn rest_api(text: &str) -> anyhow::Result<(String, Option<String>, RestApiSpec)> {
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value: serde_yaml::Value = serde::Deserialize::deserialize(doc)?;
        if value.get("kind").and_then(|k| k.as_str()) == Some("RestApi") {
            let api: RestApi = serde_yaml::from_value(value)?;
            let name = api.metadata.name.unwrap_or_default();
            let api_id = api.status.and_then(|s| s.api_id);
            return Ok((name, api_id, api.spec));
        }
    }
    bail!("no RestApi in the manifest")
}

/// A Kubernetes object name (RFC 1123 label) made from a title: `Pet Store API` → `pet-store-api`.
fn object_name(title: &str) -> String {
    let mut name = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('-') && !name.is_empty() {
            name.push('-');
        }
    }
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_become_object_names() {
        assert_eq!(object_name("PetStore"), "petstore");
        assert_eq!(object_name("  Pet Store (v2) API "), "pet-store-v2-api");
        assert_eq!(object_name("***"), "");
        assert_eq!(object_name(&"a".repeat(100)).len(), 63);
    }
}
