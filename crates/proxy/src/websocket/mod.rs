//! WebSocket APIs: the upgrade, `$connect`, routed messages, `$disconnect`, and the
//! connection's life.
//!
//! ```text
//! GET + Upgrade: websocket on a WEBSOCKET API's stage URL
//!   limits → authority → normalize → route::locate → policy → canary
//!   → authorize ($connect's authorizer) → keys ($connect) → throttle → $connect integration
//!   └ a refusal or a non-2xx answer refuses the upgrade with that answer; else 101
//! each message ─ route selection ($request.body.X, else $default, else a Forbidden frame)
//!   → throttle → integration (AWS event as the body, `connectionId` header)
//!   → a two-way route's answer goes back as a message
//! close, idle (10 min), lifetime (2 h), DELETE @connections, drain (1001) ─ $disconnect
//! ```
//!
//! A connection keeps the routes it connected with (the stage variant of its snapshot) until
//! it closes: a table swap never drops or re-routes an open connection. Keys, Service
//! endpoints and throttles are read from the current table at each message. Frames over
//! 32 KiB and messages over 128 KiB close the connection with 1009; pings are answered by the
//! gateway and count as activity.

pub mod connections;
pub mod relay;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, header, request::Parts};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Error as WsError, Message,
        protocol::{CloseFrame, Role, WebSocketConfig, frame::coding::CloseCode},
    },
};
use tokio_util::sync::CancellationToken;

use crate::{
    Shared,
    body::{ProxyBody, RequestBody},
    ctx::{ConnInfo, RequestCtx},
    error::Reject,
    ids::{self, RequestIds},
    phase,
    service::{self, ResponseBody},
    usage::Admission,
};
use connections::{Command, Handle};
use turnpike_core::model::{
    WebSocketDef, WebSocketRoute,
    websocket::{CONNECT, DISCONNECT},
};
use turnpike_core::routing::{ApiEntry, Miss, StageEntry, StageVariant};
use turnpike_telemetry::{
    access_log::{self, AccessRecord, WebSocketEvent},
    metrics::StageLabels,
};

/// The limits of WebSocket connections (AWS's by default).
#[derive(Clone, Debug)]
pub struct WebSocketLimits {
    /// A connection with no message either way for this long is closed (1001).
    pub idle_timeout: Duration,
    /// A connection is closed (1001) after this long, whatever it does.
    pub max_lifetime: Duration,
    /// Larger frames close the connection with 1009.
    pub max_frame_bytes: usize,
    /// Larger messages (all frames of one message) close the connection with 1009.
    pub max_message_bytes: usize,
    /// At shutdown: how long a closed socket may take to answer the close before it is
    /// dropped.
    pub close_grace: Duration,
    /// With Redis: how long a replica's record of a connection it holds lives without a
    /// refresh (refreshed every third of it), so a dead replica's connections answer 410
    /// after at most this long.
    pub owner_ttl: Duration,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        WebSocketLimits {
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(7200),
            max_frame_bytes: 32 * 1024,
            max_message_bytes: 128 * 1024,
            close_grace: Duration::from_secs(1),
            owner_ttl: Duration::from_secs(60),
        }
    }
}

/// `connectionId`: the header that names the connection to HTTP backends.
pub const CONNECTION_ID: HeaderName = HeaderName::from_static("connectionid");

/// Whether a request head asks for a WebSocket upgrade (RFC 6455 §4.2.1).
pub fn is_upgrade(parts: &Parts) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        parts.headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    parts.method == Method::GET
        && parts.version == http::Version::HTTP_11
        && has_token(header::UPGRADE, "websocket")
        && has_token(header::CONNECTION, "upgrade")
        && parts.headers.contains_key(header::SEC_WEBSOCKET_KEY)
}

/// The outcome of an upgrade request.
pub enum Handshake {
    /// Answer this and close (not a WebSocket API, refused key, `$connect` said no, ...).
    Refused(Box<Response<ResponseBody>>),
    /// Write 101 with this `Sec-WebSocket-Accept`, then [`run`] the connection.
    Accepted(Accepted),
}

/// An accepted connection, before its first frame.
pub struct Accepted {
    pub accept_key: HeaderValue,
    session: Session,
}

/// A connection the HTTP layer upgraded (101 written), for [`run`].
pub struct Upgraded<IO> {
    pub io: IO,
    /// What the HTTP layer had read past the upgrade request.
    pub read: Vec<u8>,
    pub accepted: Accepted,
}

