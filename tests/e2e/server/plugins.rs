//! Plugins hot-loaded into a running server.

use super::*;

pub(crate) const TESTKIT_CAPS: &str = "[capabilities]\nprocess = true\nwork-dir = true\n";

pub(crate) fn testkit_manifest(version: &str) -> String {
    format!(
        "id = \"testkit\"\nversion = \"{version}\"\nwit = \"0.1.0\"\ncomponent = \"testkit.wasm\"\n\n{TESTKIT_CAPS}"
    )
}

pub(crate) async fn upload(c: &Client, manifest: String, wasm: Vec<u8>) -> Reply {
    let form = reqwest::multipart::Form::new()
        .text("manifest", manifest)
        .part(
            "component",
            reqwest::multipart::Part::bytes(wasm).file_name("testkit.wasm"),
        );
    c.send(c.request(Method::POST, "/api/v1/plugins").multipart(form))
        .await
}

pub(crate) use shoal_tests::with_custom_section;

pub(crate) fn testkit_rows(plugins: &Value) -> BTreeMap<String, Value> {
    plugins
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"] == "testkit")
        .map(|p| (p["version"].as_str().unwrap().to_owned(), p.clone()))
        .collect()
}

pub(crate) async fn testkit_task(s: &Server, id: i64) -> Value {
    let d = settle(s, id).await;
    assert_eq!(state_of(&d), "succeeded", "{d}");
    let t = task(&d, "spawn").unwrap().clone();
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(t["out_params"]["code"], "Some(0)", "{t}");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plugins_hot_load_into_a_running_server_on_both_databases() {
    let wasm = std::fs::read(shoal_tests::testkit_wasm()).unwrap();
    on_both(|site| {
        let wasm = wasm.clone();
        async move {
            let s = site.start().await;
            create_project(&s, "hot").await;

            // Nothing to run it with yet.
            let spawner = "workflow:\n  name: spawner\n  param:\n    secs: \"2\"\ntasks:\n  - name: spawn\n    task_type: testkit\n    mode: spawn\n    argv: [sleep, \"${secs}\"]\n";
            let m = s.post_yaml("hot", spawner).await.error(422, "invalid-definition");
            assert!(m.contains("testkit"), "{m}");

            let first = upload(&s, testkit_manifest("0.1.0"), wasm.clone())
                .await
                .expect(201)
                .json();
            assert_eq!(first["version"], "0.1.0");
            let sha = first["sha256"].as_str().unwrap().to_owned();
            assert_eq!(sha.len(), 64);
            define_online(&s, "hot", spawner).await;

            // Run A on 0.1.0; while it runs, 0.2.0 arrives; run B gets it.
            let a = start(&s, "hot", "spawner", json!({})).await;
            wait_task(&s, a, "spawn", "running").await;
            let second = upload(&s, testkit_manifest("0.2.0"), wasm.clone())
                .await
                .expect(201)
                .json();
            assert_eq!(second["version"], "0.2.0");
            assert_eq!(second["previous"], "0.1.0");
            let b = start(&s, "hot", "spawner", json!({"params": {"secs": "0"}})).await;
            let still = instance(&s, a).await;
            assert_eq!(
                task(&still, "spawn").unwrap()["state"],
                "running",
                "run A should still be running when 0.2.0 became active"
            );
            let (ta, tb) = (testkit_task(&s, a).await, testkit_task(&s, b).await);
            assert_eq!(ta["plugin_version"], "0.1.0", "{ta}");
            assert_eq!(tb["plugin_version"], "0.2.0", "{tb}");

            let rows = testkit_rows(&s.get("/api/v1/plugins").await.expect(200).json());
            assert_eq!(rows.keys().collect::<Vec<_>>(), ["0.1.0", "0.2.0"], "{rows:?}");
            assert_eq!(rows["0.2.0"]["active"], true);
            assert_eq!(rows["0.1.0"]["active"], false);
            for r in rows.values() {
                assert_eq!(r["origin"], "installed");
                assert_eq!(r["sha256"], sha.as_str());
                assert!(r["capabilities"].as_array().unwrap().contains(&json!("process")), "{r}");
            }

            // Roll back: 0.1.0 is active again and run C uses it.
            let back = s
                .post_empty("/api/v1/plugins/testkit/rollback")
                .await
                .expect(200)
                .json();
            assert_eq!(back["version"], "0.1.0");
            let rows = testkit_rows(&s.get("/api/v1/plugins").await.expect(200).json());
            assert_eq!(rows["0.1.0"]["active"], true);
            assert_eq!(rows["0.2.0"]["active"], false);
            let c = start(&s, "hot", "spawner", json!({"params": {"secs": "0"}})).await;
            assert_eq!(testkit_task(&s, c).await["plugin_version"], "0.1.0");

            // A version is immutable: other bytes under 0.2.0 are refused.
            let other = with_custom_section(&wasm, "other bytes");
            let m = upload(&s, testkit_manifest("0.2.0"), other)
                .await
                .error(409, "conflict");
            assert!(m.contains("0.2.0"), "{m}");
            // The same bytes again are no conflict; 0.2.0 becomes active again.
            upload(&s, testkit_manifest("0.2.0"), wasm.clone())
                .await
                .expect(201);
            s.post_empty("/api/v1/plugins/testkit/rollback")
                .await
                .expect(200);
            // A broken upload is refused and changes nothing.
            upload(&s, testkit_manifest("0.3.0"), b"\0asm not really".to_vec())
                .await
                .error(400, "bad-request");
            let rows = testkit_rows(&s.get("/api/v1/plugins").await.expect(200).json());
            assert_eq!(rows.len(), 2, "{rows:?}");
            assert_eq!(rows["0.1.0"]["active"], true, "{rows:?}");

            // Pin the workflow to 0.2.0: run D uses it though 0.1.0 is active.
            let pins = "/api/v1/projects/hot/definitions/spawner/pins/testkit";
            s.put(pins, json!({"version": "9.9.9"}))
                .await
                .error(400, "bad-request");
            s.put(pins, json!({"version": "0.2.0"})).await.expect(204);
            let d = s
                .get("/api/v1/projects/hot/definitions/spawner")
                .await
                .expect(200)
                .json();
            assert_eq!(d["pins"], json!({"testkit": "0.2.0"}));
            let run_d = start(&s, "hot", "spawner", json!({"params": {"secs": "0"}})).await;
            assert_eq!(testkit_task(&s, run_d).await["plugin_version"], "0.2.0");
            s.put(pins, json!({"version": null})).await.expect(204);
            let e = start(&s, "hot", "spawner", json!({"params": {"secs": "0"}})).await;
            assert_eq!(testkit_task(&s, e).await["plugin_version"], "0.1.0");

            // Activate by version.
            let act = s
                .post("/api/v1/plugins/testkit/activate", json!({"version": "0.2.0"}))
                .await
                .expect(200)
                .json();
            assert_eq!((act["version"].as_str(), act["previous"].as_str()), (Some("0.2.0"), Some("0.1.0")));
            s.post("/api/v1/plugins/testkit/activate", json!({"version": "7.7.7"}))
                .await
                .error(404, "not-found");
            s.post_empty("/api/v1/plugins/nonesuch/rollback")
                .await
                .error(400, "bad-request");
        }
    })
    .await;
}

// ======================================================================================
// 1 (logs): a task's log while it runs.
// ======================================================================================
