//! Which `instance_url` a Salesforce token answer may send us to (issue 15.10): the org's API
//! base, where every later call carries its access token. Only https on a Salesforce host, or
//! the origin of our own configured Salesforce login (the sandbox, in development and tests).

/// The start of the detail of a refused `instance_url` ([`crate::domain::provider::ProviderError::BadPayload`]),
/// by which the connect flow tells the user why.
pub const UNTRUSTED_INSTANCE_URL: &str = "untrusted instance_url";

/// Host suffixes of Salesforce orgs: `*.my.salesforce.com`, `*.salesforce.com`, `*.force.com`
/// (Experience Cloud and Visualforce domains), `*.cloudforce.com`.
const SALESFORCE_HOSTS: [&str; 3] = [".salesforce.com", ".force.com", ".cloudforce.com"];

/// `Ok` when tokens may be sent to `instance_url`: https on a Salesforce host, or the same
/// origin as `login_url` (our configured Salesforce OAuth endpoint: the sandbox's when it is
/// configured). `Err` says why not, starting with [`UNTRUSTED_INSTANCE_URL`].
pub fn check_instance_url(instance_url: &str, login_url: &str) -> Result<(), String> {
    let shown: String = instance_url.chars().take(120).collect();
    let refuse = |why: &str| Err(format!("{UNTRUSTED_INSTANCE_URL} {shown:?}: {why}"));
    let Ok(url) = reqwest::Url::parse(instance_url) else {
        return refuse("not a URL");
    };
    if let Ok(login) = reqwest::Url::parse(login_url)
        && url.origin() == login.origin()
        && url.username().is_empty()
    {
        return Ok(());
    }
    if url.scheme() != "https" {
        return refuse("not https");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("carries credentials");
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let salesforce = SALESFORCE_HOSTS.iter().any(|s| host.ends_with(s));
    if salesforce {
        Ok(())
    } else {
        refuse("not a Salesforce host (*.salesforce.com, *.force.com)")
    }
}

#[cfg(test)]
mod tests {
    use super::check_instance_url;

    const LOGIN: &str = "https://login.salesforce.com/services/oauth2/token";
    const SANDBOX: &str = "http://127.0.0.1:7700/salesforce/services/oauth2/token";

    #[test]
    fn salesforce_hosts_over_https_are_trusted() {
        for ok in [
            "https://na1.salesforce.com",
            "https://acme.my.salesforce.com",
            "https://acme--dev.sandbox.my.salesforce.com/",
            "https://acme.lightning.force.com",
        ] {
            assert!(check_instance_url(ok, LOGIN).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_configured_sandbox_origin_is_trusted() {
        assert!(check_instance_url("http://127.0.0.1:7700", SANDBOX).is_ok());
        assert!(check_instance_url("http://127.0.0.1:7701", SANDBOX).is_err());
    }

    #[test]
    fn anything_else_is_refused_saying_why() {
        for (bad, why) in [
            ("https://evil.example.com", "not a Salesforce host"),
            (
                "https://salesforce.com.evil.example",
                "not a Salesforce host",
            ),
            ("https://evilsalesforce.com", "not a Salesforce host"),
            ("http://na1.salesforce.com", "not https"),
            ("https://u:p@na1.salesforce.com", "credentials"),
            ("https://10.0.0.1", "not a Salesforce host"),
            ("not a url", "not a URL"),
        ] {
            let e = check_instance_url(bad, LOGIN).unwrap_err();
            assert!(e.starts_with("untrusted instance_url"), "{e}");
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