/// What a connection holds for its life: the snapshot entries it connected with, and what
/// each event tells the backend about it.
struct Session {
    api: Arc<ApiEntry>,
    stage: Arc<StageEntry>,
    variant: Arc<StageVariant>,
    handle: Arc<Handle>,
    host: Option<HeaderValue>,
    /// The labels of its metrics.
    labels: StageLabels,
    /// What `$connect`'s authorizer said, as `requestContext.authorizer` of every event.
    authorizer: Option<serde_json::Value>,
}

/// Runs the upgrade request through the phases and `$connect`.
pub async fn handshake(shared: &Arc<Shared>, conn: &ConnInfo, mut parts: Parts) -> Handshake {
    let table = shared.store.load();
    let ids = RequestIds::new(parts.headers.get(&service::REQUEST_ID));
    let uri = parts.uri.clone();
    let path = phase::normalize::path(uri.path(), shared.config.allow_raw_path_segments);
    let host = phase::authority::decide(&parts);
    let mut ctx = RequestCtx::new(shared, conn, &table, ids);
    ctx.host = host.as_ref().ok().and_then(Option::as_ref);
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(Box::from);
    let handle = Handle::new(ids::connection_id().into(), conn.peer.ip(), user_agent);
    let connected = match connect_phases(&mut ctx, &path, &host, &parts) {
        Ok(ws) => match identify(&mut ctx, &parts).await {
            Ok(()) => admit(&mut ctx).await.map(|()| ws.route(CONNECT)),
            Err(reject) => Err(reject),
        },
        Err(reject) => Err(reject),
    };
    let connect_route = match connected {
        Ok(route) => route,
        Err(reject) => return Handshake::Refused(Box::new(service::answer(ctx, &parts, Err(reject)))),
    };
    let (Some(api), Some(stage), Some(variant)) = (ctx.api, ctx.stage, ctx.variant) else {
        let reject = Reject::Internal("upgrade without a stage".into());
        return Handshake::Refused(Box::new(service::answer(ctx, &parts, Err(reject))));
    };
    let Some(mut session) = session_of(&table, api, stage, variant, handle, ctx.host.cloned()) else {
        let reject = Reject::Internal("upgrade on an API that left the table".into());
        return Handshake::Refused(Box::new(service::answer(ctx, &parts, Err(reject))));
    };
    session.authorizer = ctx
        .identity
        .as_ref()
        .map(crate::authorizer::Identity::to_event_json);
    if let Some(route) = &connect_route {
        let headers = std::mem::take(&mut parts.headers);
        let event = Event {
            route_key: CONNECT,
            event_type: "CONNECT",
            message_id: None,
            body: None,
            headers: Some(&headers),
            query: uri.query(),
        };
        let result = call(&mut ctx, &session, route, &event).await;
        parts.headers = headers;
        match result {
            Ok(resp) if resp.status().is_success() => {}
            refused => return Handshake::Refused(Box::new(service::answer(ctx, &parts, refused))),
        }
    }
    let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Handshake::Refused(Box::new(service::answer(
            ctx,
            &parts,
            Err(Reject::BadRequest("no key")),
        )));
    };
    let accept_key = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let Ok(accept_key) = HeaderValue::from_str(&accept_key) else {
        let reject = Reject::Internal("accept key".into());
        return Handshake::Refused(Box::new(service::answer(ctx, &parts, Err(reject))));
    };
    log_event(&mut ctx, &session, CONNECT, "CONNECT", None, 200);
    Handshake::Accepted(Accepted { accept_key, session })
}

/// The phases of an upgrade request, up to the `$connect` integration: the API's routes.
fn connect_phases<'a>(
    ctx: &mut RequestCtx<'a>,
    path: &'a Result<std::borrow::Cow<'a, str>, Reject>,
    host: &Result<Option<HeaderValue>, Reject>,
    parts: &Parts,
) -> Result<&'a WebSocketDef, Reject> {
    phase::limits::check(parts, &ctx.shared.config.limits)?;
    host.as_ref().map_err(Reject::clone)?;
    let path: &'a str = path.as_ref().map_err(Reject::clone)?;
    let host = ctx.host.and_then(|h| h.to_str().ok());
    if let phase::Flow::Respond(_) = phase::route::locate(ctx, host, path)? {
        return Err(Reject::NoRoute(Miss::Resource));
    }
    phase::policy::check(ctx, &parts.method)?;
    phase::canary::pick(ctx, &parts.headers)?;
    let variant = ctx
        .variant
        .ok_or(Reject::Internal("upgrade before canary pick".into()))?;
    // A WebSocket API is served at the stage's root only; a REST API has no upgrade.
    let ws = variant
        .routes
        .websocket()
        .filter(|_| ctx.path == "/")
        .ok_or(Reject::NoRoute(Miss::Resource))?;
    if let Some(route) = ws.route(CONNECT) {
        ctx.method = Some(&route.method);
    }
    Ok(ws)
}

