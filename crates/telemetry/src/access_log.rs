//! Access log lines from `$context`-style templates.
//!
//! One line per request, emitted as a `tracing` event at INFO with target
//! [`TARGET`] (`turnpike::access_log`) whose message is the line. The stage's
//! [`AccessLogFormat`] picks the template: the AWS CLF preset, a JSON preset of the common
//! fields, or a user template of `$context.*` variables (unknown variables render `-`, as AWS
//! renders missing values). API key values never appear: `identity.apiKey` is a digest prefix.

use std::{
    fmt::Write as _,
    net::IpAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use turnpike_core::model::AccessLogFormat;

/// The tracing target of access log events.
pub const TARGET: &str = "turnpike::access_log";

/// Whether access log events are recorded at all (a cached check of the subscriber's interest),
/// so that requests skip gathering what no line will show.
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// The AWS Common Log Format preset.
pub const CLF: &str = "$context.identity.sourceIp $context.identity.caller $context.identity.user \
[$context.requestTime] \"$context.httpMethod $context.resourcePath $context.protocol\" $context.status \
$context.responseLength $context.requestId $context.extendedRequestId";

/// The fields of the JSON preset, in order.
const JSON_FIELDS: &[&str] = &[
    "requestId",
    "extendedRequestId",
    "requestTime",
    "httpMethod",
    "resourcePath",
    "path",
    "protocol",
    "status",
    "responseLength",
    "responseLatency",
    "integrationLatency",
    "integrationStatus",
    "identity.sourceIp",
    "identity.userAgent",
    "identity.apiKeyId",
    "apiId",
    "stage",
    "deploymentId",
    "isCanaryRequest",
    "cacheStatus",
    "error.message",
    "error.responseType",
    "error.validationErrorString",
];

/// Everything an access log line can say about one request. Filled by the proxy when the
/// response is finished.
#[derive(Debug, Default)]
pub struct AccessRecord {
    pub request_id: String,
    pub extended_request_id: String,
    /// When the request was received.
    pub request_time: Option<SystemTime>,
    pub http_method: String,
    /// The resource path template (`/pets/{id}`); empty when none matched.
    pub resource_path: String,
    pub resource_id: String,
    /// The request path as received, with the stage.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2.0`.
    pub protocol: &'static str,
    pub status: u16,
    /// Response body bytes sent.
    pub response_length: u64,
    pub response_latency: Duration,
    pub integration_latency: Option<Duration>,
    pub integration_status: Option<u16>,
    /// The integration's failure, if any (`integration.error`).
    pub integration_error: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub domain_name: Option<String>,
    /// `identity.apiKeyId`: the id of the key the request presented.
    pub api_key_id: Option<String>,
    /// `identity.apiKey`: the masked key (a digest prefix, never the value).
    pub api_key_masked: Option<String>,
    pub api_id: String,
    pub stage: String,
    pub deployment_id: String,
    pub is_canary: bool,
    /// `cacheStatus`: `HIT`, `MISS` (answered by the backend, and stored when it could be)
    /// or `INVALIDATED` (`Cache-Control: max-age=0` honoured); unset for a method without
    /// caching.
    pub cache_status: Option<&'static str>,
    /// The gateway error message (`error.message`), when the gateway answered itself.
    pub error_message: Option<&'static str>,
    /// The gateway response type (`error.responseType`), e.g. `MISSING_AUTHENTICATION_TOKEN`.
    pub error_response_type: Option<&'static str>,
    /// Why the body failed its model (`error.validationErrorString`): the schema's complaint,
    /// never the body.
    pub validation_error_string: Option<String>,
    /// `authorizer.principalId`, `authorizer.claims.NAME` and `authorizer.KEY`: what the
    /// method's authorizer said about the caller (never the token).
    pub authorizer: Vec<(String, String)>,
    /// `authorizer.error`: why the authorizer refused or failed.
    pub authorizer_error: Option<String>,
    /// `authorizer.latency`: how long the authorizer took (0 for a cached answer).
    pub authorizer_latency: Option<Duration>,
    /// WebSocket APIs: what the line is about (`None` for a REST request).
    pub websocket: Option<WebSocketEvent>,
}

/// The WebSocket facts of an access-log line: `$context.connectionId`, `routeKey`,
/// `eventType` (`CONNECT`, `MESSAGE`, `DISCONNECT`) and `messageId` (messages only).
#[derive(Clone, Debug, Default)]
pub struct WebSocketEvent {
    pub connection_id: String,
    pub route_key: String,
    pub event_type: &'static str,
    pub message_id: Option<String>,
}

/// The fields a JSON line of a WebSocket event adds.
const WEBSOCKET_JSON_FIELDS: &[&str] = &["connectionId", "routeKey", "eventType", "messageId"];

// === impl AccessRecord ===

impl AccessRecord {
    /// Renders the line for `format`.
    pub fn render(&self, format: &AccessLogFormat) -> String {
        match format {
            AccessLogFormat::Clf => self.render_template(CLF),
            AccessLogFormat::Template(t) => self.render_template(t),
            AccessLogFormat::Json => self.render_json(),
        }
    }

    /// Emits the line as a tracing event (cheap when the target is disabled).
    pub fn emit(&self, format: &AccessLogFormat) {
        if tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            let line = self.render(format);
            tracing::info!(target: TARGET, "{line}");
        }
    }

    fn render_template(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 64);
        let mut rest = template;
        while let Some(i) = rest.find("$context.") {
            out.push_str(&rest[..i]);
            let after = &rest[i + "$context.".len()..];
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
                .unwrap_or(after.len());
            // A trailing '.' belongs to the text, not the variable.
            let name = after[..end].trim_end_matches('.');
            self.write_var(&mut out, name);
            rest = &after[name.len()..];
        }
        out.push_str(rest);
        out
    }

    fn render_json(&self) -> String {
        let mut out = String::with_capacity(512);
        out.push('{');
        let websocket = if self.websocket.is_some() {
            WEBSOCKET_JSON_FIELDS
        } else {
            &[]
        };
        for (i, name) in JSON_FIELDS.iter().chain(websocket).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{name}\":");
            let mut value = String::new();
            self.write_var(&mut value, name);
            match *name {
                "status" | "responseLength" | "responseLatency" if value != "-" => out.push_str(&value),
                _ => json_string(&mut out, &value),
            }
        }
        out.push('}');
        out
    }

    /// Writes the value of `$context.{name}`; `-` when unknown or empty.
    fn write_var(&self, out: &mut String, name: &str) {
        let start = out.len();
        match name {
            "requestId" => out.push_str(&self.request_id),
            "extendedRequestId" => out.push_str(&self.extended_request_id),
            "requestTime" => {
                if let Some(t) = self.request_time {
                    clf_time(out, t);
                }
            }
            "requestTimeEpoch" => {
                if let Some(t) = self.request_time {
                    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
                    let _ = write!(out, "{ms}");
                }
            }
            "httpMethod" => out.push_str(&self.http_method),
            "resourcePath" => out.push_str(&self.resource_path),
            "resourceId" => out.push_str(&self.resource_id),
            "path" => out.push_str(&self.path),
            "protocol" => out.push_str(self.protocol),
            "status" => {
                let _ = write!(out, "{}", self.status);
            }
            "responseLength" => {
                let _ = write!(out, "{}", self.response_length);
            }
            "responseLatency" => {
                let _ = write!(out, "{}", self.response_latency.as_millis());
            }
            "integrationLatency" | "integration.latency" => {
                if let Some(d) = self.integration_latency {
                    let _ = write!(out, "{}", d.as_millis());
                }
            }
            "integrationStatus" | "integration.status" => {
                if let Some(s) = self.integration_status {
                    let _ = write!(out, "{s}");
                }
            }
            "integration.error" => out.push_str(self.integration_error.as_deref().unwrap_or_default()),
            "identity.sourceIp" => {
                if let Some(ip) = self.source_ip {
                    let _ = write!(out, "{ip}");
                }
            }
            "identity.userAgent" => out.push_str(self.user_agent.as_deref().unwrap_or_default()),
            "identity.apiKeyId" => out.push_str(self.api_key_id.as_deref().unwrap_or_default()),
            "identity.apiKey" => out.push_str(self.api_key_masked.as_deref().unwrap_or_default()),
            "domainName" => out.push_str(self.domain_name.as_deref().unwrap_or_default()),
            "apiId" => out.push_str(&self.api_id),
            "stage" => out.push_str(&self.stage),
            "deploymentId" => out.push_str(&self.deployment_id),
            "isCanaryRequest" => out.push_str(if self.is_canary { "true" } else { "false" }),
            "cacheStatus" => out.push_str(self.cache_status.unwrap_or_default()),
            "error.message" => out.push_str(self.error_message.unwrap_or_default()),
            "error.messageString" => {
                if let Some(m) = self.error_message {
                    json_string(out, m);
                }
            }
            "error.responseType" => out.push_str(self.error_response_type.unwrap_or_default()),
            "error.validationErrorString" => {
                out.push_str(self.validation_error_string.as_deref().unwrap_or_default());
            }
            "authorizer.error" => out.push_str(self.authorizer_error.as_deref().unwrap_or_default()),
            "connectionId" | "routeKey" | "eventType" | "messageId" => {
                if let Some(ws) = &self.websocket {
                    out.push_str(match name {
                        "connectionId" => &ws.connection_id,
                        "routeKey" => &ws.route_key,
                        "eventType" => ws.event_type,
                        _ => ws.message_id.as_deref().unwrap_or_default(),
                    });
                }
            }
            "authorizer.latency" => {
                if let Some(d) = self.authorizer_latency {
                    let _ = write!(out, "{}", d.as_millis());
                }
            }
            _ => {
                if let Some(key) = name.strip_prefix("authorizer.")
                    && let Some((_, v)) = self.authorizer.iter().find(|(k, _)| k == key)
                {
                    out.push_str(v);
                }
            }
        }
        if out.len() == start {
            out.push('-');
        }
    }
}

