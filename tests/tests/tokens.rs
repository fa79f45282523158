//! Bearer-token authentication against a real apiserver: bootstrap tokens authenticate as
//! `system:bootstrap:<id>`, may only create CSRs and stop working when they expire;
//! `kubectl create token` issues service-account JWTs that authenticate as the account,
//! verify with the apiserver's OIDC discovery keys, are refused for other audiences and
//! stop working when the account or the pod they are bound to is deleted.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use kadm_e2e::{TestCluster, kubectl_path};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// How long a change (a new Secret, a deleted pod) may take to reach the authenticator,
/// which reads the watch cache.
const PROPAGATION: Duration = Duration::from_secs(10);
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// A certificates.k8s.io request for `system:node:worker-1` (openssl-generated, base64).
const NODE_CSR: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlIeE1JR1lBZ0VBTURZeEZUQVRCZ05WQkFvTURITjVjM1JsYlRwdWIyUmxjekVkTUJzR0ExVUVBd3dVYzNsegpkR1Z0T201dlpHVTZkMjl5YTJWeUxURXdXVEFUQmdjcWhrak9QUUlCQmdncWhrak9QUU1CQndOQ0FBUy96V1hyClVZVGlLQ2lhWkZJcmFBNHlSSU1hWFVneTI0TnJlWVVpdlgySDdkbEJvTXFQQ0RjakNibWMvUmtHZzhRbDlRMFgKNjZ1L3dWa1hVeU1oT2t0SG9BQXdDZ1lJS29aSXpqMEVBd0lEU0FBd1JRSWdkZy82NTdXNmhTaXcrR3Rvb1Y1SgpuT3JWWTQrY3o0ZGZlS1lHUzN0RWw3RUNJUUNHR1A4VGRnc2tiQVFXT2lyWENCK09mTEFKd3Ezc084OHNYRHJ0CmpBQldRZz09Ci0tLS0tRU5EIENFUlRJRklDQVRFIFJFUVVFU1QtLS0tLQo=";

/// Retries `f` until it succeeds, for at most [`PROPAGATION`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{what}: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A kubeconfig that authenticates with `token` only (no client certificate).
fn token_kubeconfig(cluster: &TestCluster, name: &str, token: &str) -> anyhow::Result<PathBuf> {
    let kc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kadm", "cluster": {
            "server": cluster.server_url(),
            "certificate-authority": cluster.ca_cert_path(),
        }}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "kadm", "user": name}}],
        "current-context": name,
    });
    let path = cluster.dir().join(format!("{name}.token.kubeconfig"));
    std::fs::write(&path, serde_json::to_vec(&kc)?)?;
    Ok(path)
}

/// Runs kubectl with `kubeconfig` (bounded).
async fn kubectl(
    cluster: &TestCluster,
    kubeconfig: &Path,
    args: &[&str],
) -> anyhow::Result<Output> {
    let mut cmd = tokio::process::Command::new(kubectl_path(None));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("HOME", cluster.dir())
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    Ok(tokio::time::timeout(Duration::from_secs(30), cmd.output()).await??)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `kubectl auth whoami -o json` as the kubeconfig's user: the SelfSubjectReview's userInfo.
async fn whoami(cluster: &TestCluster, kubeconfig: &Path) -> anyhow::Result<Value> {
    let out = kubectl(cluster, kubeconfig, &["auth", "whoami", "-o", "json"]).await?;
    anyhow::ensure!(out.status.success(), "whoami failed: {}", stderr(&out));
    let review: Value = serde_json::from_slice(&out.stdout)?;
    Ok(review["status"]["userInfo"].clone())
}

/// `kubectl create token <args>` as the admin: the token.
async fn create_token(cluster: &TestCluster, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["create", "token"];
    all.extend_from_slice(args);
    Ok(stdout(&cluster.kubectl_ok(None, &all).await?))
}

/// The claims of a JWT, unverified.
fn claims(token: &str) -> anyhow::Result<Value> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("not a jwt"))?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

