//! The events a function gets, in AWS's shapes: the TOKEN and REQUEST authorizer events, and
//! the request half shared with the Lambda proxy event (payload format 1.0).

use http::HeaderMap;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};

/// The account id in method ARNs (`arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH`).
pub const ACCOUNT_ID: &str = "000000000000";

/// What the request-shaped events say about a request, gathered by the phase that sends one.
#[derive(Debug, Default)]
pub struct RequestFacts<'a> {
    pub api_id: &'a str,
    pub stage: &'a str,
    pub resource_path: &'a str,
    pub resource_id: &'a str,
    pub http_method: &'a str,
    /// The request path with the stage (`/prod/pets/1`), as received.
    pub path: &'a str,
    /// The path within the stage (`/pets/1`), as received.
    pub stage_path: &'a str,
    pub query: Option<&'a str>,
    pub headers: Option<&'a HeaderMap>,
    /// Path parameters, percent-encoded as received.
    pub path_params: Vec<(&'a str, &'a str)>,
    pub stage_variables: Option<&'a std::collections::BTreeMap<String, String>>,
    pub request_id: String,
    pub extended_request_id: String,
    pub source_ip: String,
    pub protocol: &'a str,
    pub domain_name: &'a str,
    pub request_time_epoch: u128,
    pub region: &'a str,
    /// WebSocket APIs: the route the authorizer guards (`$connect`), which names the method
    /// in its ARN (`…/{stage}/$connect`) in place of the HTTP method and path.
    pub route_key: Option<&'a str>,
}

/// A method ARN: `arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH` (the path within
/// the stage, without its leading `/`).
pub fn method_arn(region: &str, api_id: &str, stage: &str, http_method: &str, stage_path: &str) -> String {
    let path = stage_path.trim_start_matches('/');
    let mut arn = String::with_capacity(
        40 + region.len() + api_id.len() + stage.len() + http_method.len() + path.len(),
    );
    for part in [
        "arn:aws:execute-api:",
        region,
        ":",
        ACCOUNT_ID,
        ":",
        api_id,
        "/",
        stage,
        "/",
        http_method,
        "/",
        path,
    ] {
        arn.push_str(part);
    }
    arn
}

/// The ARN of a WebSocket route (`$connect`): `arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/ROUTE`.
pub fn route_arn(region: &str, api_id: &str, stage: &str, route: &str) -> String {
    format!("arn:aws:execute-api:{region}:{ACCOUNT_ID}:{api_id}/{stage}/{route}")
}

impl RequestFacts<'_> {
    /// The method ARN of the request.
    pub fn method_arn(&self) -> String {
        if let Some(route) = self.route_key {
            return route_arn(self.region, self.api_id, self.stage, route);
        }
        method_arn(
            self.region,
            self.api_id,
            self.stage,
            self.http_method,
            self.stage_path,
        )
    }

    /// The fields of a REQUEST authorizer event and of a Lambda proxy event: `resource`,
    /// `path`, `httpMethod`, `headers`, `multiValueHeaders`, `queryStringParameters`,
    /// `multiValueQueryStringParameters`, `pathParameters`, `stageVariables`,
    /// `requestContext` (without `authorizer`).
    pub fn request_fields(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("resource".into(), json!(self.resource_path));
        out.insert("path".into(), json!(self.stage_path));
        out.insert("httpMethod".into(), json!(self.http_method));
        let (headers, multi_headers) = headers_json(self.headers);
        out.insert("headers".into(), headers);
        out.insert("multiValueHeaders".into(), multi_headers);
        let (query, multi_query) = query_json(self.query);
        out.insert("queryStringParameters".into(), query);
        out.insert("multiValueQueryStringParameters".into(), multi_query);
        let params: Map<String, Value> = self
            .path_params
            .iter()
            .map(|(k, v)| (k.to_string(), json!(percent_decode_str(v).decode_utf8_lossy())))
            .collect();
        out.insert(
            "pathParameters".into(),
            if params.is_empty() {
                Value::Null
            } else {
                Value::Object(params)
            },
        );
        out.insert(
            "stageVariables".into(),
            match self.stage_variables {
                Some(v) if !v.is_empty() => json!(v),
                _ => Value::Null,
            },
        );
        out.insert("requestContext".into(), self.request_context());
        out
    }

    fn request_context(&self) -> Value {
        let user_agent = self
            .headers
            .and_then(|h| h.get(http::header::USER_AGENT))
            .and_then(|v| v.to_str().ok());
        json!({
            "resourceId": self.resource_id,
            "resourcePath": self.resource_path,
            "httpMethod": self.http_method,
            "extendedRequestId": self.extended_request_id,
            "path": self.path,
            "accountId": ACCOUNT_ID,
            "protocol": self.protocol,
            "stage": self.stage,
            "domainName": self.domain_name,
            "requestTimeEpoch": self.request_time_epoch,
            "requestId": self.request_id,
            "apiId": self.api_id,
            "identity": {
                "sourceIp": self.source_ip,
                "userAgent": user_agent,
                "apiKey": Value::Null,
                "apiKeyId": Value::Null,
                "caller": Value::Null,
                "user": Value::Null,
                "userArn": Value::Null,
                "accountId": Value::Null,
                "accessKey": Value::Null,
                "cognitoIdentityId": Value::Null,
                "cognitoIdentityPoolId": Value::Null,
                "cognitoAuthenticationType": Value::Null,
                "cognitoAuthenticationProvider": Value::Null,
                "principalOrgId": Value::Null,
            },
        })
    }

    /// The TOKEN authorizer event.
    pub fn token_event(&self, token: &str) -> Value {
        json!({
            "type": "TOKEN",
            "authorizationToken": token,
            "methodArn": self.method_arn(),
        })
    }

    /// The REQUEST authorizer event.
    pub fn request_event(&self) -> Value {
        let mut m = self.request_fields();
        if let (Some(route), Some(Value::Object(rc))) = (self.route_key, m.get_mut("requestContext")) {
            rc.insert("routeKey".into(), json!(route));
            rc.insert("eventType".into(), json!("CONNECT"));
        }
        m.insert("type".into(), json!("REQUEST"));
        m.insert("methodArn".into(), json!(self.method_arn()));
        Value::Object(m)
    }
}

