//! Issue 15.6: every gRPC server serves TLS when given a certificate (rp_platform::grpc::serve).

use rp_platform::grpc::{Services, serve};
use rp_platform::testing::TestCertificates;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

async fn check(channel: Channel) -> Result<i32, tonic::Status> {
    Ok(HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await?
        .into_inner()
        .status)
}

#[tokio::test]
async fn a_server_with_a_certificate_speaks_only_tls() {
    rp_platform::install_crypto_provider();
    let certs = TestCertificates::new();
    let cancel = CancellationToken::new();
    let serving = serve(
        "127.0.0.1:0".parse().unwrap(),
        cancel.clone(),
        Services::new().tls(certs.server_tls()),
    )
    .await
    .unwrap();
    let port = serving.local_addr().port();

    // A client that trusts the CA is answered, under either name in the certificate.
    for host in ["localhost", "127.0.0.1"] {
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&certs.ca_pem));
        let channel = Channel::from_shared(format!("https://{host}:{port}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap_or_else(|e| panic!("TLS to {host}: {e:?}"));
        assert_eq!(check(channel).await.unwrap(), 1, "SERVING");
    }

    // A plaintext client gets nothing: it cannot even open the connection, or its call fails.
    let plain = match Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
    {
        Ok(channel) => check(channel).await.map_err(|s| s.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(plain.is_err(), "plaintext was answered: {plain:?}");

    // A client that trusts another CA refuses the server.
    let other = TestCertificates::new();
    let strange = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&other.ca_pem)))
        .unwrap()
        .connect()
        .await;
    assert!(
        strange.is_err(),
        "a certificate from another CA was trusted"
    );

    cancel.cancel();
    serving.wait().await.unwrap();
}
