//! The SOAP example's backend: one SOAP 1.1 operation, `GetPet`, over the petstore's pets.
//!
//! `turnpike local --examples` serves it beside the petstore (`POST /soap` on the same port),
//! so config/examples/soap.yaml can put a JSON API in front of it with mapping templates; the
//! end-to-end tests include this file and serve it alone. It answers an envelope whose body is
//! `<pet:GetPet><pet:petId>N</pet:petId></pet:GetPet>` (namespace `urn:turnpike:petstore`)
//! with a `GetPetResponse`, and anything else with a SOAP Fault (HTTP 500, as SOAP 1.1 says).

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode, header};
use http_body_util::Full;

/// The operation's namespace.
pub const NAMESPACE: &str = "urn:turnpike:petstore";

/// The largest request envelope read.
pub const MAX_ENVELOPE: usize = 64 * 1024;

/// The pets (the petstore's, with names).
const PETS: &[(u64, &str, &str, &str)] = &[
    (1, "dog", "Rex", "249.99"),
    (2, "cat", "Tom", "124.99"),
    (3, "fish", "Nemo", "0.99"),
];

/// The answer to a request with these headers and this envelope.
pub fn answer(headers: &HeaderMap, envelope: &[u8]) -> Response<Full<Bytes>> {
    let xml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/xml"));
    if !xml {
        return fault("soap:Client", "the envelope must be sent as text/xml");
    }
    let Ok(envelope) = std::str::from_utf8(envelope) else {
        return fault("soap:Client", "the envelope is not UTF-8");
    };
    let Some(body) = element(envelope, "Body") else {
        return fault("soap:Client", "no soap:Body in the envelope");
    };
    let Some(operation) = element(body, "GetPet") else {
        return fault("soap:Client", "unknown operation: only GetPet is served");
    };
    let Some(id) = element(operation, "petId").and_then(|t| t.trim().parse::<u64>().ok()) else {
        return fault("soap:Client", "GetPet needs a numeric petId");
    };
    match PETS.iter().find(|p| p.0 == id) {
        Some((id, kind, name, price)) => envelope_response(
            StatusCode::OK,
            &format!(
                "<pet:GetPetResponse xmlns:pet=\"{NAMESPACE}\"><pet:id>{id}</pet:id><pet:type>{kind}</pet:type><pet:name>{name}</pet:name><pet:price>{price}</pet:price></pet:GetPetResponse>"
            ),
        ),
        None => fault("soap:Client", &format!("no pet {id}")),
    }
}

/// The text inside the first element named `local` (any namespace prefix), or `None`.
fn element<'x>(xml: &'x str, local: &str) -> Option<&'x str> {
    let mut from = 0;
    while let Some(at) = xml[from..].find('<').map(|i| i + from) {
        let tag_end = xml[at..].find('>')? + at;
        let tag = &xml[at + 1..tag_end];
        let name = tag.split_whitespace().next().unwrap_or_default();
        let local_name = name.rsplit(':').next().unwrap_or_default();
        if local_name == local && !tag.ends_with('/') {
            let close = format!("</{name}>");
            let end = xml[tag_end + 1..].find(&close)? + tag_end + 1;
            return Some(&xml[tag_end + 1..end]);
        }
        from = tag_end + 1;
    }
    None
}

fn fault(code: &str, message: &str) -> Response<Full<Bytes>> {
    let message = message.replace('&', "&amp;").replace('<', "&lt;");
    envelope_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!(
            "<soap:Fault><faultcode>{code}</faultcode><faultstring>{message}</faultstring></soap:Fault>"
        ),
    )
}

fn envelope_response(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{body}</soap:Body></soap:Envelope>"
    );
    let mut resp = Response::new(Full::new(Bytes::from(xml)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(content_type: &str, envelope: &str) -> (StatusCode, String) {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().expect("header"));
        let resp = answer(&headers, envelope.as_bytes());
        let status = resp.status();
        let body = futures_body(resp);
        (status, body)
    }

    fn futures_body(resp: Response<Full<Bytes>>) -> String {
        use http_body_util::BodyExt as _;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let bytes = rt.block_on(resp.into_body().collect()).expect("body").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    const GET_2: &str = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:pet="urn:turnpike:petstore"><soap:Body><pet:GetPet><pet:petId> 2 </pet:petId></pet:GetPet></soap:Body></soap:Envelope>"#;

    #[test]
    fn get_pet_answers_the_pet_and_faults_otherwise() {
        let (status, body) = call("text/xml; charset=utf-8", GET_2);
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("<pet:name>Tom</pet:name><pet:price>124.99</pet:price>"),
            "{body}"
        );
        let (status, body) = call("text/xml", &GET_2.replace(" 2 ", "9"));
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("<faultstring>no pet 9</faultstring>"), "{body}");
        let (status, _) = call("application/json", GET_2);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let (status, body) = call(
            "text/xml",
            "<soap:Envelope><soap:Body><Other/></soap:Body></soap:Envelope>",
        );
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("only GetPet"), "{body}");
    }
}