/// `headers` (the last value of each name) and `multiValueHeaders` (all), or nulls when there
/// are none. Names as received (lower case here).
fn headers_json(headers: Option<&HeaderMap>) -> (Value, Value) {
    let Some(headers) = headers.filter(|h| !h.is_empty()) else {
        return (Value::Null, Value::Null);
    };
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        single.insert(name.as_str().to_string(), json!(v));
        match multi.get_mut(name.as_str()) {
            Some(Value::Array(list)) => list.push(json!(v)),
            _ => {
                multi.insert(name.as_str().to_string(), json!([v]));
            }
        }
    }
    (Value::Object(single), Value::Object(multi))
}

/// `queryStringParameters` (the last value of each name) and
/// `multiValueQueryStringParameters` (all), decoded, or nulls without a query.
fn query_json(query: Option<&str>) -> (Value, Value) {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return (Value::Null, Value::Null);
    };
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        single.insert(k.to_string(), json!(v));
        match multi.get_mut(k.as_ref()) {
            Some(Value::Array(list)) => list.push(json!(v)),
            _ => {
                multi.insert(k.to_string(), json!([v]));
            }
        }
    }
    (Value::Object(single), Value::Object(multi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_events_have_the_aws_shape() {
        let mut headers = HeaderMap::new();
        headers.append("x-tenant", "acme".parse().expect("value"));
        headers.append("accept", "a".parse().expect("value"));
        headers.append("accept", "b".parse().expect("value"));
        let vars = std::collections::BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let facts = RequestFacts {
            api_id: "abc123",
            stage: "prod",
            resource_path: "/pets/{id}",
            http_method: "GET",
            path: "/prod/pets/a%20b",
            stage_path: "/pets/a%20b",
            query: Some("q=1&q=2&x=y%20z"),
            headers: Some(&headers),
            path_params: vec![("id", "a%20b")],
            stage_variables: Some(&vars),
            region: "us-east-1",
            ..Default::default()
        };
        let e = facts.request_event();
        assert_eq!(e["type"], "REQUEST");
        assert_eq!(
            e["methodArn"],
            "arn:aws:execute-api:us-east-1:000000000000:abc123/prod/GET/pets/a%20b"
        );
        assert_eq!(e["resource"], "/pets/{id}");
        assert_eq!(e["path"], "/pets/a%20b");
        assert_eq!(e["headers"]["x-tenant"], "acme");
        assert_eq!(e["headers"]["accept"], "b");
        assert_eq!(e["multiValueHeaders"]["accept"], json!(["a", "b"]));
        assert_eq!(e["queryStringParameters"]["q"], "2");
        assert_eq!(e["queryStringParameters"]["x"], "y z");
        assert_eq!(e["multiValueQueryStringParameters"]["q"], json!(["1", "2"]));
        assert_eq!(e["pathParameters"]["id"], "a b");
        assert_eq!(e["stageVariables"]["env"], "prod");
        assert_eq!(e["requestContext"]["stage"], "prod");
        let t = facts.token_event("Bearer x");
        assert_eq!(
            t,
            json!({"type": "TOKEN", "authorizationToken": "Bearer x", "methodArn": facts.method_arn()})
        );
        let empty = RequestFacts::default().request_fields();
        assert_eq!(empty["headers"], Value::Null);
        assert_eq!(empty["queryStringParameters"], Value::Null);
        assert_eq!(empty["pathParameters"], Value::Null);
    }
}
