//! Task logs streamed while tasks run, and definitions saved while runs write.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_logs_stream_while_the_task_runs_on_both_databases() {
    on_both(|site| async move {
        let s = site.start().await;
        create_project(&s, "logs").await;
        let name = define_online(
            &s,
            "logs",
            &shell(
                "ticker",
                "'for i in 1 2 3 4 5 6; do echo \"tick $i\"; sleep 0.4; done'",
            ),
        )
        .await;
        let id = start(&s, "logs", &name, json!({})).await;
        let running = wait_task(&s, id, "main", "running").await;
        let task_id = task(&running, "main").unwrap()["id"].as_i64().unwrap();

        // What has been written so far can be read while the task runs.
        let early = eventually(
            "`tick 1` in the log of the running task",
            Duration::from_secs(2),
            async || {
                let log = log_of(&s, task_id).await;
                log.contains("tick 1").then_some(log)
            },
        )
        .await;
        assert!(!early.contains("tick 6"), "{early}");

        // Following delivers lines as they come, and ends when the task does.
        let mut response = s
            .request(
                Method::GET,
                &format!("/api/v1/tasks/{task_id}/log?follow=true"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut chunks: Vec<(String, String)> = Vec::new();
        while let Some(chunk) = response.chunk().await.unwrap() {
            let d = instance(&s, id).await;
            let state = task(&d, "main").unwrap()["state"]
                .as_str()
                .unwrap()
                .to_owned();
            chunks.push((String::from_utf8_lossy(&chunk).into_owned(), state));
        }
        let followed: String = chunks.iter().map(|(c, _)| c.as_str()).collect();
        assert!(
            chunks
                .first()
                .is_some_and(|(c, state)| c.contains("tick") && state == "running"),
            "the first lines should arrive while the task runs: {chunks:#?}"
        );
        assert!(
            chunks.len() >= 3,
            "the log came in {} piece(s): {chunks:#?}",
            chunks.len()
        );
        for i in 1..=6 {
            assert!(followed.contains(&format!("tick {i}")), "{followed}");
        }
        assert_eq!(settle(&s, id).await["state"], "succeeded");
    })
    .await;
}

// ======================================================================================
// Writes from requests while the engine writes.
// ======================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn definitions_save_while_runs_are_writing_on_both_databases() {
    on_both(|site| async move {
        let s = site.start().await;
        create_project(&s, "busy").await;
        // A wide workflow keeps the engine's group commit writing.
        let mut wide = String::from("workflow:\n  name: wide\ntasks:\n");
        for i in 0..12 {
            wide.push_str(&format!(
                "  - name: t{i}\n    task_type: Shell\n    command: for n in 1 2 3 4 5; do echo $n; sleep 0.05; done\n"
            ));
        }
        define_online(&s, "busy", &wide).await;
        let runs: Vec<i64> = futures_join_all((0..4).map(|_| start(&s, "busy", "wide", json!({})))).await;
        // Meanwhile, requests save definitions (read the current version, then write).
        let saves = futures_join_all((0..4).map(|lane| {
            let s = &s;
            async move {
                for v in 0..8 {
                    let yaml = shell(&format!("lane{lane}"), &format!("echo version {v}"));
                    let r = s.post_yaml("busy", &yaml).await;
                    assert_eq!(r.status, 201, "saving lane{lane} v{v}: {}", r.body);
                }
            }
        }));
        saves.await;
        for id in runs {
            assert_eq!(settle(&s, id).await["state"], "succeeded");
        }
        for lane in 0..4 {
            let d = s
                .get(&format!("/api/v1/projects/busy/definitions/lane{lane}"))
                .await
                .expect(200)
                .json();
            assert_eq!(d["current_version"], 8, "{d}");
        }
    })
    .await;
}

/// Await every future, concurrently, in order.
pub(crate) async fn futures_join_all<F: Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}