/// The status code of `GET /apis` (any authenticated user may read discovery) with `token`.
async fn discovery_status(cluster: &TestCluster, token: &str) -> anyhow::Result<u16> {
    Ok(cluster
        .raw_anonymous()?
        .with_bearer(token)
        .get("/apis")
        .await?
        .status)
}

async fn create_namespace(admin: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

async fn create_service_account(
    admin: &kube::Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<ServiceAccount> {
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Ok(Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await?)
}

async fn create_pod(
    admin: &kube::Client,
    ns: &str,
    name: &str,
    account: &str,
) -> anyhow::Result<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"serviceAccountName": account,
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
    }))?;
    Ok(Api::<Pod>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await?)
}

fn bootstrap_secret(id: &str, secret: &str, expiration: &str) -> Secret {
    let data = [
        ("token-id", id),
        ("token-secret", secret),
        ("usage-bootstrap-authentication", "true"),
        (
            "auth-extra-groups",
            "system:bootstrappers:kadm:default-node-token",
        ),
        ("expiration", expiration),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect();
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("bootstrap-token-{id}")),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        type_: Some("bootstrap.kubernetes.io/token".into()),
        data: Some(data),
        ..Default::default()
    }
}

#[tokio::test]
async fn bootstrap_token_is_system_bootstrap_may_only_create_csrs_and_expires() -> anyhow::Result<()>
{
    let cluster = TestCluster::start().await?;
    let admin = cluster.kube_client().await?;
    let secrets = Api::<Secret>::namespaced(admin.clone(), "kube-system");
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    secrets
        .create(
            &PostParams::default(),
            &bootstrap_secret("abc123", "0123456789abcdef", &in_an_hour),
        )
        .await?;
    let token = "abc123.0123456789abcdef";
    let kc = token_kubeconfig(&cluster, "bootstrap", token)?;

    let user = eventually("the bootstrap token authenticates", || {
        whoami(&cluster, &kc)
    })
    .await;
    assert_eq!(user["username"], "system:bootstrap:abc123");
    assert_eq!(
        user["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:kadm:default-node-token",
            "system:authenticated"
        ])
    );

    // kadm:kubelet-bootstrap binds system:node-bootstrapper to system:bootstrappers.
    let csr = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "node-csr-worker-1"},
        "spec": {"request": NODE_CSR, "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"]},
    });
    let csr_file = cluster.dir().join("csr.json");
    std::fs::write(&csr_file, serde_json::to_vec(&csr)?)?;
    let out = kubectl(
        &cluster,
        &kc,
        &["create", "-f", &csr_file.display().to_string()],
    )
    .await?;
    assert!(out.status.success(), "create csr: {}", stderr(&out));
    let stored = cluster
        .kubectl_ok(None, &["get", "csr", "node-csr-worker-1", "-o", "json"])
        .await?;
    let stored: Value = serde_json::from_slice(&stored.stdout)?;
    assert_eq!(stored["spec"]["username"], "system:bootstrap:abc123");

    let out = kubectl(
        &cluster,
        &kc,
        &["auth", "can-i", "create", "certificatesigningrequests"],
    )
    .await?;
    assert_eq!(stdout(&out), "yes");
    for args in [
        &["get", "pods", "-A"][..],
        &["get", "secrets", "-n", "kube-system"][..],
        &["create", "namespace", "mine"][..],
    ] {
        let out = kubectl(&cluster, &kc, args).await?;
        assert!(!out.status.success(), "{args:?} was allowed");
        assert!(
            stderr(&out).contains("User \"system:bootstrap:abc123\" cannot"),
            "{args:?}: {}",
            stderr(&out)
        );
    }

    // Past its expiration the same token is refused with Kubernetes' 401.
    let an_hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    secrets
        .patch(
            "bootstrap-token-abc123",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"expiration": STANDARD.encode(&an_hour_ago)}})),
        )
        .await?;
    let raw = cluster.raw_anonymous()?.with_bearer(token);
    let refused = eventually("the expired bootstrap token is refused", || async {
        let r = raw.get("/apis").await?;
        anyhow::ensure!(r.status == 401, "status {}", r.status);
        r.json()
    })
    .await;
    assert_eq!(refused["reason"], "Unauthorized");
    assert_eq!(refused["message"], "Unauthorized");
    let out = kubectl(&cluster, &kc, &["get", "csr"]).await?;
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));

    // A token nobody recognises is refused even where anonymous requests are allowed.
    let bogus = cluster
        .raw_anonymous()?
        .with_bearer("abc123.ffffffffffffffff");
    assert_eq!(bogus.get("/version").await?.status, 401);
    assert_eq!(cluster.raw_anonymous()?.get("/version").await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn created_token_is_the_service_account_verifies_with_the_jwks_and_respects_audiences()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let admin = cluster.kube_client().await?;
    create_namespace(&admin, "x").await?;
    let sa = create_service_account(&admin, "x", "default").await?;
    let sa_uid = sa.metadata.uid.clone().unwrap_or_default();

    let token = create_token(&cluster, &["default", "-n", "x"]).await?;
    let kc = token_kubeconfig(&cluster, "sa", &token)?;
    let user = eventually("the token authenticates", || whoami(&cluster, &kc)).await;
    assert_eq!(user["username"], "system:serviceaccount:x:default");
    assert_eq!(user["uid"], sa_uid.as_str());
    assert_eq!(
        user["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:x",
            "system:authenticated"
        ])
    );
    let c = claims(&token)?;
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/credential-id"],
        json!([format!("JTI={}", c["jti"].as_str().unwrap_or(""))])
    );
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["sub"], "system:serviceaccount:x:default");
    assert_eq!(c["aud"], json!([ISSUER]));
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(c["nbf"], c["iat"]);
    assert_eq!(
        c["kubernetes.io"],
        json!({"namespace": "x", "serviceaccount": {"name": "default", "uid": sa_uid}})
    );

    // Service accounts may read the issuer's discovery documents; anonymous users may not.
    let raw = cluster.raw_anonymous()?.with_bearer(&token);
    let config = raw.get("/.well-known/openid-configuration").await?;
    assert_eq!(config.status, 200, "{}", config.text());
    assert_eq!(
        config.json()?,
        json!({
            "issuer": ISSUER,
            "jwks_uri": format!("{}/openid/v1/jwks", cluster.server_url()),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    );
    let jwks = raw.get("/openid/v1/jwks").await?;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.headers["content-type"], "application/jwk-set+json");
    let keys = jwks.json()?["keys"].as_array().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 1, "{keys:?}");
    verify_with_jwk(&token, &keys[0])?;
    // The key id is Kubernetes': base64url(SHA-256(PKIX DER of sa.pub)).
    let pem = std::fs::read_to_string(cluster.pki().sa_pub_path())?;
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let digest = ring::digest::digest(&ring::digest::SHA256, &STANDARD.decode(der)?);
    assert_eq!(
        keys[0]["kid"],
        URL_SAFE_NO_PAD.encode(digest.as_ref()).as_str()
    );
    assert_eq!(
        cluster
            .raw_anonymous()?
            .get("/.well-known/openid-configuration")
            .await?
            .status,
        401
    );

    // A token for another audience does not authenticate to the apiserver…
    let vault = create_token(&cluster, &["default", "-n", "x", "--audience", "vault"]).await?;
    assert_eq!(discovery_status(&cluster, &token).await?, 200);
    assert_eq!(discovery_status(&cluster, &vault).await?, 401);
    // …but TokenReview vouches for it on behalf of that audience.
    let reviews = "/apis/authentication.k8s.io/v1/tokenreviews";
    let r = cluster
        .raw()?
        .post_json(
            reviews,
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": vault, "audiences": ["vault"]}}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    let status = &r.json()?["status"];
    assert_eq!(status["authenticated"], true);
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:x:default"
    );
    assert_eq!(status["audiences"], json!(["vault"]));
    let r = cluster
        .raw()?
        .post_json(reviews, &json!({"spec": {"token": vault}}))
        .await?;
    let status = &r.json()?["status"];
    assert_eq!(status.get("authenticated"), None);
    assert!(
        status["error"]
            .as_str()
            .unwrap_or("")
            .contains("token audiences"),
        "{status}"
    );

    // Kubernetes' bounds on the lifetime.
    let out = cluster
        .kubectl(
            None,
            &["create", "token", "default", "-n", "x", "--duration", "5m"],
        )
        .await?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("may not specify a duration less than 10 minutes"),
        "{}",
        stderr(&out)
    );
    let week = create_token(&cluster, &["default", "-n", "x", "--duration", "168h"]).await?;
    let c = claims(&week)?;
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        168 * 3600
    );

    // Deleting the account ends its tokens.
    Api::<ServiceAccount>::namespaced(admin.clone(), "x")
        .delete("default", &DeleteParams::default())
        .await?;
    eventually("the token of a deleted account is refused", || async {
        let s = discovery_status(&cluster, &token).await?;
        anyhow::ensure!(s == 401, "status {s}");
        Ok(())
    })
    .await;
    Ok(())
}

