//! `GET /api/v2/events`: the event bus's facts as server-sent events, so a
//! page or a script can watch noderoles and runs change without polling.
//! The only route that also takes the admin token as `?token=`, for
//! clients such as EventSource that cannot set headers.

use actix_web::{get, web, HttpResponse};
use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;

use super::auth::StreamAdmin;
use super::AppState;

#[utoipa::path(
    get,
    path = "/api/v2/events",
    tag = "events",
    responses((status = 200, description = "Server-sent events: one `event:` per fact, named after it, with the fact as JSON in `data:`", body = String, content_type = "text/event-stream"))
)]
#[get("/events")]
async fn events(_: StreamAdmin, state: web::Data<AppState>) -> HttpResponse {
    let mut facts = state.orchestrator.stream();
    let stopping = state.http_stopping.clone();
    let stream = async_stream::stream! {
        yield Ok::<_, actix_web::Error>(Bytes::from_static(b": kiln events\n\n"));
        loop {
            // A stopping kiln ends the stream, or stopping would wait for
            // every watcher to hang up.
            let next = tokio::select! {
                next = facts.recv() => next,
                () = stopping.cancelled() => break,
            };
            match next {
                Ok(fact) => {
                    let data = serde_json::to_string(&fact).unwrap_or_default();
                    yield Ok(Bytes::from(format!("event: {}\ndata: {data}\n\n", fact.name())));
                }
                // A slow reader skipped some facts; tell it and go on.
                Err(RecvError::Lagged(n)) => {
                    yield Ok(Bytes::from(format!("event: Lagged\ndata: {{\"skipped\":{n}}}\n\n")));
                }
                Err(RecvError::Closed) => break,
            }
        }
    };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(stream)
}