/// `$connect`'s authorizer, then its API key (which the authorizer may supply), as for a REST
/// method: a refusal refuses the upgrade (401, 403, or 500 for a failed authorizer).
async fn identify(ctx: &mut RequestCtx<'_>, parts: &Parts) -> Result<(), Reject> {
    if ctx.method.is_none() {
        return Ok(());
    }
    if phase::authorize::wanted(ctx) {
        Box::pin(phase::authorize::run(ctx, parts)).await?;
    }
    phase::keys::authenticate(ctx, &parts.headers)
}

/// The throttle (and, on `$connect` with a key, the quota).
async fn admit(ctx: &mut RequestCtx<'_>) -> Result<(), Reject> {
    match phase::throttle::admit(ctx) {
        Admission::Now(result) => result,
        Admission::Later(wait) => wait.await,
    }
}

/// The owned entries of the snapshot a connection is served from.
fn session_of(
    table: &turnpike_core::routing::RoutingTable,
    api: &ApiEntry,
    stage: &StageEntry,
    variant: &StageVariant,
    handle: Arc<Handle>,
    host: Option<HeaderValue>,
) -> Option<Session> {
    let api = table.api(api.id.as_str())?.clone();
    let stage_arc = api.stages.get(&stage.name)?.clone();
    let variant = if std::ptr::eq(variant, &*stage_arc.primary) {
        stage_arc.primary.clone()
    } else {
        stage_arc.canary.as_ref()?.variant.clone()
    };
    let labels = StageLabels {
        api: api.id.as_str().to_string(),
        stage: stage_arc.name.to_string(),
    };
    // A copy: the request's value shares the buffer the whole head was read into, which the
    // connection would otherwise keep for its life.
    let host = host.and_then(|h| HeaderValue::from_bytes(h.as_bytes()).ok());
    Some(Session {
        api,
        stage: stage_arc,
        variant,
        handle,
        host,
        labels,
        authorizer: None,
    })
}

/// What one integration call tells the backend.
struct Event<'e> {
    route_key: &'e str,
    /// CONNECT, MESSAGE or DISCONNECT.
    event_type: &'static str,
    message_id: Option<&'e str>,
    body: Option<&'e [u8]>,
    /// The upgrade request's headers (CONNECT only).
    headers: Option<&'e HeaderMap>,
    query: Option<&'e str>,
}

/// The AWS event of a route call, as AWS hands it to a function: `requestContext` with the
/// connection's facts, the message `body` and, on CONNECT, the request's headers and query.
fn event_json(ctx: &RequestCtx<'_>, session: &Session, event: &Event<'_>) -> Bytes {
    use serde_json::{Map, Value, json};
    let handle = &session.handle;
    let now = connections::epoch_millis();
    let mut identity = Map::new();
    identity.insert("sourceIp".into(), Value::from(handle.source_ip.to_string()));
    if let Some(ua) = &handle.user_agent {
        identity.insert("userAgent".into(), Value::from(&**ua));
    }
    let domain = session
        .host
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let mut request_context = json!({
        "routeKey": event.route_key,
        "eventType": event.event_type,
        "extendedRequestId": ctx.ids.extended_str(),
        "requestTime": httpdate::fmt_http_date(std::time::SystemTime::now()),
        "messageDirection": "IN",
        "stage": session.stage.name,
        "connectedAt": handle.connected_at,
        "requestTimeEpoch": now,
        "identity": identity,
        "requestId": ctx.ids.request_id_str(),
        "domainName": domain,
        "connectionId": &*handle.id,
        "apiId": session.api.id.as_str(),
    });
    if let Some(id) = event.message_id {
        request_context["messageId"] = Value::from(id);
    }
    if let Some(authorizer) = &session.authorizer {
        request_context["authorizer"] = authorizer.clone();
    }
    let mut out = Map::new();
    if let Some(headers) = event.headers {
        let mut single = Map::new();
        for (name, value) in headers {
            if name == phase::keys::API_KEY || name.as_str().starts_with("sec-websocket-") {
                continue;
            }
            if let Ok(v) = value.to_str() {
                single.insert(name.as_str().into(), Value::from(v));
            }
        }
        out.insert("headers".into(), Value::Object(single));
        let query: Map<String, Value> = form_urlencoded::parse(event.query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::from(v.into_owned())))
            .collect();
        if !query.is_empty() {
            out.insert("queryStringParameters".into(), Value::Object(query));
        }
    }
    out.insert("requestContext".into(), request_context);
    if let Some(body) = event.body {
        let (body, base64) = match std::str::from_utf8(body) {
            Ok(text) => (text.to_string(), false),
            Err(_) => {
                use base64::Engine as _;
                (base64::engine::general_purpose::STANDARD.encode(body), true)
            }
        };
        out.insert("body".into(), Value::from(body));
        out.insert("isBase64Encoded".into(), Value::from(base64));
    }
    Bytes::from(Value::Object(out).to_string())
}

