//! A user that goes idle between requests gives its read buffer back and waits for the next
//! response with none: responses small and large (chunked, many times the first read), one
//! after another on the same kept-alive connection, still arrive whole.

mod common;

use common::prepare;
use load_density_testkit::harness::{run_one, EventRecorder};
use load_density_testkit::HttpTarget;
use serde_json::json;

#[tokio::test]
async fn responses_arrive_whole_when_the_user_idles_between_them() {
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let factory = prepare(
        json!([
            {"method": "get", "request_url": "/bytes/20000"},
            {"method": "get", "request_url": "/bytes/10"},
        ]),
        Some(target.base_url()),
        serde_json::Value::Null,
    )
    .await
    .expect("valid tasks");
    let recorder = EventRecorder::new();
    let mut ctx = recorder.context(1);
    let mut user = factory.new_user(1);
    let mut lengths = Vec::new();
    for round in 0..3 {
        for index in 0..2 {
            let event = run_one(user.as_mut(), index, &mut ctx, &recorder).await;
            assert_eq!(event.error, None, "round {round}, task {index}: {event:?}");
            assert_eq!(event.status, Some(200));
            lengths.push(event.response_length);
            user.on_idle();
        }
    }
    assert_eq!(lengths, [20000, 10, 20000, 10, 20000, 10]);
    assert_eq!(target.served(), 6);
    user.on_stop(&mut ctx).await;
}