/// Checks an ES256 token's signature with a JWK as an outside verifier would.
fn verify_with_jwk(token: &str, jwk: &Value) -> anyhow::Result<()> {
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap_or(""))?)?;
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], jwk["kid"]);
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["use"], "sig");
    let point = [
        &[4u8][..],
        &URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap_or(""))?,
        &URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap_or(""))?,
    ]
    .concat();
    let (signed, sig) = token
        .rsplit_once('.')
        .ok_or_else(|| anyhow::anyhow!("not a jwt"))?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(sig)?)
        .map_err(|_| anyhow::anyhow!("the token's signature does not verify with the JWKS"))
}

#[tokio::test]
async fn pod_bound_token_stops_working_when_the_pod_is_deleted() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let admin = cluster.kube_client().await?;
    create_namespace(&admin, "y").await?;
    create_service_account(&admin, "y", "default").await?;
    create_service_account(&admin, "y", "other").await?;
    let pod = create_pod(&admin, "y", "web", "default").await?;
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    create_pod(&admin, "y", "theirs", "other").await?;

    let token = create_token(
        &cluster,
        &[
            "default",
            "-n",
            "y",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "web",
        ],
    )
    .await?;
    assert_eq!(
        claims(&token)?["kubernetes.io"]["pod"],
        json!({"name": "web", "uid": pod_uid})
    );
    let kc = token_kubeconfig(&cluster, "pod", &token)?;
    let user = eventually("the pod-bound token authenticates", || {
        whoami(&cluster, &kc)
    })
    .await;
    assert_eq!(user["username"], "system:serviceaccount:y:default");
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["web"])
    );
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-uid"],
        json!([pod_uid])
    );

    // Tokens bind only to pods running as the account, and to the object the uid names.
    let out = cluster
        .kubectl(
            None,
            &[
                "create",
                "token",
                "default",
                "-n",
                "y",
                "--bound-object-kind",
                "Pod",
                "--bound-object-name",
                "theirs",
            ],
        )
        .await?;
    assert!(
        stderr(&out).contains("to pod running with different serviceaccount name"),
        "{}",
        stderr(&out)
    );
    let stale = cluster
        .raw()?
        .post_json(
            "/api/v1/namespaces/y/serviceaccounts/default/token",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "not-the-uid"}}}),
        )
        .await?;
    assert_eq!(stale.status, 409, "{}", stale.text());

    Api::<Pod>::namespaced(admin.clone(), "y")
        .delete("web", &DeleteParams::default())
        .await?;
    eventually("the token of a deleted pod is refused", || async {
        let s = discovery_status(&cluster, &token).await?;
        anyhow::ensure!(s == 401, "status {s}");
        Ok(())
    })
    .await;
    // A new pod of the same name is another pod: the token stays refused.
    let again = create_pod(&admin, "y", "web", "default").await?;
    assert_ne!(again.metadata.uid.as_deref(), Some(pod_uid.as_str()));
    for _ in 0..5 {
        assert_eq!(discovery_status(&cluster, &token).await?, 401);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = kubectl(&cluster, &kc, &["auth", "whoami"]).await?;
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
    Ok(())
}