/// Calls a route's integration with the event: a POST of the event JSON with the
/// `connectionId` header.
async fn call<'a>(
    ctx: &mut RequestCtx<'a>,
    session: &Session,
    route: &'a WebSocketRoute,
    event: &Event<'_>,
) -> Result<Response<ProxyBody>, Reject> {
    let body = event_json(ctx, session, event);
    let mut request = Request::new(());
    *request.method_mut() = Method::POST;
    let headers = request.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(&session.handle.id) {
        headers.insert(CONNECTION_ID, id);
    }
    if let Some(host) = &session.host {
        headers.insert(header::HOST, host.clone());
    }
    let (mut parts, ()) = request.into_parts();
    ctx.method = Some(&route.method);
    phase::integrate::run(ctx, &mut parts, RequestBody::full(body)).await
}

/// Serves an upgraded connection until it ends.
pub async fn run<IO>(upgraded: Upgraded<IO>, shared: Arc<Shared>, conn: ConnInfo, stop: CancellationToken)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let limits = shared.config.websocket.clone();
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_frame_size(Some(limits.max_frame_bytes))
        .max_message_size(Some(limits.max_message_bytes));
    let Upgraded { io, read, accepted } = upgraded;
    let mut ws = WebSocketStream::from_partially_read(io, read, Role::Server, Some(config)).await;
    let session = accepted.session;
    let id = session.handle.id.clone();
    shared.connections.insert(session.handle.clone());
    if let Some(relay) = &shared.relay {
        relay.own(&id).await;
    }
    shared
        .metrics
        .websocket
        .connect_count
        .get_or_create(&session.labels)
        .inc();
    shared.metrics.websocket.connections.inc();
    tracing::debug!(connection_id = %id, api = %session.api.id, stage = %session.stage.name, "connected");

    // One timer for both limits: at each activity it moves to the idle deadline, or to the
    // end of the connection's lifetime when that comes first.
    let end = tokio::time::Instant::now() + limits.max_lifetime;
    let next_deadline = || end.min(tokio::time::Instant::now() + limits.idle_timeout);
    let deadline = tokio::time::sleep_until(next_deadline());
    tokio::pin!(deadline);
    let close = loop {
        tokio::select! {
            () = stop.cancelled() => break Some((CloseCode::Away, "Going away")),
            () = &mut deadline => break Some((CloseCode::Away, "Going away")),
            command = session.handle.next_command() => match command {
                Some(Command::Send(data)) => {
                    session.handle.touch();
                    deadline.as_mut().reset(next_deadline());
                    if ws.send(message_of(data)).await.is_err() {
                        break None;
                    }
                }
                Some(Command::Close) | None => break Some((CloseCode::Normal, "")),
            },
            incoming = ws.next() => match incoming {
                None => break None,
                Some(Ok(Message::Text(text))) => {
                    session.handle.touch();
                    deadline.as_mut().reset(next_deadline());
                    // Boxed: an idle connection's task holds no room for a message's integration call.
                    if let Some(reply) = Box::pin(on_message(&shared, &conn, &session, Bytes::from(text))).await
                        && ws.send(reply).await.is_err()
                    {
                        break None;
                    }
                }
                Some(Ok(Message::Binary(data))) => {
                    session.handle.touch();
                    deadline.as_mut().reset(next_deadline());
                    if let Some(reply) = Box::pin(on_message(&shared, &conn, &session, data)).await
                        && ws.send(reply).await.is_err()
                    {
                        break None;
                    }
                }
                // Pongs are queued by the protocol layer and flushed with the next read or
                // write; pings and pongs keep the connection alive.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    deadline.as_mut().reset(next_deadline());
                }
                Some(Ok(Message::Close(_) | Message::Frame(_))) => {}
                Some(Err(WsError::Capacity(_))) => {
                    shared.metrics.websocket.client_error.get_or_create(&session.labels).inc();
                    break Some((CloseCode::Size, "Message too big"));
                }
                Some(Err(_)) => break None,
            },
        }
    };
    // Pushes from here on answer 410, as for a connection that is gone.
    session.handle.close_commands().await;
    shared.connections.remove(&id);
    if let Some(relay) = &shared.relay {
        relay.disown(&id).await;
    }
    shared.metrics.websocket.connections.dec();
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        if ws.close(Some(frame)).await.is_ok() {
            // The client's own close ends the stream; a client that never answers is dropped.
            let _ = tokio::time::timeout(limits.close_grace, async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        }
    }
    drop(ws);
    Box::pin(disconnect(&shared, &conn, &session)).await;
    tracing::debug!(connection_id = %id, "disconnected");
}