fn json_string(out: &mut String, s: &str) {
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}

/// `21/Nov/2026:06:23:09 +0000`, as the CLF `requestTime`.
pub fn clf_time(out: &mut String, t: SystemTime) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let month = MONTHS
        .get((m as usize).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    let _ = write!(
        out,
        "{d:02}/{month}/{y:04}:{:02}:{:02}:{:02} +0000",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
}

/// (year, month 1-12, day 1-31) to days since 1970-01-01 in the proleptic Gregorian calendar
/// (H. Hinnant's algorithm; the inverse of [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) in the proleptic Gregorian
/// calendar (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord {
        AccessRecord {
            request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef".into(),
            extended_request_id: "f-ZvmEb3PHcEeNg=".into(),
            request_time: Some(UNIX_EPOCH + Duration::from_secs(1_795_242_189)),
            http_method: "GET".into(),
            resource_path: "/pets/{id}".into(),
            path: "/prod/pets/7".into(),
            protocol: "HTTP/1.1",
            status: 200,
            response_length: 12,
            source_ip: Some("10.0.0.7".parse().expect("ip")),
            api_id: "a1b2c3d4e5".into(),
            stage: "prod".into(),
            ..AccessRecord::default()
        }
    }

    #[test]
    fn authorizer_values_are_context_variables() {
        let mut r = record();
        r.authorizer = vec![
            ("principalId".into(), "user-1".into()),
            ("claims.email".into(), "a@b.c".into()),
            ("tenant".into(), "acme".into()),
        ];
        r.authorizer_error = Some("the token has expired".into());
        r.authorizer_latency = Some(Duration::from_millis(12));
        let format = AccessLogFormat::Template(
            "$context.authorizer.principalId $context.authorizer.claims.email $context.authorizer.tenant \
             $context.authorizer.missing [$context.authorizer.error] $context.authorizer.latency"
                .into(),
        );
        assert_eq!(
            r.render(&format),
            "user-1 a@b.c acme - [the token has expired] 12"
        );
    }

    #[test]
    fn clf_preset_matches_the_aws_layout() {
        let line = record().render(&AccessLogFormat::Clf);
        assert_eq!(
            line,
            "10.0.0.7 - - [21/Nov/2026:06:23:09 +0000] \"GET /pets/{id} HTTP/1.1\" 200 12 \
             c6af9ac6-7b61-11e6-9a41-93e8deadbeef f-ZvmEb3PHcEeNg="
        );
    }

    #[test]
    fn json_preset_is_valid_json() {
        let line = record().render(&AccessLogFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["status"], 200);
        assert_eq!(v["resourcePath"], "/pets/{id}");
        assert_eq!(v["isCanaryRequest"], "false");
        assert_eq!(v["integrationStatus"], "-");
    }

    #[test]
    fn templates_render_unknown_variables_as_dash() {
        let line = record().render(&AccessLogFormat::Template(
            "$context.apiId/$context.stage. $context.nope $context.error.messageString".into(),
        ));
        assert_eq!(line, "a1b2c3d4e5/prod. - -");
    }

    #[test]
    fn cache_status_is_a_context_variable_and_in_the_json_preset() {
        let template = AccessLogFormat::Template("$context.requestId $context.cacheStatus".into());
        assert!(record().render(&template).ends_with(" -"), "no caching: -");
        let hit = AccessRecord {
            cache_status: Some("HIT"),
            ..record()
        };
        assert!(hit.render(&template).ends_with(" HIT"));
        let v: serde_json::Value = serde_json::from_str(&hit.render(&AccessLogFormat::Json)).expect("json");
        assert_eq!(v["cacheStatus"], "HIT");
    }

    #[test]
    fn websocket_events_carry_their_connection_route_and_message() {
        let template = AccessLogFormat::Template(
            "$context.connectionId $context.routeKey $context.eventType $context.messageId".into(),
        );
        assert_eq!(record().render(&template), "- - - -", "a REST request has none");
        let message = AccessRecord {
            websocket: Some(WebSocketEvent {
                connection_id: "AbCdEfGhIjKlMnO=".into(),
                route_key: "sendmessage".into(),
                event_type: "MESSAGE",
                message_id: Some("ZyXwVuTsRqPoNmL=".into()),
            }),
            ..record()
        };
        assert_eq!(
            message.render(&template),
            "AbCdEfGhIjKlMnO= sendmessage MESSAGE ZyXwVuTsRqPoNmL="
        );
        let v: serde_json::Value =
            serde_json::from_str(&message.render(&AccessLogFormat::Json)).expect("json");
        assert_eq!(v["connectionId"], "AbCdEfGhIjKlMnO=");
        assert_eq!(v["eventType"], "MESSAGE");
        let rest: serde_json::Value =
            serde_json::from_str(&record().render(&AccessLogFormat::Json)).expect("json");
        assert!(rest.get("connectionId").is_none(), "REST lines keep their fields");
    }
}
