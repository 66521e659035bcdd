//! Issue 15.5: NATS with users and per-service subject permissions (infra/nats/nats-server.conf),
//! on a private nats-server (the machine's own NATS stays open for the other tests).

use async_nats::jetstream;
use futures::StreamExt;
use rp_platform::bus::{self, BusConfig};
use rp_platform::nats_auth::NatsAuth;
use rp_platform::testing::PrivateNats;
use std::time::Duration;

const CONFIG: &str = include_str!("../../../infra/nats/nats-server.conf");
const USERS: [&str; 6] = [
    "connector",
    "matcher",
    "attribution",
    "notification",
    "rp",
    "admin",
];

/// The shipped configuration on a private server, each user with a fresh password.
async fn secured() -> (PrivateNats, Vec<(String, String)>) {
    let passwords: Vec<(String, String)> = USERS
        .iter()
        // nats-server parses a variable's value as a configuration value: a password starting
        // with a digit ("2ab...") is a parse error, so ours start with letters.
        .map(|u| {
            (
                u.to_string(),
                format!("pw{}", uuid::Uuid::new_v4().simple()),
            )
        })
        .collect();
    let vars: Vec<(String, String)> = passwords
        .iter()
        .map(|(u, p)| (format!("RP_NATS_{}_PASSWORD", u.to_uppercase()), p.clone()))
        .collect();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    (
        PrivateNats::start_with_config(CONFIG, &env).await,
        passwords,
    )
}

fn password<'a>(passwords: &'a [(String, String)], user: &str) -> &'a str {
    &passwords.iter().find(|(u, _)| u == user).unwrap().1
}

/// A JetStream context as `user`, whose requests give up after 500 ms (a request the server refuses
/// for permissions is dropped, not answered).
async fn as_user(nats: &PrivateNats, user: &str, password: &str) -> jetstream::Context {
    let client = bus::connect_with(&nats.url(), user, &NatsAuth::user(user, password))
        .await
        .unwrap_or_else(|e| panic!("{user}: {e}"));
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_millis(500));
    js
}

async fn messages(js: &jetstream::Context, stream: &str) -> u64 {
    js.get_stream(stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

#[tokio::test]
async fn strangers_cannot_connect_and_no_user_but_admin_deletes_the_stream() {
    let (nats, passwords) = secured().await;
    let cfg = BusConfig {
        storage: jetstream::stream::StorageType::Memory,
        ..BusConfig::default()
    };
    // A service creates the stream at start and its relay publishes events.
    let connector = as_user(&nats, "connector", password(&passwords, "connector")).await;
    bus::ensure_stream(&connector, &cfg).await.unwrap();
    let subject = cfg.subject("0190a1b2-0000-7000-8000-000000000001", "SyncRequested");
    connector
        .publish(subject.clone(), "relay".into())
        .await
        .unwrap()
        .await
        .expect("the relay's user publishes events");
    // `rp events replay` republishes.
    let rp = as_user(&nats, "rp", password(&passwords, "rp")).await;
    rp.publish(subject.clone(), "replay".into())
        .await
        .unwrap()
        .await
        .expect("the ops user replays");

    // A service binds a durable; `rp consumers` lists it.
    connector
        .get_stream(&cfg.stream)
        .await
        .unwrap()
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("matcher-p0".into()),
            filter_subject: cfg.partition_subjects(0),
            ..Default::default()
        })
        .await
        .expect("a service creates its durable");
    let listed: Vec<String> = rp
        .get_stream(&cfg.stream)
        .await
        .unwrap()
        .consumers()
        .map(|c| c.unwrap().name)
        .collect()
        .await;
    assert_eq!(listed, ["matcher-p0"], "rp lists the consumers");

    // No credentials, a wrong password, a password for another user: not even connected, so
    // nothing published. The error never prints the password tried.
    let wrong = "wr0ng-pa55word";
    let connector_password = password(&passwords, "connector");
    for (url, auth) in [
        (nats.url(), NatsAuth::default()),
        (nats.url(), NatsAuth::user("connector", wrong)),
        (nats.url(), NatsAuth::user("intruder", connector_password)),
        (
            nats.url()
                .replace("nats://", &format!("nats://connector:{wrong}@")),
            NatsAuth::default(),
        ),
    ] {
        let e = bus::connect_with(&url, "intruder", &auth)
            .await
            .expect_err("refused");
        let shown = e.to_string();
        assert!(
            shown.to_lowercase().contains("authorization"),
            "says why: {shown}"
        );
        assert!(!shown.contains(wrong), "{shown}");
        assert!(!shown.contains(connector_password), "{shown}");
        assert!(!format!("{e:?}").contains(wrong), "{e:?}");
    }

    // No service user and not `rp` may delete or purge the stream, nor publish outside its
    // subjects.
    for user in ["connector", "matcher", "attribution", "notification", "rp"] {
        let js = as_user(&nats, user, password(&passwords, user)).await;
        assert!(
            js.delete_stream(&cfg.stream).await.is_err(),
            "{user} deleted the stream"
        );
        let mut stream = js.get_stream(&cfg.stream).await.unwrap();
        assert!(stream.purge().await.is_err(), "{user} purged the stream");
        let info = stream.info().await.unwrap();
        assert_eq!(info.state.messages, 2, "{user}");
        assert!(
            js.publish("elsewhere.v1.0.x.SyncRequested", "x".into())
                .await
                .unwrap()
                .await
                .is_err(),
            "{user} published outside our subjects"
        );
    }
    assert_eq!(messages(&connector, &cfg.stream).await, 2);

    // The admin can: the refusals above are permissions, not a broken stream.
    let admin = as_user(&nats, "admin", password(&passwords, "admin")).await;
    admin.delete_stream(&cfg.stream).await.unwrap();
}

#[tokio::test]
async fn with_a_ca_configured_the_bus_is_spoken_over_tls_only() {
    rp_platform::install_crypto_provider();
    let certs = rp_platform::testing::TestCertificates::new();
    let dir = std::env::temp_dir().join(format!("rp-nats-tls-{}", uuid::Uuid::new_v4().simple()));
    let [ca, cert, key] = certs.write_to(&dir);
    let tls = format!(
        "\ntls {{\n  cert_file: {:?}\n  key_file: {:?}\n}}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let config = format!("{CONFIG}{tls}");
    let vars = USERS.map(|u| (format!("RP_NATS_{}_PASSWORD", u.to_uppercase()), "pwtls0"));
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let nats = PrivateNats::start_with_config(&config, &env).await;
    let url = nats.url().replace("127.0.0.1", "localhost");

    // The CA and credentials: connected over TLS, the relay's publish acknowledged.
    let client = bus::connect_with(
        &url,
        "connector",
        &NatsAuth::user("connector", "pwtls0").with_tls_ca(ca.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("TLS with the CA: {e}"));
    let js = jetstream::new(client);
    let cfg = BusConfig {
        storage: jetstream::stream::StorageType::Memory,
        ..BusConfig::default()
    };
    bus::ensure_stream(&js, &cfg).await.unwrap();
    js.publish(cfg.subject("ws", "SyncRequested"), "x".into())
        .await
        .unwrap()
        .await
        .unwrap();

    // Trusting another CA: refused; the server's certificate is checked.
    let other = rp_platform::testing::TestCertificates::new();
    let [other_ca, _, _] = other.write_to(&dir.join("other"));
    assert!(
        bus::connect_with(
            &url,
            "connector",
            &NatsAuth::user("connector", "pwtls0").with_tls_ca(other_ca),
        )
        .await
        .is_err(),
        "a server certificate from another CA was trusted"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
