//! OpenAPI import: any text is a RestApi spec with warnings or an import error, never a panic;
//! and whatever imports exports (oas30 and swagger) and imports again without a panic.
#![no_main]

use turnpike_openapi::{ExportOptions, ExportType, Extensions, export, import};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(imported) = import(text) else {
        return;
    };
    let _ = turnpike_api::convert::rest_api("default", &imported.spec);
    for kind in [ExportType::Oas30, ExportType::Swagger] {
        let options = ExportOptions {
            kind,
            extensions: Extensions {
                integrations: true,
                authorizers: true,
                apigateway: true,
            },
            title: "fuzz".into(),
            version: "1".into(),
            host: Some("abcdefghij.execute-api.local.turnpike.dev".into()),
            stage: Some("prod".into()),
        };
        // A WebSocket API is refused by export, never a panic.
        if let Ok(doc) = export(&imported.spec, &options) {
            let _ = import(&doc.to_string());
        }
    }
});
