//! The test jig: succeeds or fails as the noderole's data says, after an
//! optional delay — `{"test": {"fail": bool, "delay_ms": n}}`. For tests,
//! benchmarks and demonstrations of error handling.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{BadData, JigContext, JigResult};

/// `test.fail` is a boolean and `test.delay_ms` a count of milliseconds.
pub fn check_data(data: &serde_json::Value) -> Result<(), BadData> {
    let Some(settings) = data.get("test") else {
        return Ok(());
    };
    let bad = |path: &str, reason: String| BadData {
        path: path.into(),
        reason,
    };
    if !settings.is_object() {
        return Err(bad("test", format!("must be a table, not {settings}")));
    }
    if let Some(fail) = settings.get("fail").filter(|v| !v.is_boolean()) {
        return Err(bad(
            "test.fail",
            format!("must be true or false, not {fail}"),
        ));
    }
    if let Some(delay) = settings.get("delay_ms").filter(|v| v.as_u64().is_none()) {
        return Err(bad(
            "test.delay_ms",
            format!("must be a non-negative integer (milliseconds), not {delay}"),
        ));
    }
    Ok(())
}

pub fn run(ctx: JigContext) -> BoxFuture<'static, JigResult> {
    if let Err(bad) = check_data(&ctx.data) {
        return super::failed(format!("test jig: noderole data {bad}"));
    }
    let settings = ctx.data.get("test").cloned().unwrap_or_default();
    let fail = settings
        .get("fail")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let delay = settings
        .get("delay_ms")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    Box::pin(async move {
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let runlog = format!(
            "test jig on {}: {} after {delay}ms\n",
            ctx.node.name,
            if fail {
                "failing as asked"
            } else {
                "succeeding"
            }
        );
        JigResult {
            succeeded: !fail,
            wall: Some(serde_json::json!({ "test": { "ran_on": ctx.node.name } })),
            error: fail.then(|| "test jig asked to fail".to_string()),
            runlog,
            facts: Vec::new(),
        }
    })
}