/// A push's bytes as a message: text when they are UTF-8, binary otherwise.
fn message_of(data: Bytes) -> Message {
    match String::from_utf8(data.to_vec()) {
        Ok(text) => Message::text(text),
        Err(_) => Message::Binary(data),
    }
}

/// Runs `$disconnect`, best effort: its answer is ignored.
async fn disconnect(shared: &Arc<Shared>, conn: &ConnInfo, session: &Session) {
    let Some(route) = session
        .variant
        .routes
        .websocket()
        .and_then(|w| w.route(DISCONNECT))
    else {
        return;
    };
    let table = shared.store.load();
    let mut ctx = session_ctx(shared, conn, &table, session);
    let event = Event {
        route_key: DISCONNECT,
        event_type: "DISCONNECT",
        message_id: None,
        body: None,
        headers: None,
        query: None,
    };
    let status = match call(&mut ctx, session, route, &event).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read the answer to its end, so the backend connection is reused.
            let _ = resp.into_body().collect().await;
            status
        }
        Err(reject) => {
            ctx.integration_error.get_or_insert_with(|| reject.to_string());
            500
        }
    };
    log_event(&mut ctx, session, DISCONNECT, "DISCONNECT", None, status);
}

/// A request context for a call on an open connection: its own snapshot entries, the
/// current table (keys, Service endpoints).
fn session_ctx<'a>(
    shared: &'a Shared,
    conn: &'a ConnInfo,
    table: &'a turnpike_core::routing::RoutingTable,
    session: &'a Session,
) -> RequestCtx<'a> {
    let mut ctx = RequestCtx::new(shared, conn, table, RequestIds::new(None));
    ctx.api = Some(&session.api);
    ctx.stage = Some(&session.stage);
    ctx.variant = Some(&session.variant);
    ctx.host = session.host.as_ref();
    ctx
}

