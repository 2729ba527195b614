//! Configuration layering as DESIGN §8 orders it, observed through `config check`.

use std::process::Command;

fn check(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wa-groups-gateway"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("WAGW") || key == "APP_ENVIRONMENT" {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).current_dir(dir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn files_then_extra_file_then_environment_each_win_over_the_one_before() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/default.toml"),
        "[graph]\ntimeout_ms = 1111\nattempt_timeout_ms = 999\n[server]\nport = 6000\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config/staging.toml"),
        "[graph]\nattempt_timeout_ms = 222\n",
    )
    .unwrap();
    let extra = dir.path().join("extra.toml");
    std::fs::write(&extra, "[server]\nport = 7000\nworkers = 3\n").unwrap();
    let extra = extra.to_str().unwrap();
    let env = [
        ("APP_ENVIRONMENT", "staging"),
        ("WAGW__SERVER__PORT", "7100"),
        ("WAGW__SANDBOX__WEBHOOK_DELAY_MS", "33"),
    ];

    // --config before or after the subcommand.
    for args in [
        vec!["--config", extra, "config", "check"],
        vec!["config", "check", "--config", extra],
    ] {
        let (ok, stdout, stderr) = check(dir.path(), &args, &env);
        assert!(ok, "{stderr}");
        for expected in [
            "timeout_ms = 1111",        // config/default.toml over the compiled-in default
            "attempt_timeout_ms = 222", // config/{APP_ENVIRONMENT}.toml over config/default.toml
            "workers = 3",              // --config over the environment file
            "port = 7100",              // WAGW__ variables over every file
            "webhook_delay_ms = 33",
        ] {
            assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
        }
    }

    // WAGW_CONFIG names the extra file too.
    let (ok, stdout, stderr) = check(dir.path(), &["config", "check"], &[("WAGW_CONFIG", extra)]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("workers = 3"), "{stdout}");
}

#[test]
fn the_compiled_in_defaults_run_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = check(dir.path(), &["config", "check"], &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("mode = \"sandbox\""), "{stdout}");
    assert!(stdout.contains("port = 8080"), "{stdout}");
    assert!(
        stdout.contains("[teams.sales]"),
        "the sandbox demo team: {stdout}"
    );
}

#[test]
fn a_bad_value_from_the_environment_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = check(
        dir.path(),
        &["config", "check"],
        &[("WAGW__GRAPH__MODE", "production")],
    );
    assert!(!ok);
    assert!(stderr.contains("graph.mode"), "{stderr}");
    let (ok, _, stderr) = check(
        dir.path(),
        &["config", "check"],
        &[("WAGW__GRAPH__TIMOUT_MS", "5")],
    );
    assert!(!ok, "a misspelt variable is not silently ignored");
    assert!(stderr.contains("timout_ms"), "{stderr}");
    let (ok, _, stderr) = check(dir.path(), &["serve"], &[("WAGW__GRAPH__TIMEOUT_MS", "0")]);
    assert!(!ok, "serve refuses to start");
    assert!(stderr.contains("graph.timeout_ms"), "{stderr}");
    let missing = dir.path().join("nope.toml");
    let (ok, _, stderr) = check(
        dir.path(),
        &["config", "check", "--config", missing.to_str().unwrap()],
        &[],
    );
    assert!(!ok, "a missing --config file is an error");
    assert!(stderr.contains("nope.toml"), "{stderr}");
}
