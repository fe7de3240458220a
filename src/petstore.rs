//! The examples' backend: a small petstore answering JSON over HTTP/1.1.
//!
//! `turnpike local --examples` serves it on a loopback port and writes that port into the
//! EndpointSlice of the Service `petstore`, so the examples' private integrations reach it as
//! they would a pod; `turnpike petstore` serves it alone, which is how config/backend runs it
//! in a cluster. It is served by hyper; nothing in it is Turnpike's data plane.
//!
//! Routes: GET `/pets`, `/pets/{id}`, and the same under `/v1` and `/v2`; POST `/soap`, the
//! SOAP example's backend ([`crate::soap`]); POST
//! `/2015-03-31/functions/demo-authorizer/invocations`, the Lambda Invoke API of the
//! authorizers example's demo function ([`demo_authorizer`]). `/v2` answers
//! add a `name` to each pet, so a canary that calls `/v2` is visible in the body; every answer
//! carries `x-petstore-release`.

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The pets: AWS's PetStore sample data, with names for release v2.
const PETS: &[(u64, &str, f64, &str)] = &[
    (1, "dog", 249.99, "Rex"),
    (2, "cat", 124.99, "Tom"),
    (3, "fish", 0.99, "Nemo"),
];

/// Serves connections from `listener` until the task is dropped or aborted.
pub async fn serve(listener: TcpListener) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "petstore: accept failed");
                continue;
            }
        };
        tokio::spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                if req.method() == Method::POST && req.uri().path() == "/soap" {
                    return Ok::<_, Infallible>(soap(req).await);
                }
                if req.method() == Method::POST && req.uri().path() == DEMO_AUTHORIZER_PATH {
                    return Ok::<_, Infallible>(invoke_demo_authorizer(req).await);
                }
                Ok::<_, Infallible>(answer(req.method(), req.uri().path()))
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "petstore: connection ended");
            }
        });
    }
}

/// `POST /soap`: the SOAP example's backend ([`crate::soap`]), on an envelope of at most
/// [`crate::soap::MAX_ENVELOPE`] bytes.
async fn soap(req: Request<Incoming>) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt as _;
    let (parts, body) = req.into_parts();
    match http_body_util::Limited::new(body, crate::soap::MAX_ENVELOPE)
        .collect()
        .await
    {
        Ok(body) => crate::soap::answer(&parts.headers, &body.to_bytes()),
        Err(_) => json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "v1",
            &json!({"message": "the envelope is too large"}),
        ),
    }
}

/// Where the demo authorizer is invoked (the Lambda Invoke API of function `demo-authorizer`).
const DEMO_AUTHORIZER_PATH: &str = "/2015-03-31/functions/demo-authorizer/invocations";
/// The most bytes of an authorizer event read.
const MAX_EVENT: usize = 256 * 1024;

/// Invokes [`demo_authorizer`] with the posted event, as a function host would.
async fn invoke_demo_authorizer(req: Request<Incoming>) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt as _;
    let event = match http_body_util::Limited::new(req.into_body(), MAX_EVENT)
        .collect()
        .await
    {
        Ok(body) => serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let mut resp = Response::new(Full::new(Bytes::from(demo_authorizer(&event).to_string())));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The authorizers example's function, answering TOKEN and REQUEST authorizer events as a
/// Lambda authorizer does: the token `Bearer allow` (TOKEN) or the header `x-tenant: acme`
/// (REQUEST) is allowed to invoke the method, with principal `demo-user` and a context the
/// example maps to the backend; anything else gets an explicit Deny (403). A demo, not a
/// secret: the token is documented in config/examples/authorizers.yaml.
pub fn demo_authorizer(event: &Value) -> Value {
    let allowed = match event["type"].as_str() {
        Some("TOKEN") => event["authorizationToken"] == "Bearer allow",
        Some("REQUEST") => event["headers"]["x-tenant"] == "acme",
        _ => false,
    };
    let arn = event["methodArn"].as_str().unwrap_or("*");
    json!({
        "principalId": if allowed { "demo-user" } else { "anonymous" },
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Action": "execute-api:Invoke",
                "Effect": if allowed { "Allow" } else { "Deny" },
                "Resource": arn,
            }],
        },
        "context": {"plan": "demo", "tenant": event["headers"]["x-tenant"].as_str().unwrap_or("")},
    })
}

/// Binds `addr` and serves (for `turnpike petstore`).
pub async fn bind_and_serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "petstore listening");
    serve(listener).await;
    Ok(())
}

