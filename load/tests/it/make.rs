//! `make load` runs for real: the realistic scenario, shortened by
//! LOAD_FLAGS, against a local pipeline, audited in the database the
//! Makefile is told (the scenario names none). A target whose command
//! cannot run fails here.

use eventpipe_store::ScratchDatabase;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_load_runs_the_realistic_scenario_audited_against_a_local_run() {
    let _machine = crate::shared().await;
    let database = ScratchDatabase::create(SERVER, "eventpipe_load")
        .await
        .unwrap();
    let url = database.url.clone();
    let pipeline = crate::local_run(&url, &[]).await;
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = tokio::task::block_in_place(|| {
        std::process::Command::new("make")
            .current_dir(repo)
            .args([
                "-s",
                "load",
                &format!("URL=http://{}", pipeline.api),
                &format!("AUDIT_DATABASE_URL={url}"),
                concat!("LOAD=", env!("CARGO_BIN_EXE_eventpipe-load")),
                "LOAD_FLAGS=--duration 2s --rate 40 --no-progress",
            ])
            .output()
    })
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "make load: {:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("DELIVERY AUDIT"), "{stdout}");
    assert!(stdout.contains("events_lost"), "{stdout}");
    pipeline.stop().await.unwrap();
}
