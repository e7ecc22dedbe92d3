//! `GET /v1/events` and `GET /v1/tasks` page instead of truncating silently: each page but
//! the last says `X-Has-More: true` with the cursor of the next page, and following them
//! reads 100,000 events gapless, and every task, each once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use coditect_runtime::events::{EventDraft, EventType};
use coditect_runtime::testkit::TestWorkspace;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_100000_events_reads_each_once() {
    let ws = TestWorkspace::start().await;
    for n in 0..100_000 {
        ws.runtime.events.append_nowait(EventDraft::new(
            "alpha",
            EventType::AgentMessage,
            json!({"n": n}),
        ));
    }
    let last = ws
        .runtime
        .events
        .append(EventDraft::new(
            "alpha",
            EventType::AgentMessage,
            json!({"n": "last"}),
        ))
        .await
        .unwrap();
    let mut since = 0;
    let mut seqs = Vec::new();
    let mut pages = 0;
    loop {
        let resp = ws
            .client
            .request(
                reqwest::Method::GET,
                &format!("/v1/events?since={since}&limit=10000"),
            )
            .send()
            .await
            .unwrap();
        let more = resp.headers()["x-has-more"].to_str().unwrap() == "true";
        let next = resp
            .headers()
            .get("x-next-since")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        let link = resp
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_string());
        let page: Vec<Value> = resp.json().await.unwrap();
        pages += 1;
        seqs.extend(page.iter().map(|e| e["seq"].as_u64().unwrap()));
        if !more {
            assert!(next.is_none() && link.is_none());
            break;
        }
        let next = next.unwrap();
        assert_eq!(Some(next), page.last().map(|e| e["seq"].as_u64().unwrap()));
        assert!(link.unwrap().contains(&format!("since={next}")));
        since = next;
    }
    assert_eq!(seqs.first(), Some(&1));
    assert_eq!(seqs.last(), Some(&last.seq));
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless, each once"
    );
    assert!(
        seqs.len() > 100_000 && pages >= 11,
        "{} events in {pages} pages",
        seqs.len()
    );
    // The default page is 1,000 events, and says there is more.
    let resp = ws
        .client
        .request(reqwest::Method::GET, "/v1/events?since=0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-has-more"], "true");
    assert_eq!(resp.json::<Vec<Value>>().await.unwrap().len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_the_task_list_reads_each_task_once_newest_first() {
    let ws = TestWorkspace::start().await;
    for n in 0..250 {
        ws.runtime
            .tasks
            .submit(coditect_runtime::tasks::SubmitTask {
                agent: Some("alpha".into()),
                role: None,
                title: format!("task {n}"),
                prompt: String::new(),
                priority: 0,
                submitted_by: "test".into(),
            })
            .await
            .unwrap();
    }
    let mut path = "/v1/tasks?agent=alpha&limit=100".to_string();
    let mut ids = Vec::new();
    loop {
        let resp = ws
            .client
            .request(reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap();
        let more = resp.headers()["x-has-more"] == "true";
        let link = resp
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_string());
        let page: Vec<Value> = resp.json().await.unwrap();
        ids.extend(page.iter().map(|t| t["id"].as_i64().unwrap()));
        if !more {
            break;
        }
        // The Link header is the next page, filters kept.
        let link = link.unwrap();
        path = link
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_string();
        assert!(
            path.contains("agent=alpha") && path.contains("before="),
            "{path}"
        );
    }
    assert_eq!(ids.len(), 250);
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, each once"
    );
}
