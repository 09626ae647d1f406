//! The test jig: succeeds or fails as the noderole's data says, after an
//! optional delay — `{"test": {"fail": bool, "delay_ms": n}}`. For tests,
//! benchmarks and demonstrations of error handling.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{JigContext, JigResult};

pub fn run(ctx: JigContext) -> BoxFuture<'static, JigResult> {
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
