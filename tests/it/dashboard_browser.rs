//! The dashboard in a real Chromium: it shows the queues and dead letters a test pushed,
//! retrying a dead letter from the page (by keyboard) delivers the event, it reads at a phone's
//! width, and its first render over 10,000 dead letters is measured (not asserted). Screenshots
//! are written to `target/screenshots/`.

use serde_json::json;

use crate::support::browser::{Browser, screenshots};
use crate::support::herald::{Running, config};
use crate::support::subscriber::Subscriber;
use crate::support::{eventually, push, queue};
use herald_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_what_was_pushed_and_retrying_a_dead_letter_delivers_it() {
    let redis = RedisServer::start();
    // The `side` connection's Redis is down when the event is first delivered: the broadcast
    // fails, and with max_attempts 1 the event is a dead letter with that one delivery.
    let mut side = RedisServer::start();
    side.stop();
    let good: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"event":"App\\Events\\UserSignedUp","channels":["users.{i}"],"data":{{"user_id":{i}}}}}"#))
        .collect();
    push(&redis, &good).await;
    push(&redis, &["{not json", "{\"data\":{}}"]).await;
    push(&redis, &[r#"{"id":"replay-me","event":"App\\Events\\OrderShipped","channels":["orders.7"],"data":{"order_id":7},"connections":["side"],"max_attempts":1}"#]).await;
    let extra = format!(
        "[broadcasting.connections.side]\ndriver = \"redis\"\nurl = \"{}\"\n",
        side.url()
    );
    let h = Running::start(config(&redis, "", &extra)).await;
    let q = queue(&redis);
    let dead = eventually("three dead letters", || async {
        let d = q.failed_get("replay-me").await.ok()??;
        (q.stats().await.ok()?.failed == 3).then_some(d)
    })
    .await;
    assert_eq!(dead.deliveries[0].delivery, "broadcast:side");
    side.restart();
    let mut sub = Subscriber::psubscribe(&side, "*").await;

    let url = format!("http://{}/", h.started.metrics_addr.unwrap());
    let mut b = Browser::start();
    b.open(&url, "overview").await;
    let main = b.text("main").await;
    assert!(main.contains("herald:default"), "{main}");
    let dead_count = b
        .text("section[aria-labelledby='q-herald:default'] .count:nth-child(4) dd")
        .await;
    assert_eq!(dead_count, "3");
    assert!(
        b.text(".attention").await.contains("3 dead letters"),
        "the first thing on the page"
    );
    b.screenshot("dashboard-overview", true).await;

    b.go("#/dead-letters", "dead-letters").await;
    let rows = b.texts("tbody tr").await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter().any(|r| r.contains("OrderShipped")
            && r.contains("replay-me")
            && r.contains("retries_exhausted")),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r.contains("invalid_json")), "{rows:?}");
    b.screenshot("dashboard-dead-letters", true).await;

    // By keyboard: Tab to the entry, Enter; Tab to Retry, Enter.
    b.tab_to("a[href^='#/dead-letters/replay-me']").await;
    b.press("Enter", Some("dead-letters")).await;
    assert!(b.text("h1").await.contains(r"App\Events\OrderShipped"));
    assert!(b.text("pre.payload").await.contains(r#""order_id": 7"#));
    assert!(b.text("main").await.contains("broadcast:side"));
    b.screenshot("dashboard-dead-letter", true).await;
    b.tab_to("button.primary").await;
    b.press("Enter", None).await;
    b.wait_text("#toast", "Retried 1 dead letter").await;

    let got = sub.take(1).await;
    assert_eq!(got[0].0, "orders.7");
    let msg: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(msg["event"], r"App\Events\OrderShipped");
    assert_eq!(msg["data"]["order_id"], 7);
    eventually("the dead letter to be gone", || async {
        (q.stats().await.ok()?.failed == 2).then_some(())
    })
    .await;
    b.wait_text("tbody", "invalid_json").await;
    assert_eq!(
        b.texts("tbody tr").await.len(),
        2,
        "the list shows what is left"
    );

    // A phone: nothing sticks out sideways, and the same numbers are there.
    b.viewport(390, 844).await;
    b.open(&url, "overview").await;
    let (scroll, width) = b.widths().await;
    assert!(
        scroll <= width,
        "the overview is {scroll}px wide in a {width}px viewport"
    );
    b.screenshot("dashboard-phone", true).await;
    b.go("#/dead-letters", "dead-letters").await;
    let (scroll, width) = b.widths().await;
    assert!(
        scroll <= width,
        "the dead letters are {scroll}px wide in a {width}px viewport"
    );
    b.screenshot("dashboard-phone-dead-letters", false).await;
    b.close().await;
    h.stop().await.unwrap();
}

/// The issue's budget is a first render under 200 ms with 10,000 dead letters. Timing is
/// measured and written down here (target/screenshots/first-render.json, and the test's
/// output), never asserted: a loaded CI machine must not fail it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_render_over_ten_thousand_dead_letters_is_measured() {
    let redis = RedisServer::start();
    let bad: Vec<String> = (0..10_000)
        .map(|i| format!(r#"{{"id":"bulk-{i}","data":{{"order_id":{i},"customer":{{"email":"customer{i}@example.com","name":"Customer {i}"}},"note":"{pad}"}}}}"#, pad = "x".repeat(150)))
        .collect();
    push(&redis, &bad).await;
    let h = Running::start(config(&redis, "", "")).await;
    let q = queue(&redis);
    eventually("10,000 dead letters", || async {
        (q.stats().await.ok()?.failed == 10_000).then_some(())
    })
    .await;
    let url = format!("http://{}/", h.started.metrics_addr.unwrap());
    let mut b = Browser::start();
    // Each view loaded twice: the first load also starts Chromium's own machinery; the second is
    // what a person reloading the page sees.
    let mut figures = json!({"build": if cfg!(debug_assertions) { "debug" } else { "release" }});
    for (view, hash) in [("overview", ""), ("dead-letters", "#/dead-letters")] {
        for run in ["cold", "warm"] {
            b.open(&format!("{url}{hash}"), view).await;
            figures[format!("{view}_{run}")] = b.timing().await;
        }
    }
    assert!(b.text(".actions").await.contains("Retry all 10,000"));
    assert_eq!(
        b.texts("tbody tr").await.len(),
        50,
        "one page, not 10,000 rows"
    );
    b.screenshot("dashboard-10000-dead-letters", false).await;
    b.close().await;
    for f in figures.as_object_mut().unwrap().values_mut() {
        if let Some(f) = f.as_object_mut() {
            f.remove("errors");
            f.remove("ok");
        }
    }
    let path = screenshots().join("first-render.json");
    std::fs::write(&path, serde_json::to_string_pretty(&figures).unwrap()).unwrap();
    eprintln!(
        "first render with 10,000 dead letters: {figures} ({})",
        path.display()
    );
    h.stop().await.unwrap();
}