/// Routes one message and calls its integration; the reply to send, if any (a two-way
/// route's answer, or an AWS error frame). Writes the message's access-log line.
async fn on_message(
    shared: &Arc<Shared>,
    conn: &ConnInfo,
    session: &Session,
    data: Bytes,
) -> Option<Message> {
    let metrics = &shared.metrics.websocket;
    metrics.message_count.get_or_create(&session.labels).inc();
    let table = shared.store.load();
    let mut ctx = session_ctx(shared, conn, &table, session);
    let ws = session.variant.routes.websocket()?;
    let message_id = ids::connection_id();
    let logged = |ctx: &mut RequestCtx<'_>, route_key: &str, status: u16| {
        log_event(ctx, session, route_key, "MESSAGE", Some(&message_id), status);
    };
    let Some(route) = ws.route_for(&data) else {
        metrics.client_error.get_or_create(&session.labels).inc();
        logged(&mut ctx, "-", 403);
        return Some(error_frame(&ctx, session, "Forbidden"));
    };
    if let Err(reject) = admit(&mut ctx).await {
        metrics.client_error.get_or_create(&session.labels).inc();
        let answer = reject.gateway_response();
        logged(&mut ctx, &route.key, answer.status.as_u16());
        return Some(error_frame(&ctx, session, answer.message));
    }
    let event = Event {
        route_key: &route.key,
        event_type: "MESSAGE",
        message_id: Some(&message_id),
        body: Some(&data),
        headers: None,
        query: None,
    };
    let result = call(&mut ctx, session, route, &event).await;
    if let Some(latency) = ctx.integration_latency {
        metrics
            .integration_latency
            .get_or_create(&session.labels)
            .observe(latency.as_secs_f64() * 1000.0);
    }
    let (reply, status) = match result {
        Ok(resp) => {
            let status = resp.status();
            let body =
                http_body_util::Limited::new(resp.into_body(), shared.config.websocket.max_message_bytes)
                    .collect()
                    .await;
            if !status.is_success() {
                metrics.integration_error.get_or_create(&session.labels).inc();
            }
            match body {
                Ok(body) if route.two_way => (Some(message_of(body.to_bytes())), status.as_u16()),
                Ok(_) => (None, status.as_u16()),
                Err(_) => {
                    metrics.execution_error.get_or_create(&session.labels).inc();
                    (Some(error_frame(&ctx, session, "Internal server error")), 500)
                }
            }
        }
        Err(reject) => {
            tracing::debug!(connection_id = %session.handle.id, error = %reject, "integration failed");
            metrics.integration_error.get_or_create(&session.labels).inc();
            ctx.integration_error.get_or_insert_with(|| reject.to_string());
            (Some(error_frame(&ctx, session, "Internal server error")), 500)
        }
    };
    logged(&mut ctx, &route.key, status);
    reply
}

/// Writes the access-log line of a WebSocket event, in the stage's format (else the
/// gateway's default): the REST variables, and `$context.connectionId`, `routeKey`,
/// `eventType` and `messageId`.
fn log_event(
    ctx: &mut RequestCtx<'_>,
    session: &Session,
    route_key: &str,
    event_type: &'static str,
    message_id: Option<&str>,
    status: u16,
) {
    let format = session
        .stage
        .access_log
        .as_ref()
        .or(ctx.shared.config.default_access_log.as_ref());
    let Some(format) = format.filter(|_| access_log::enabled()) else {
        return;
    };
    let handle = &session.handle;
    let record = AccessRecord {
        request_id: ctx.ids.request_id_str(),
        extended_request_id: ctx.ids.extended_str(),
        request_time: std::time::SystemTime::now().checked_sub(ctx.start.elapsed()),
        http_method: "-".into(),
        path: "-".into(),
        protocol: "HTTP/1.1",
        status,
        response_latency: ctx.start.elapsed(),
        integration_latency: ctx.integration_latency,
        integration_status: ctx.integration_status,
        integration_error: ctx.integration_error.take(),
        source_ip: Some(handle.source_ip),
        user_agent: handle.user_agent.as_deref().map(str::to_string),
        domain_name: session
            .host
            .as_ref()
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned()),
        api_key_id: ctx.key.map(|k| k.id.to_string()),
        api_key_masked: ctx.key.map(|k| k.digest.masked()),
        api_id: session.api.id.as_str().to_string(),
        stage: session.stage.name.to_string(),
        deployment_id: session.variant.deployment_id.clone(),
        is_canary: ctx.is_canary(),
        authorizer: ctx
            .identity
            .as_ref()
            .map(crate::authorizer::Identity::values)
            .unwrap_or_default(),
        websocket: Some(WebSocketEvent {
            connection_id: handle.id.to_string(),
            route_key: route_key.to_string(),
            event_type,
            message_id: message_id.map(str::to_string),
        }),
        ..AccessRecord::default()
    };
    record.emit(format);
}

/// AWS's error message to a client: `{"message": "...", "connectionId": "...", "requestId": "..."}`.
fn error_frame(ctx: &RequestCtx<'_>, session: &Session, message: &str) -> Message {
    let body = serde_json::json!({
        "message": message,
        "connectionId": &*session.handle.id,
        "requestId": ctx.ids.request_id_str(),
    });
    Message::text(body.to_string())
}

/// The 101 answer's head.
pub fn switching_protocols(accept_key: &HeaderValue, out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}