/// The answer to `method` on `path`.
fn answer(method: &Method, path: &str) -> Response<Full<Bytes>> {
    let path = path.trim_end_matches('/');
    let (release, rest) = match path.strip_prefix("/v2") {
        Some(rest) => ("v2", rest),
        None => ("v1", path.strip_prefix("/v1").unwrap_or(path)),
    };
    if method != Method::GET {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            release,
            &json!({"message": "the petstore answers GET only"}),
        );
    }
    let pet = |&(id, kind, price, name): &(u64, &str, f64, &str)| {
        let mut pet = json!({"id": id, "type": kind, "price": price});
        if release == "v2" {
            pet["name"] = json!(name);
        }
        pet
    };
    match rest.strip_prefix("/pets") {
        Some("") => json_response(
            StatusCode::OK,
            release,
            &Value::Array(PETS.iter().map(pet).collect()),
        ),
        Some(id) => match PETS
            .iter()
            .find(|p| id.strip_prefix('/').and_then(|i| i.parse().ok()) == Some(p.0))
        {
            Some(p) => json_response(StatusCode::OK, release, &pet(p)),
            None => json_response(
                StatusCode::NOT_FOUND,
                release,
                &json!({"message": format!("no pet {}", id.trim_start_matches('/'))}),
            ),
        },
        None => json_response(StatusCode::NOT_FOUND, release, &json!({"message": "not found"})),
    }
}

fn json_response(status: StatusCode, release: &'static str, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert("x-petstore-release", header::HeaderValue::from_static(release));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: Method, path: &str) -> (StatusCode, &'static str, Value) {
        let resp = answer(&method, path);
        let release = match resp.headers().get("x-petstore-release").map(|v| v.as_bytes()) {
            Some(b"v2") => "v2",
            Some(b"v1") => "v1",
            other => panic!("release header {other:?}"),
        };
        let status = resp.status();
        let body = body_of(resp);
        (status, release, serde_json::from_slice(&body).expect("JSON"))
    }

    fn body_of(resp: Response<Full<Bytes>>) -> Bytes {
        use http_body_util::BodyExt as _;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(resp.into_body().collect()).expect("body").to_bytes()
    }

    #[test]
    fn pets_by_release() {
        let (status, release, pets) = call(Method::GET, "/pets");
        assert_eq!((status, release), (StatusCode::OK, "v1"));
        assert_eq!(pets[0], json!({"id": 1, "type": "dog", "price": 249.99}));
        assert_eq!(
            call(Method::GET, "/v1/pets/").2,
            pets,
            "/v1 and a trailing slash: the same"
        );
        let (_, release, pet) = call(Method::GET, "/v2/pets/3");
        assert_eq!(release, "v2");
        assert_eq!(
            pet,
            json!({"id": 3, "type": "fish", "price": 0.99, "name": "Nemo"})
        );
    }

    #[test]
    fn the_demo_authorizer_allows_the_documented_token_only() {
        let arn = "arn:aws:execute-api:local:000000000000:abc/prod/GET/pets/1";
        let effect =
            |event: Value| demo_authorizer(&event)["policyDocument"]["Statement"][0]["Effect"].clone();
        let token = |t: &str| json!({"type": "TOKEN", "authorizationToken": t, "methodArn": arn});
        assert_eq!(effect(token("Bearer allow")), "Allow");
        assert_eq!(
            demo_authorizer(&token("Bearer allow"))["policyDocument"]["Statement"][0]["Resource"],
            arn
        );
        assert_eq!(effect(token("Bearer other")), "Deny");
        assert_eq!(effect(token("allow")), "Deny");
        let request =
            |tenant: &str| json!({"type": "REQUEST", "headers": {"x-tenant": tenant}, "methodArn": arn});
        assert_eq!(effect(request("acme")), "Allow");
        assert_eq!(effect(request("other")), "Deny");
        assert_eq!(effect(Value::Null), "Deny");
    }

    #[test]
    fn unknown_pets_paths_and_methods_say_so() {
        let (status, _, body) = call(Method::GET, "/pets/9");
        assert_eq!(
            (status, body),
            (StatusCode::NOT_FOUND, json!({"message": "no pet 9"}))
        );
        assert_eq!(call(Method::GET, "/owners").0, StatusCode::NOT_FOUND);
        assert_eq!(call(Method::POST, "/pets").0, StatusCode::METHOD_NOT_ALLOWED);
    }
}
